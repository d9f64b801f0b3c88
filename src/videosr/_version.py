"""The package version (its own module, so importing it never pulls in the package's lazy API)."""

__version__ = "0.1.0"
