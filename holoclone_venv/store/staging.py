"""Staging under ``tmp/``, whole-or-nothing writes, removal, and reclaiming what dead runs left.

Part of :class:`~holoclone_venv.store.Store` (a mixin: the store stays the one
owner of its folder names).  Anything under ``tmp/`` is incomplete by
definition; its names end in ``.<pid>.<ns>`` so a dead writer's leftovers can
be told apart and removed.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from ..fsutil import write_atomic


class Staging:
    """``tmp/`` of a store (needs the store's folders)."""

    # Set by Store, with ``writable``.
    root: Path
    tmp: Path
    _reclaimed: bool

    def write_atomically(self, final: str | os.PathLike[str], data: bytes) -> None:
        """Put a small file in the store whole or not at all: staged under ``tmp/``, then renamed."""
        os.makedirs(os.path.dirname(final), exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        write_atomic(final, data, mode=0o644, stage_dir=self.tmp)

    def tmp_file(self, label: str) -> str:
        """A fresh path under ``tmp/`` that no other process uses."""
        self.tmp.mkdir(parents=True, exist_ok=True)
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
            if path.is_dir() and not path.is_symlink():
                _make_writable(path)
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            # A sealed template (a read-only subvolume) is removed only by the platform's tree cloner.
            from ..platforms import current

            tree = current().tree
            if tree is None or not path.is_dir():
                raise
            tree.remove(str(path))

    def reclaim_tmp(self, older_than: float = 3600.0) -> int:
        """Remove staging leftovers of dead processes (or very old ones); returns how many."""
        from ..platforms import current

        alive = current().pid_alive
        removed = 0
        now = time.time()
        leftovers = list(self.tmp.iterdir()) if self.tmp.is_dir() else []
        leftovers += self.template_leftovers()  # type: ignore[attr-defined]
        for path in leftovers:
            parts = path.name.rsplit(".", 2)
            pid = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None
            try:
                age = now - path.lstat().st_mtime
            except FileNotFoundError:
                continue
            if (pid is not None and pid != os.getpid() and not alive(pid)) or age > older_than:
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



def _make_writable(path: Path) -> None:
    """Let rmtree empty read-only folders (objects are 0444 inside 0755 folders; staged ones may not be)."""
    for dirpath, dirnames, _ in os.walk(path):
        for name in dirnames:
            path_ = os.path.join(dirpath, name)
            if os.path.islink(path_):
                continue  # a planted link: never change what it points to
            try:
                os.chmod(path_, 0o755)
            except OSError:
                pass
