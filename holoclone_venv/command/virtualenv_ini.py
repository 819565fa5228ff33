"""Make holoclone virtualenv's default seeder for this user, by editing virtualenv.ini.

virtualenv has no "default seeder" hook: it reads ``seeder`` from the
``[virtualenv]`` section of its ini file (``$VIRTUALENV_CONFIG_FILE``, else
``<user config dir>/virtualenv/virtualenv.ini``), and ``VIRTUALENV_SEEDER``
overrides that.

Edits are line based so every other line (comments, other sections, order)
stays byte for byte.  :func:`enable` puts a marker comment right above the
line it writes; :func:`disable` acts only on a ``seeder`` line that follows
such a marker, and restores the line it replaced when there was one::

    [virtualenv]
    # holoclone-enable: replaced: seeder = app-data
    seeder = holoclone

Writes are atomic (temporary file in the same directory, then rename).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ..errors import ConfigError

SECTION = "virtualenv"
SEEDER = "holoclone"
MARKER = "# holoclone-enable:"
_ADDED = f"{MARKER} added (removed by 'holoclone disable')"
_ADDED_SECTION = f"{MARKER} added this section (removed by 'holoclone disable')"
_REPLACED = f"{MARKER} replaced: "
_SECTION_RE = re.compile(r"^\s*\[([^\]]*)\]")
_KEY_RE = re.compile(r"^([^\s#;=:][^=:]*?)\s*[=:]\s*(.*?)\s*$")


def config_file(env: Mapping[str, str] | None = None) -> Path:
    """The virtualenv.ini virtualenv reads: ``$VIRTUALENV_CONFIG_FILE`` or the per-user default.

    Raises :class:`ConfigError` where virtualenv reads none (no home directory to find it in).
    """
    from ..virtualenv_config import config_file as found

    path = found(os.environ if env is None else env)
    if path is None:
        raise ConfigError("virtualenv reads no virtualenv.ini here: there is no home directory.",
                          "Set VIRTUALENV_CONFIG_FILE to the file to use.")
    return path


@dataclass
class Change:
    """What :func:`enable` or :func:`disable` did; ``changed`` is False when the file was left alone."""

    path: Path
    changed: bool
    message: str
    previous: str | None = None


def _read(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines(keepends=True)
    except FileNotFoundError:
        return []
    except (OSError, UnicodeError) as error:
        raise ConfigError(f"cannot read {path}: {error}.", "Fix or remove the file, or set VIRTUALENV_CONFIG_FILE.") from None


def _section_bounds(lines: list[str]) -> tuple[int, int] | None:
    """``(header index, end index)`` of the first ``[virtualenv]`` section, or None."""
    start = None
    for index, line in enumerate(lines):
        match = _SECTION_RE.match(line)
        if match:
            if start is not None:
                return start, index
            if match.group(1).strip() == SECTION:
                start = index
    return (start, len(lines)) if start is not None else None


def _seeder_line(lines: list[str], bounds: tuple[int, int]) -> int | None:
    for index in range(bounds[0] + 1, bounds[1]):
        match = _KEY_RE.match(lines[index])
        if match and match.group(1).strip().lower() == "seeder":
            return index
    return None


def _value(line: str) -> str:
    match = _KEY_RE.match(line)
    return match.group(2) if match else ""


def current_seeder(path: Path | None = None) -> str | None:
    """The ``seeder`` value of virtualenv.ini's ``[virtualenv]`` section, or None."""
    lines = _read(path or config_file())
    bounds = _section_bounds(lines)
    if bounds is None:
        return None
    index = _seeder_line(lines, bounds)
    return _value(lines[index]) if index is not None else None


def enable(path: Path | None = None) -> Change:
    """Set ``seeder = holoclone`` in the ``[virtualenv]`` section, remembering what it replaced."""
    path = path or config_file()
    lines = _read(path)
    eol = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    bounds = _section_bounds(lines)
    if bounds is None:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += eol
        lines += [f"[{SECTION}]{eol}", f"{_ADDED_SECTION}{eol}", f"seeder = {SEEDER}{eol}"]
        _write(path, lines)
        return Change(path, True, f"holoclone is now virtualenv's default seeder (added to {path}).")
    index = _seeder_line(lines, bounds)
    if index is None:
        at = bounds[0] + 1
        lines[at:at] = [f"{_ADDED}{eol}", f"seeder = {SEEDER}{eol}"]
        _write(path, lines)
        return Change(path, True, f"holoclone is now virtualenv's default seeder (added to {path}).")
    previous = _value(lines[index])
    if previous == SEEDER:
        return Change(path, False, f"holoclone already is virtualenv's default seeder in {path}.", previous)
    if index > 0 and lines[index - 1].startswith(MARKER):
        # An old marker above a line the user changed since: it is replaced by this one.
        del lines[index - 1]
        index -= 1
    original = lines[index].rstrip("\r\n")
    lines[index : index + 1] = [f"{_REPLACED}{original}{eol}", f"seeder = {SEEDER}{eol}"]
    _write(path, lines)
    return Change(
        path, True,
        f"holoclone is now virtualenv's default seeder instead of {previous!r} ({path}); "
        "'holoclone disable' restores it.",
        previous,
    )


def disable(path: Path | None = None) -> Change:
    """Undo :func:`enable`: remove its line (and section), or restore the line it replaced.

    A ``seeder = holoclone`` line without the marker was written by someone
    else and is left alone; the returned change says so (``changed`` False).
    """
    path = path or config_file()
    lines = _read(path)
    bounds = _section_bounds(lines)
    index = _seeder_line(lines, bounds) if bounds else None
    if bounds is None or index is None:
        return Change(path, False, f"holoclone was not enabled in {path}; nothing changed.")
    marker = lines[index - 1].rstrip("\r\n") if index > bounds[0] + 1 else ""
    value = _value(lines[index])
    if not marker.startswith(MARKER):
        if value == SEEDER:
            return Change(
                path, False,
                f"the 'seeder = holoclone' line in {path} was not added by 'holoclone enable'; left it alone.",
                value,
            )
        return Change(path, False, f"holoclone is not the default seeder in {path} (seeder = {value}); nothing changed.")
    if value != SEEDER:
        # The user changed the line after enabling: keep their choice, drop the stale marker.
        del lines[index - 1]
        _write(path, lines)
        return Change(path, True, f"the default seeder in {path} is {value!r}, not holoclone; removed the stale marker.")
    if marker.startswith(_REPLACED):
        restored = marker[len(_REPLACED) :]
        eol = lines[index][len(lines[index].rstrip("\r\n")) :]
        lines[index - 1 : index + 1] = [f"{restored}{eol}"]
        _write(path, lines)
        return Change(path, True, f"restored '{restored.strip()}' in {path}.", _value(restored))
    start = index - 1
    if marker == _ADDED_SECTION and bounds[0] == index - 2 and bounds[1] == index + 1:
        start = bounds[0]  # the whole section was ours and holds nothing else
    del lines[start : index + 1]
    if lines:
        _write(path, lines)
    else:
        path.unlink()  # the file held only what enable wrote
    return Change(path, True, f"holoclone is no longer virtualenv's default seeder (edited {path}).")


def _write(path: Path, lines: list[str]) -> None:
    """Replace ``path`` atomically with ``lines``, keeping its permissions."""
    from ..fsutil import write_atomic

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            mode = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o644
        write_atomic(path, "".join(lines).encode("utf-8"), mode=mode, exact_mode=True, durable=True)
    except OSError as error:
        raise ConfigError(f"cannot write {path}: {error.strerror or error}.", "Check its permissions.") from None
