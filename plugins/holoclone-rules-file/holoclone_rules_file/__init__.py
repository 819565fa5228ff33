"""Exclusion rules for holoclone from a project file and a shared-library switch.

The rules file is ``$HOLOCLONE_RULES_FILE`` when set, else ``.holoclone-rules``
in the current directory (no file there: no rules).  One rule per line::

    # comments and blank lines are ignored
    never-hardlink: *.so          # may be reflinked or copied, never hardlinked
    always-copy: *.dat            # always a private copy, not even a reflink
    always-copy: @shared-libraries

``@shared-libraries`` stands for :data:`SHARED_LIBRARIES`.  Setting
``HOLOCLONE_COPY_SHARED_LIBRARIES=1`` adds ``always-copy`` for them without
any file.  Patterns are holoclone's: globs matched against a file's path
inside its install directory (``pip/__init__.py``); a pattern without ``/``
also matches the base name.

A rules file that cannot be read or has a bad line fails safe: one warning
names the file, the line and the fix, and that run copies every file (the
rules the user meant are unknown, so nothing is shared with the store).

Registered through the entry-point group ``holoclone``; the only hook is
:func:`holoclone_exclusion_rules`, called once per run.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping, Optional

from holoclone_venv.api import ALWAYS_COPY, KINDS, Rule, hookimpl

__version__ = "0.1.0"

LOG = logging.getLogger("holoclone")

RULES_FILE_ENV = "HOLOCLONE_RULES_FILE"
SHARED_LIBRARIES_ENV = "HOLOCLONE_COPY_SHARED_LIBRARIES"
DEFAULT_FILE = ".holoclone-rules"
#: Shared libraries and extension modules on Linux (versioned too), macOS and Windows.
SHARED_LIBRARIES = ("*.so", "*.so.*", "*.dylib", "*.pyd")
PRESETS = {"@shared-libraries": SHARED_LIBRARIES}
_OFF = ("", "0", "false", "no", "off")


class RulesFileError(ValueError):
    """A rules file is unreadable or has a bad line; ``str()`` is one sentence with the fix."""


def rules_file(env: Mapping[str, str], cwd: str) -> tuple[Optional[Path], bool]:
    """The rules file to read and whether the user named it explicitly.

    Returns ``(None, False)`` when no variable is set and ``cwd`` has no
    ``.holoclone-rules``: an explicitly named file that is missing is an error
    for :func:`load_rules`, a missing default file is not.
    """
    named = env.get(RULES_FILE_ENV)
    if named:
        return Path(named).expanduser(), True
    default = Path(cwd) / DEFAULT_FILE
    return (default, False) if default.is_file() else (None, False)


def parse_rules(text: str, origin: str) -> list[Rule]:
    """Parse rules-file ``text``; ``origin`` (the file name) is used in errors and in each Rule.

    Raises :class:`RulesFileError` for a line without ``kind: pattern``, an
    unknown kind, an empty pattern or an unknown ``@preset``.
    """
    rules = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        kind, colon, pattern = (part.strip() for part in line.partition(":"))
        where = f"{origin} line {number}"
        if not colon:
            raise RulesFileError(f"{where}: {raw.strip()!r} is not 'KIND: PATTERN' (KIND is {' or '.join(KINDS)})")
        if kind not in KINDS:
            raise RulesFileError(f"{where}: unknown rule kind {kind!r}; use {' or '.join(KINDS)}")
        if not pattern:
            raise RulesFileError(f"{where}: the pattern after {kind!r} is empty")
        if pattern.startswith("@"):
            if pattern not in PRESETS:
                raise RulesFileError(f"{where}: unknown preset {pattern!r}; known: {', '.join(PRESETS)}")
            rules.extend(Rule(p, kind, f"{origin}:{number}") for p in PRESETS[pattern])
        else:
            rules.append(Rule(pattern, kind, f"{origin}:{number}"))
    return rules


def load_rules(path: Path) -> list[Rule]:
    """Read and parse ``path``; raise :class:`RulesFileError` when it is missing, unreadable or bad."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RulesFileError(f"{path} does not exist (named by {RULES_FILE_ENV})") from None
    except (OSError, UnicodeError) as error:
        raise RulesFileError(f"cannot read {path}: {getattr(error, 'strerror', None) or error}") from None
    return parse_rules(text, str(path))


def shared_library_rules(env: Mapping[str, str]) -> list[Rule]:
    """``always-copy`` rules for shared libraries when ``HOLOCLONE_COPY_SHARED_LIBRARIES`` is on."""
    if env.get(SHARED_LIBRARIES_ENV, "").strip().lower() in _OFF:
        return []
    return [Rule(p, ALWAYS_COPY, SHARED_LIBRARIES_ENV) for p in SHARED_LIBRARIES]


def rules_for(env: Mapping[str, str], cwd: str) -> list[Rule]:
    """Every rule this plugin contributes for a run started in ``cwd`` with ``env``.

    Never raises for a bad rules file: it warns once and returns the fail-safe
    rule ``always-copy: *`` instead.
    """
    rules = shared_library_rules(env)
    path, _ = rules_file(env, cwd)
    if path is None:
        return rules
    try:
        return rules + load_rules(path)
    except RulesFileError as error:
        LOG.warning(
            "holoclone-rules-file: %s. Fix the rules file; until then every file is copied so nothing "
            "it meant to protect is shared with the store.",
            error,
        )
        return [Rule("*", ALWAYS_COPY, str(path))]


@hookimpl
def holoclone_exclusion_rules() -> list[Rule]:
    """Rules from the rules file and the shared-library switch (none of the hook's arguments is needed)."""
    try:
        cwd = os.getcwd()
    except OSError:  # the current directory was removed: there is no project file to read
        cwd = ""
    return rules_for(os.environ, cwd) if cwd else shared_library_rules(os.environ)
