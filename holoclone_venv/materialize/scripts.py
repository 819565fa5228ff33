"""Per-environment launchers: the environment's interpreter goes into each script.

The shebang rules follow pip and virtualenv: ``#!<interpreter>`` when the path
is short and plain; otherwise a ``/bin/sh`` trampoline, which also handles
spaces, quotes, backslashes and paths that are not UTF-8.
"""

from __future__ import annotations

import os
import shlex

from ..store.catalog import PLACEHOLDER

#: Linux truncates a shebang line after 127 bytes.
_MAX_SHEBANG = 127
_SHELL_SPECIAL = " \t\n\v\f\r'\"\\"


def shebang(executable: str, arguments: bytes = b"") -> bytes:
    """The first line(s) of a script run by ``executable`` (with ``arguments``), without the final newline.

    ``arguments`` reach the interpreter as one argument, as the kernel passes
    the rest of a shebang line.
    """
    raw = os.fsencode(executable)
    plain = _utf8(executable) and raw == executable.encode("utf-8")
    line = b"#!" + raw + (b" " + arguments if arguments else b"")
    if plain and not any(c in executable for c in _SHELL_SPECIAL) and len(line) + 1 <= _MAX_SHEBANG:
        return line
    if plain:
        # Quoted for sh; backslashes survive both sh (inside '...') and Python's string reader.
        quoted = shlex.quote(executable).replace("\\", "'\"\\\\\"'").encode("utf-8")
    else:
        octal = b"".join(b"\\%03o" % byte for byte in raw)
        quoted = b"\"$(printf '" + octal + b"')\""
    passed = b" " + shlex.quote(os.fsdecode(arguments)).encode("utf-8", "surrogateescape") if arguments else b""
    return b"#!/bin/sh\n'''exec' " + quoted + passed + b' "$0" "$@"\n' + b"' '''"


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def render(template: bytes, executable: str) -> bytes:
    """A launcher template (rendered for :data:`PLACEHOLDER`) for ``executable``.

    A POSIX template starts with the placeholder shebang line; a Windows
    launcher embeds ``#!<placeholder>`` after its stub, where the launcher reads
    the interpreter path as-is.
    """
    marker = b"#!" + PLACEHOLDER
    if template.startswith(marker + b"\n"):
        return shebang(executable) + template[len(marker) :]
    return template.replace(marker, b"#!" + os.fsencode(executable), 1)


def rewrite_python_shebang(content: bytes, executable: str) -> bytes:
    """Replace a wheel script's ``#!python`` (or ``#!pythonw``) first line, keeping its arguments."""
    first, newline, rest = content.partition(b"\n")
    args = first[len(b"#!python") :]
    if args.startswith(b"w"):
        args = args[1:]
    return shebang(executable, args.strip()) + newline + rest
