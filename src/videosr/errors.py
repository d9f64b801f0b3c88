"""Exceptions with exit codes. The CLI maps each to a one-line message and its code."""

from __future__ import annotations


class VideosrError(Exception):
    """Base class: a clear, user-facing failure. ``str(e)`` is the one-line message."""

    exit_code = 1


class UsageError(VideosrError):
    """Bad arguments (unsupported scale, bad option values, unknown config keys)."""

    exit_code = 2


class InputError(VideosrError):
    """Input missing, unreadable, corrupt, truncated, or not a video."""

    exit_code = 3


class InputChangedError(InputError):
    """The input file changed (size, mtime, inode or content) since the resume state was made, or during
    the run. The resume state is kept."""

    exit_code = 3


class NoVideoStreamError(InputError):
    exit_code = 3


class EmptyInputError(InputError):
    """The input decodes to zero frames."""

    exit_code = 3


class OutputExistsError(VideosrError):
    exit_code = 4


class OutputError(VideosrError):
    """Output cannot be written (folder missing/unwritable, output is the input, or OUTPUT is not ours to
    replace: a folder videosr did not write, a FIFO, socket or block device)."""

    exit_code = 5


class DiskFullError(OutputError):
    exit_code = 6


class ModelError(VideosrError):
    """Unknown model, bad or tampered weights, key mismatch."""

    exit_code = 7


class ResumeError(VideosrError):
    """Leftover state from an earlier run, or state that cannot be resumed."""

    exit_code = 8


class OutputBusyError(ResumeError):
    """Another videosr process is writing the same OUTPUT (it holds ``.OUTPUT.videosr-lock``)."""

    exit_code = 8


class OutOfMemoryError(VideosrError):
    """Memory ran out (RAM, GPU memory or the address-space limit, ``ulimit -v``) while processing."""

    exit_code = 9


class Interrupted(VideosrError):
    exit_code = 130
