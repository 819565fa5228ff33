"""Staging under ``tmp/``, whole-or-nothing writes, removal, and reclaiming what dead runs left.

Part of :class:`~holoclone_venv.store.Store` (a mixin: the store stays the one
owner of its folder names).  Anything under ``tmp/`` is incomplete by
definition; its names end in ``.<pid>.<ns>`` so a dead writer's leftovers can
be told apart and removed.  Reclaiming removes only entries with such names,
and never through a link (see ``folders.py``): whatever else is in ``tmp/``
was not put there by holoclone and stays.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from . import folders
from .parts import StoreParts

#: Names holoclone gives what it stages: ``<label>.<pid>.<ns>`` (write_atomic's ``.<name>.partial.<pid>.<ns>``
#: included, and a template build's ``.outside`` scratch folder), and the doctor's ``.holoclone-doctor-<label>.<pid>``.
_STAGING_NAME = re.compile(r"^(?:[^/]+\.(\d+)\.\d+(?:\.outside)?|\.holoclone-doctor-[a-z]+\.(\d+))\Z")


class Staging(StoreParts):
    """``tmp/`` of a store (needs the store's folders)."""

    # Set by Store, with ``writable``.
    root: Path
    tmp: Path
    _reclaimed: bool

    def write_atomically(self, final: str | os.PathLike[str], data: bytes) -> None:
        """Put a small file in the store whole or not at all: staged under ``tmp/``, then renamed; no folder
        on the way is entered through a link (:class:`StoreError` when one is)."""
        folders.write_file(self.root, Path(final), data, self.tmp)

    def tmp_file(self, label: str) -> str:
        """A fresh path under ``tmp/`` that no other process uses."""
        self.make_folder(self.tmp)
        return f"{self.tmp}/{label}.{os.getpid()}.{time.monotonic_ns()}"

    def staging_dir(self, label: str) -> Path:
        """A fresh staging directory, named so stale ones can be reclaimed."""
        path = Path(self.tmp_file(f"stage-{label}"))
        path.mkdir()
        return path

    def remove(self, path: str | os.PathLike[str]) -> None:
        """Remove a file or folder this store listed (never following a symlink); gone already is fine."""
        path = Path(path)
        try:
            folders.remove(self.root, path)
        except OSError:
            # A sealed template (a read-only subvolume) is removed only by the platform's tree cloner.
            from ..platforms import current

            tree = current().tree
            if tree is None or not self.is_folder(path):
                raise
            tree.remove(str(path))

    def reclaim_tmp(self, older_than: float = 3600.0) -> int:
        """Remove staging leftovers of dead processes (or very old ones); returns how many.

        Only entries carrying holoclone's staging names are removed, each without following a link;
        raises :class:`StoreError` when ``tmp/`` or ``templates/`` is a link."""
        from ..platforms import current

        alive = current().pid_alive
        removed = 0
        now = time.time()
        leftovers = [self.tmp / name for name in self.list_folder(self.tmp)]
        leftovers += self.template_leftovers()
        for path in leftovers:
            match = _STAGING_NAME.match(path.name)
            if match is None:
                continue  # not staged by holoclone: whoever put it there decides about it
            pid = int(match.group(1) or match.group(2))
            try:
                age = now - path.lstat().st_mtime
            except FileNotFoundError:
                continue
            if (pid != os.getpid() and not alive(pid)) or age > older_than:
                self.remove(path)
                removed += 1
        return removed

    def reclaim_tmp_once(self) -> None:
        """Reclaim dead runs' staging the first time this store is used for seeding.

        A run killed while importing leaves its staging directory behind; the
        next run that opens the store removes it.  Costs one directory listing.
        """
        if self._reclaimed:
            return
        self._reclaimed = True
        if self.writable:
            try:
                self.reclaim_tmp()
            except OSError:
                pass  # only housekeeping: a later run tries again

