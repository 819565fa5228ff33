"""Removing a distribution's files from an environment: an earlier version before another is
materialized, what a failed or killed run left, symlinks where its packages go."""

from __future__ import annotations

import csv
import os
import shutil
import stat
from typing import TYPE_CHECKING

from ..store.catalog import canonical_name

if TYPE_CHECKING:
    from ..store.catalog import Catalog


def remove_distribution(name: str, site_dir: str, env_dir: str) -> list[str]:
    """Remove every installed version of ``name`` found in ``site_dir``; return what was removed.

    Only files listed in the old RECORD that lie inside ``env_dir`` are removed,
    so a hostile RECORD cannot delete anything outside the environment.
    """
    try:
        names = os.listdir(site_dir)
    except FileNotFoundError:
        return []
    wanted = canonical_name(name)
    env_root = os.path.realpath(env_dir) + os.sep
    removed = []
    for entry in names:
        if not entry.endswith(".dist-info") or canonical_name(entry[: -len(".dist-info")].rsplit("-", 1)[0]) != wanted:
            continue
        dist_info = os.path.join(site_dir, entry)
        try:
            with open(os.path.join(dist_info, "RECORD"), newline="", encoding="utf-8") as handle:
                rows = list(csv.reader(handle))
        except OSError:
            rows = []
        for row in rows:
            if not row:
                continue
            path = os.path.realpath(os.path.join(site_dir, row[0]))
            if not path.startswith(env_root) or os.path.isdir(path):
                continue
            try:
                os.unlink(path)
                removed.append(path)
            except FileNotFoundError:
                pass
        if os.path.islink(dist_info):
            os.unlink(dist_info)  # a link into virtualenv's app-data: remove the link, never what it points to
        else:
            shutil.rmtree(dist_info, ignore_errors=True)
        removed.append(dist_info)
    return removed


def clear_the_way(catalog: Catalog, root: str) -> bool:
    """Replace symlinks where the distribution's top-level entries go; True when real ones are left over.

    A symlinked package directory (``--symlink-app-data``, a user's own
    link) is removed, never entered: writing or deleting through it would
    change what it points to (virtualenv's app-data, say).  A real entry
    still there after the previous version was uninstalled belongs to a
    run that was killed before its ``.dist-info`` was in place.
    """
    tops = {e.path.partition("/")[0] for e in catalog.entries if e.scheme == catalog.root}
    leftovers = False
    for name in sorted(tops | {catalog.dist_info}):
        path = os.path.join(root, name)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(st.st_mode):
            os.unlink(path)
        else:
            leftovers = True
    return leftovers


def discard(catalog: Catalog, roots: dict[str, str]) -> None:
    """Remove what a failed run wrote for ``catalog`` (every path it would install), then emptied folders.

    Never through a symlink: a file is removed only when its folder really
    lies inside its install root.
    """
    folders = set()
    real_roots = {scheme: os.path.realpath(path) for scheme, path in roots.items()}
    paths = [(e.scheme, os.path.join(roots[e.scheme], e.path)) for e in catalog.entries]
    paths += [("scripts", os.path.join(roots["scripts"], s.name)) for s in catalog.scripts]
    for scheme, path in paths:
        folder = os.path.dirname(path)
        if folder not in folders:
            real = os.path.realpath(folder)
            if real != real_roots[scheme] and not real.startswith(real_roots[scheme] + os.sep):
                continue
        try:
            os.unlink(path)
        except OSError:
            pass
        folders.add(folder)
    for folder in sorted(folders, key=len, reverse=True):
        while folder not in roots.values():
            try:
                os.rmdir(folder)
            except OSError:
                break
            folder = os.path.dirname(folder)
