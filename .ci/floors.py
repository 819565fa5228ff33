"""Print the oldest versions pyproject.toml declares, one ``name==version`` a line, as pip constraints.

Every ``name>=version`` of ``[project].dependencies`` (and of the optional-dependency groups named on
the command line, or of a plugin folder named there) becomes ``name==version``, so the floors CI
installs are the floors users are promised and never a second, hand-kept list.  Environment markers
are kept (a floor for one Python only stays for that Python).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python < 3.11: the floors are read by the CI's own python3
    sys.exit("floors.py needs Python 3.11 or newer (tomllib)")

_FLOOR = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*([^;]*?)\s*(;.*)?$")


def floors(pyproject: Path, extras: list[str]) -> list[str]:
    """``name==version`` for every ``>=`` specifier of the dependencies and of ``extras``.

    An argument naming a folder with a ``pyproject.toml`` (a plugin under ``plugins/``) stands for that
    distribution's own dependencies instead (``tox>=4.11`` of tox-holoclone: its oldest tox).
    """
    folders = [Path(extra) for extra in extras if (Path(extra) / "pyproject.toml").is_file()]
    if folders:
        return [pin for folder in folders for pin in floors(folder / "pyproject.toml", [])]
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project.get("dependencies", []))
    for extra in extras:
        requirements += project.get("optional-dependencies", {})[extra]
    pins = []
    for requirement in requirements:
        match = _FLOOR.match(requirement)
        if not match:
            continue
        name, specifiers, marker = match.groups()
        for specifier in specifiers.split(","):
            specifier = specifier.strip()
            if specifier.startswith(">="):
                pins.append(f"{name}=={specifier[2:].strip()}{' ' + marker if marker else ''}")
    return pins


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    print("\n".join(floors(root / "pyproject.toml", sys.argv[1:])))
