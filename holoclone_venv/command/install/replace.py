"""Installed distributions moved out of the way by their RECORD, and put back when an install fails.

pip uninstalls a distribution it replaces by the files its RECORD lists (and
their bytecode), and rolls the uninstall back when the install fails.  This
does the same with renames: every listed file that lies inside the
environment (a hostile RECORD cannot reach outside it, as in
``uninstall.py``) is moved into one hidden folder of the environment, the
``.dist-info`` last; :meth:`SetAside.restore` moves everything back,
:meth:`SetAside.commit` deletes the folder.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import shutil
from typing import Iterable

from ...fsutil import remove_emptied_folders
from ...store.catalog import canonical_name
from .plan import InstallError


_PREFIX = ".holoclone-replaced-"


def reclaim(env_dir: str) -> None:
    """Delete what an install killed outright (SIGKILL, power loss) left set aside: its process is gone, and
    the versions it held had been replaced (pip's uninstall stash is lost the same way)."""
    from ...platforms import current

    try:
        names = [n for n in os.listdir(env_dir) if n.startswith(_PREFIX)]
    except OSError:
        return
    alive = current().pid_alive
    for name in names:
        pid = name[len(_PREFIX):]
        if pid.isdigit() and not alive(int(pid)):
            shutil.rmtree(os.path.join(env_dir, name), ignore_errors=True)


class SetAside:
    """Files moved out of an environment, restorable until committed."""

    def __init__(self, env_dir: str, site_dirs: list[str]) -> None:
        self.env_dir = env_dir
        self.site_dirs = site_dirs
        self.folder = os.path.join(env_dir, f"{_PREFIX}{os.getpid()}")
        self.moved: list[tuple[str, str]] = []  # (original, where it is now)
        self.names: list[str] = []

    def take(self, names: Iterable[str]) -> None:
        """Move every installed version of each of ``names`` aside (what a RECORD lists, then its ``.dist-info``).

        Raises :class:`InstallError` for a distribution without a RECORD (installed by ``setup.py install``):
        nothing says which files are its own.
        """
        wanted = {canonical_name(name) for name in names}
        root = os.path.realpath(self.env_dir) + os.sep
        for site in self.site_dirs:
            try:
                entries = sorted(os.listdir(site))
            except FileNotFoundError:
                continue
            for entry in entries:
                stem, dot, suffix = entry.rpartition(".")
                if not dot or suffix not in ("dist-info", "egg-info"):
                    continue
                name = stem.split("-", 1)[0]
                if canonical_name(name) not in wanted:
                    continue
                info = os.path.join(site, entry)
                record = os.path.join(info, "RECORD")
                if not os.path.isfile(record):
                    raise InstallError(f"{entry} in {site} has no RECORD, so its files are unknown and it cannot be "
                                       "replaced; nothing was changed.",
                                       f"Remove it with the environment's pip first ('pip uninstall {name}').")
                self.names.append(entry)
                for path in _listed(record, site, root):
                    self._move(path)
                self._move(info)
        # The folders the moves emptied go (as pip's uninstall does), never an install root.
        remove_emptied_folders([original for original, _ in self.moved], self.env_dir,
                               [self.env_dir, *self.site_dirs])

    def _move(self, path: str) -> None:
        relative = os.path.relpath(path, self.env_dir)
        aside = os.path.join(self.folder, relative)
        os.makedirs(os.path.dirname(aside), exist_ok=True)
        shutil.move(path, aside)
        self.moved.append((path, aside))

    def restore(self) -> None:
        """Put every moved file back where it was (after the new files were removed)."""
        for original, aside in reversed(self.moved):
            os.makedirs(os.path.dirname(original), exist_ok=True)
            if os.path.lexists(original):
                if os.path.isdir(original) and not os.path.islink(original):
                    shutil.rmtree(original)
                else:
                    os.unlink(original)
            shutil.move(aside, original)
        self.moved = []
        shutil.rmtree(self.folder, ignore_errors=True)

    def commit(self) -> None:
        """Delete what was moved aside: the install succeeded."""
        self.moved = []
        shutil.rmtree(self.folder, ignore_errors=True)


def _listed(record: str, site: str, root: str) -> list[str]:
    """The files a RECORD lists that exist inside the environment, with the bytecode of its sources."""
    try:
        with open(record, newline="", encoding="utf-8") as handle:
            rows = [row for row in csv.reader(handle) if row]
    except (OSError, UnicodeError, csv.Error):
        rows = []
    found: dict[str, None] = {}
    info = os.path.dirname(record) + os.sep
    for row in rows:
        path = os.path.normpath(os.path.join(site, row[0]))
        real = os.path.realpath(path)
        if not real.startswith(root) or path.startswith(info) or not os.path.lexists(path) or os.path.isdir(path):
            continue
        found[path] = None
        if path.endswith(".py"):
            cache = os.path.dirname(importlib.util.cache_from_source(path))
            stem = os.path.basename(path)[:-3] + "."
            try:
                found.update((os.path.join(cache, n), None) for n in os.listdir(cache)
                             if n.startswith(stem) and n.endswith(".pyc"))
            except OSError:
                pass
    return list(found)
