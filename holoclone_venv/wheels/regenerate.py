"""What the import generates from a wheel (bytecode, launchers), generated again to check a catalog from elsewhere.

A wheel's RECORD vouches for the wheel's own files only.  A catalog that did
not come from this store's importer (an unsigned bundle the user chose to
trust) also carries bytecode and console-script launchers that holoclone
generated; nothing vouches for those, and they run in every new environment.
So they are generated again here, from the sources the RECORD does vouch
for, and must come out byte for byte the same.  Bytecode can only be made
by the interpreter it is for: a catalog for another interpreter cannot be
checked by this one, and says so.
"""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Callable

from ..store.catalog import EXECUTABLE, HAS_BYTECODE, Catalog


def generated_disagreements(catalog: Catalog, read_object: Callable[[str, bool], bytes]) -> list[str]:
    """What in ``catalog``'s bytecode and launchers this interpreter does not generate the same; empty when all agree.

    ``read_object(digest, executable)`` returns an object's bytes (from a
    bundle's staging or the store).
    """
    from ..errors import WheelError
    from .importer import launchers

    problems: list[str] = []
    implementation, _, digits = catalog.tag.partition("-")
    version = (int(digits[0]), int(digits[1:])) if len(digits) >= 2 else (0, 0)
    entries = {(e.scheme, e.path): e for e in catalog.entries}
    entry_points = entries.get((catalog.root, f"{catalog.dist_info}/entry_points.txt"))
    try:
        text = read_object(entry_points.digest, bool(entry_points.flags & EXECUTABLE)).decode("utf-8") if entry_points else ""
        expected = launchers(text, catalog.name, version, catalog.wheel) if text else ()
    except (WheelError, UnicodeDecodeError, ValueError, OSError) as error:
        return [f"its entry points cannot be read ({error})"]
    if {(s.name, s.section, s.template) for s in expected} != {(s.name, s.section, s.template) for s in catalog.scripts}:
        problems.append("its console-script launchers are not those of its entry_points.txt")

    compiled = [e for e in catalog.entries if e.flags & HAS_BYTECODE]
    if not compiled:
        return problems
    if (implementation, version) != (sys.implementation.name, sys.version_info[:2]):
        problems.append(f"its bytecode is for {catalog.tag}, which this Python cannot check; import it signed, "
                        f"or with holoclone running on that interpreter")
        return problems
    problems += _bytecode_disagreements(catalog, compiled, entries, read_object)
    return problems


def _bytecode_disagreements(catalog: Catalog, sources, entries, read_object) -> list[str]:
    """Compile each source as the importer does (same display name, fixed mtime) and compare with its .pyc."""
    import importlib.util
    import py_compile

    from ..store.catalog import FIXED_MTIME

    problems = []
    with tempfile.TemporaryDirectory(prefix="holoclone-check-") as scratch:
        for source in sources:
            staged = os.path.join(scratch, source.path)
            os.makedirs(os.path.dirname(staged), exist_ok=True)
            with open(staged, "wb") as handle:
                handle.write(read_object(source.digest, bool(source.flags & EXECUTABLE)))
            os.utime(staged, (FIXED_MTIME, FIXED_MTIME))
            pyc = importlib.util.cache_from_source(staged)
            try:
                py_compile.compile(staged, pyc, source.path, doraise=True,
                                   invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)
            except (py_compile.PyCompileError, SyntaxError, ValueError, UnicodeError):
                continue  # the importer gave it no bytecode either; its flag is then what is wrong
            rel = os.path.relpath(pyc, scratch).replace(os.sep, "/")
            entry = entries.get((source.scheme, rel))
            with open(pyc, "rb") as handle:
                if entry is None or not _same_bytecode(read_object(entry.digest, False), handle.read()):
                    problems.append(f"{rel} is not the bytecode of {source.path}")
    return problems


def _same_bytecode(theirs: bytes, ours: bytes) -> bool:
    """Same header (magic, flags, mtime, size) and equal code objects.

    marshal's output is not byte-stable (whether a constant is written once and
    referenced depends on reference counts at compile time), so the code
    objects are compared, not the bytes; code objects compare by their
    instructions, constants, names and line tables, recursively.
    """
    import marshal

    if theirs[:16] != ours[:16]:
        return False
    try:
        return marshal.loads(theirs[16:]) == marshal.loads(ours[16:])
    except (ValueError, EOFError, TypeError):
        return False
