"""Remove a distribution already present in an environment, before materializing another version."""

from __future__ import annotations

import csv
import os
import shutil

from .catalog import canonical_name


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
