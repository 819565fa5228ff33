"""virtualenv's own settings (``VIRTUALENV_<KEY>`` variables and virtualenv.ini) read without importing virtualenv.

The ``holoclone`` command resolves its settings exactly as virtualenv resolves
them for the seeder, but importing anything from the ``virtualenv`` package
imports all of ``virtualenv.run`` (app data, seed wheels, filelock...), which
would cost ``holoclone install`` most of its start-up.  So this module repeats
the few rules of ``virtualenv.config`` (``ini.py``, ``env_var.py``,
``convert.py``) that those settings need, with the standard library's
:mod:`configparser` for the file itself:

- the file is ``$VIRTUALENV_CONFIG_FILE`` (an empty value counts as unset),
  else ``virtualenv.ini`` in platformdirs' ``user_config_dir("virtualenv",
  "pypa")``, and none when that folder is not an absolute path or there is no
  home directory;
- a file that is missing reads as empty; one that cannot be opened, decoded
  (UTF-8, a BOM allowed) or parsed reads as empty too, after one error line;
- values come from its ``[virtualenv]`` section (and ``[DEFAULT]``), without
  interpolation; keys are case-insensitive;
- ``VIRTUALENV_<KEY upper-cased>`` wins over the file when it is set and not
  empty; a value that does not convert logs a warning and reads as unset.

Those are the rules of virtualenv :data:`RULES_OF` and newer; where an
older virtualenv is installed (they differ in corners), its own readers are
used, imported then.  The seeder never uses this: inside virtualenv its
options are virtualenv's own.  ``tests/unit/test_virtualenv_config.py`` compares every rule with
virtualenv's readers, so a change in virtualenv shows up as a failing test.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from configparser import ConfigParser, Error
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple

CONFIG_FILE_ENV = "VIRTUALENV_CONFIG_FILE"
SECTION = "virtualenv"
LOG = logging.getLogger("holoclone")

_OPERATORS = ("===", "==", "!=", "~=", "<=", ">=", "<", ">")
_SPECIFIER_START = re.compile(rf"[A-Za-z]*\s*(?:{'|'.join(_OPERATORS)})")
#: (file, error) pairs already reported: the command reads the file more than once, and says so once.
_REPORTED: set[tuple[str, str]] = set()


def _list_items(value: str) -> list[str]:
    """virtualenv's ``ListType`` for strings: one item a line when there are several lines, else comma-separated
    (the clauses of one version specifier stay together), then each item split on ``os.pathsep``."""
    lines = value.splitlines()
    if len(lines) > 1:
        items = [stripped for line in lines if (stripped := line.strip())]
    else:
        items = []
        for piece in (stripped for part in value.split(",") if (stripped := part.strip())):
            if items and piece.startswith(_OPERATORS) and _SPECIFIER_START.match(items[-1]):
                items[-1] = f"{items[-1]},{piece}"
            else:
                items.append(piece)
    return [part for item in items for part in item.split(os.pathsep) if part]


class Kind(NamedTuple):
    """How a raw value converts, and how virtualenv names that converter in its warning."""

    converter: str
    base: type
    item: type
    convert: Callable[[str], Any]

    def __repr__(self) -> str:
        return f"{self.converter}(base={self.base}, as={self.item})"


STR = Kind("TypeData", str, str, str)
FLOAT = Kind("TypeData", float, float, float)
LIST = Kind("ListType", list, str, _list_items)


def config_file(env: Mapping[str, str]) -> Path | None:
    """The virtualenv.ini virtualenv reads for ``env``, or None where it reads none (no home directory)."""
    named = env.get(CONFIG_FILE_ENV) or None
    if named is not None:
        return Path(named)
    from platformdirs import user_config_dir

    try:
        folder = user_config_dir(appname="virtualenv", appauthor="pypa")
    except RuntimeError:  # no home directory
        return None
    return Path(folder) / "virtualenv.ini" if os.path.isabs(folder) else None


#: The virtualenv release whose readers this module repeats (the unit tests compare the two).  Older
#: releases differ in corners (``%`` interpolation, a BOM, comma-separated specifiers, an empty
#: ``VIRTUALENV_CONFIG_FILE``), so with one of those installed virtualenv's own readers are used.
RULES_OF = (21, 15, 14)


def repeats_installed_virtualenv() -> bool:
    """Whether the installed virtualenv is :data:`RULES_OF` or newer; False when that cannot be told."""
    installed = _installed_virtualenv()
    return installed is not None and installed >= RULES_OF


@functools.lru_cache(maxsize=None)
def _installed_virtualenv() -> tuple[int, ...] | None:
    """The installed virtualenv's release, read from its ``.dist-info`` folder's name without importing it (once a
    process: every settings reader asks); None when it cannot be told."""
    import glob
    from importlib.util import find_spec

    try:
        spec = find_spec("virtualenv")
    except (ImportError, ValueError):
        return None
    origin = getattr(spec, "origin", None)
    if not origin:
        return None
    found = glob.glob(os.path.join(glob.escape(os.path.dirname(os.path.dirname(origin))), "virtualenv-*.dist-info"))
    if len(found) != 1:
        return None
    parts = os.path.basename(found[0])[len("virtualenv-"):-len(".dist-info")].split(".")
    try:
        return tuple(int(part) for part in parts[:3])
    except ValueError:
        return None


class VirtualenvConfig:
    """The settings virtualenv would see for ``env``: its variables, then its ini file's ``[virtualenv]`` section.

    The file is read once, here.  With ``report`` a file that exists but cannot
    be read logs virtualenv's error line (once per process for the same file
    and error); without it the failure is silent (for callers whose caller
    already reports it).
    """

    def __init__(self, env: Mapping[str, str], report: bool = True) -> None:
        self.env = env
        self.path = config_file(env)
        self.error: Exception | None = None
        self._parser: ConfigParser | None = None
        self._theirs: Any = None  # virtualenv's IniConfig, for an older virtualenv
        if not repeats_installed_virtualenv():
            self._theirs = _their_ini(env)
            return
        if self.path is None:
            return
        parser = ConfigParser(interpolation=None)  # values are literal, as virtualenv reads them
        try:
            if not self.path.exists():
                return
            with self.path.resolve().open("rt", encoding="utf-8-sig") as handle:
                parser.read_file(handle)
        except (OSError, UnicodeError, Error) as error:
            self.error = error
            if report and (str(self.path), repr(error)) not in _REPORTED:
                _REPORTED.add((str(self.path), repr(error)))
                LOG.error("failed to read config file %s because %r", self.path, error)
            return
        if parser.has_section(SECTION):
            self._parser = parser

    def ini_raw(self, key: str) -> str | None:
        """The unconverted value of ``key`` in the file's ``[virtualenv]`` section; None if unset or unreadable."""
        if self._theirs is not None:
            ini = self._theirs
            return ini.config_parser.get(ini.section, key, fallback=None) if ini else None
        if self._parser is None:
            return None
        return self._parser.get(SECTION, key.lower(), fallback=None)

    def from_ini(self, key: str, kind: Kind) -> tuple[Any, str] | None:
        """``(value, "file")`` for ``key`` in the file, converted as ``kind``; None if unset or not convertible."""
        if self._theirs is not None:
            return self._theirs.get(key, _their_type(kind)) if self._theirs else None
        raw = self.ini_raw(key)
        return None if raw is None else _convert(raw, kind, "file")

    def from_env(self, key: str, kind: Kind) -> tuple[Any, str] | None:
        """``(value, "env var VIRTUALENV_KEY")`` when that variable is set and not empty and converts, else None."""
        if self._theirs is not None:
            from virtualenv.config.env_var import get_env_var

            return get_env_var(key, _their_type(kind), self.env)
        variable = f"VIRTUALENV_{key.upper()}"
        raw = self.env.get(variable)
        return _convert(raw, kind, f"env var {variable}") if raw else None

    def get(self, key: str, kind: Kind) -> tuple[Any, str] | None:
        """``(value, source)`` as virtualenv resolves an option's default: the variable, else the file, else None.

        A value that converts to something empty (an empty list) is still found: it hides the file's.
        """
        return self.from_env(key, kind) or self.from_ini(key, kind)


def _their_ini(env: Mapping[str, str]) -> Any:
    """virtualenv's own IniConfig for ``env`` (an older virtualenv, which reports its own read errors), or False
    when it fails in a way it does not survive itself (some older releases raise on a file they cannot parse)."""
    from virtualenv.config.ini import IniConfig

    try:
        ini = IniConfig(env)
        bool(ini)
        return ini
    except Exception:  # noqa: BLE001 - that release's own failure: the file reads as empty
        return False


def _their_type(kind: Kind) -> Any:
    from virtualenv.config.convert import ListType, TypeData

    return (ListType if kind.converter == "ListType" else TypeData)(kind.base, kind.item)


def _convert(raw: str, kind: Kind, source: str) -> tuple[Any, str] | None:
    try:
        return kind.convert(raw), source
    except Exception as error:  # virtualenv drops the value after this warning; so does its caller here
        LOG.warning("%s failed to convert %r as %r because %r", source, raw, kind, error)
        return None
