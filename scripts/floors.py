#!/usr/bin/env python3
"""Print a pip constraints file that pins every dependency pyproject.toml states a floor for at exactly that floor:

    python3 scripts/floors.py [PYPROJECT] > constraints.txt
    pip install -c constraints.txt torch==2.13.0 -e '.[dev]'
    python3 scripts/floors.py --build [PYPROJECT] > build-constraints.txt
    PIP_CONSTRAINT=build-constraints.txt pip install --no-deps -e .

``.ci/run`` installs the package that way in a second virtualenv (``.venv-floors``) and runs the sample clip and a
subset of the tests there, so every floor pyproject.toml states is a version those pass with, not a guess.
Every requirement of ``[project] dependencies`` and of every ``[project.optional-dependencies]`` extra is
read (with ``--build``: of ``[build-system] requires`` instead, for pip's isolated build environment, which only
``PIP_CONSTRAINT`` reaches): ``name>=X`` gives ``name==X``, ``name==X`` stays as it is, a requirement without
either (``tensorboard``) is left out; extras (``[...]``) are dropped and an environment marker (``; ...``) is kept.
A package that two requirements give different floors is an error, as is one that cannot be parsed. Standard
library only: it runs with the system python before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name, optional [extras], specifiers, optional ; marker (PEP 508 without URLs, which pyproject.toml does not use)
_REQUIREMENT = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[[^\]]*\])?"
    r"\s*(?P<specs>[^;]*?)\s*(?:;\s*(?P<marker>.+?))?\s*$"
)
_SPECIFIER = re.compile(r"^(?P<op>~=|==|!=|<=|>=|<|>|===)\s*(?P<version>[A-Za-z0-9.*+!_-]+)$")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def floor(requirement: str) -> str | None:
    """The ``name==version[; marker]`` constraint that pins ``requirement`` at its floor, None if it has no floor."""
    match = _REQUIREMENT.match(requirement)
    if match is None:
        raise ValueError(f"cannot parse requirement {requirement!r}")
    found = {}
    for spec in (s.strip() for s in match["specs"].split(",")) if match["specs"] else ():
        parsed = _SPECIFIER.match(spec)
        if parsed is None:
            raise ValueError(f"cannot parse specifier {spec!r} in {requirement!r}")
        found[parsed["op"]] = parsed["version"]
    version = found.get("==", found.get(">="))
    if version is None:
        return None
    marker = f"; {match['marker']}" if match["marker"] else ""
    return f"{match['name']}=={version}{marker}"


def floors(pyproject: dict, build: bool = False) -> list[str]:
    """The constraints for ``pyproject`` (pyproject.toml's parsed tables), in the order it lists them:
    ``dependencies`` first, then each extra's (``build``: ``[build-system] requires``); each package once."""
    if build:
        requirements = list(pyproject["build-system"]["requires"])
    else:
        requirements = list(pyproject["project"].get("dependencies", []))
        for extra in pyproject["project"].get("optional-dependencies", {}).values():
            requirements += extra
    seen: dict[str, str] = {}
    for requirement in requirements:
        constraint = floor(requirement)
        if constraint is None:
            continue
        name = _canonical(_REQUIREMENT.match(requirement)["name"])
        first = seen.setdefault(name, constraint)
        if first.partition("==")[2] != constraint.partition("==")[2]:
            raise ValueError(f"{name}: two floors, {first!r} and {constraint!r}")
    return list(seen.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pyproject", nargs="?", type=Path, default=ROOT / "pyproject.toml")
    parser.add_argument("--build", action="store_true", help="the build-system requirements' floors")
    args = parser.parse_args(argv)
    with open(args.pyproject, "rb") as f:
        pyproject = tomllib.load(f)
    what = "build requirement" if args.build else "dependency"
    print(f"# every {what} of {args.pyproject.name} at its floor (scripts/floors.py)")
    print("\n".join(floors(pyproject, build=args.build)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
