"""The files each environment gets written for itself: console scripts and ``#!python`` scripts with
its interpreter, ``INSTALLER``, and ``RECORD`` with the rows of those.

Everything else in an environment is linked from the store; these differ
per environment, so they are written (or, for RECORD's shared rows, cloned
from a store object and appended to).
"""

from __future__ import annotations

import os
import posixpath
from typing import TYPE_CHECKING, Callable

from . import record
from ..store.catalog import SHEBANG, Catalog
from ..fsutil import write_atomic
from .scripts import render, rewrite_python_shebang

if TYPE_CHECKING:
    from ..store import Store

INSTALLER = b"holoclone\n"


def write_shebang_script(source: str, target: str, executable: str) -> None:
    """Write the script object ``source`` to ``target`` with its ``#!python`` line naming ``executable``."""
    with open(source, "rb") as handle:
        content = rewrite_python_shebang(handle.read(), executable)
    write_atomic(target, content, mode=0o755)


def write_console_scripts(catalog: Catalog, roots: dict[str, str], executable: str) -> list[record.Row]:
    """Write ``catalog``'s console and GUI scripts into the scripts directory (which exists); their RECORD rows."""
    rows: list[record.Row] = []
    relative = _relative(roots["scripts"], roots[catalog.root])
    for script in catalog.scripts:
        content = render(script.template, executable)
        write_atomic(os.path.join(roots["scripts"], script.name), content, mode=0o755)
        rows.append((posixpath.join(relative, script.name), record.hash_of(content), len(content)))
    return rows


def write_metadata(store: Store, catalog: Catalog, roots: dict[str, str], extra_rows: list[record.Row],
                   info_dir: str, clone: Callable[[str, str], object],
                   whole: Callable[[], Catalog] | None = None) -> None:
    """Write INSTALLER and RECORD (listing every installed file) into ``info_dir``.

    RECORD's rows for the catalog's own files come from a store object,
    cloned into place by ``clone(source, target)`` (for torch that is 3 MB
    per environment not written twice); the rows that differ per environment
    are appended.  ``whole`` gives the whole catalog when ``catalog`` is cut
    down (a template plan's), should those rows have to be made.
    """
    relative = {scheme: _relative(path, roots[catalog.root]) for scheme, path in roots.items()}
    tail: list[record.Row] = []
    for entry in catalog.entries:
        if entry.flags & SHEBANG:  # rewritten per environment: hash what was written
            with open(os.path.join(roots[entry.scheme], entry.path), "rb") as handle:
                data = handle.read()
            tail.append((posixpath.join(relative[entry.scheme], entry.path), record.hash_of(data), len(data)))
    tail.extend(extra_rows)
    info = catalog.dist_info
    tail.append((f"{info}/INSTALLER", record.hash_of(INSTALLER), len(INSTALLER)))
    tail.append((f"{info}/RECORD", "", ""))
    write_atomic(os.path.join(info_dir, "INSTALLER"), INSTALLER, mode=0o644)
    target = os.path.join(info_dir, "RECORD")
    source = _record_object(store, catalog, relative, whole)
    if source is None:
        rows = record.shared_rows(whole() if whole else catalog, relative)
        write_atomic(target, record.record_bytes(rows) + record.record_bytes(tail), mode=0o644)
    else:
        clone(source, target)
        with open(target, "ab") as handle:
            handle.write(record.record_bytes(tail))


def _record_object(store: Store, catalog: Catalog, relative: dict[str, str],
                   whole: Callable[[], Catalog] | None = None) -> str | None:
    """Path of the store object with the shared part of RECORD, made on first use; None if unavailable."""
    paths_id = record.paths_id(relative)
    found = store.record_object(catalog.key, paths_id)
    if found is not None or not store.writable:
        return found
    try:
        return store.put_record_object(
            catalog.key, paths_id, record.record_bytes(record.shared_rows(whole() if whole else catalog, relative))
        )
    except OSError:
        return None  # only a saving: the environment gets a RECORD written in full


def _relative(path: str, start: str) -> str:
    """``path`` relative to ``start``, with ``/`` separators; "" for ``start`` itself."""
    rel = os.path.relpath(path, start).replace(os.sep, "/")
    return "" if rel == "." else rel


__all__ = ["INSTALLER", "write_console_scripts", "write_metadata", "write_shebang_script"]
