"""``holoclone store remove`` and ``holoclone store clean``: explicit removal, under the store lock.

Environments never depend on the store after they are made (their files are
their own inodes, or hardlinks that keep the data alive), so removing from
the store never breaks one; the next environment that needs a removed
catalog imports its wheel again.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...store.catalog import Catalog
from ...store import Store
from . import read_catalogs


@dataclass
class RemoveResult:
    catalogs: list[str]
    objects: int

    def as_dict(self) -> dict:
        return {"catalogs_removed": self.catalogs, "objects_removed": self.objects}


def remove_catalogs(store: Store, chosen: list[Catalog]) -> RemoveResult:
    """Remove ``chosen`` catalogs, then the objects no remaining catalog names."""
    keys = {catalog.key for catalog in chosen}
    with store.lock():
        remaining: set[tuple[str, bool]] = set()
        for key, catalog, _ in read_catalogs(store):
            if catalog is not None and key not in keys:
                remaining |= catalog.objects()
                remaining |= {(digest, False) for digest in store.record_digests(key)}
        candidates: set[tuple[str, bool]] = set()
        for catalog in chosen:
            candidates |= catalog.objects()
            candidates |= {(digest, False) for digest in store.record_digests(catalog.key)}
        # Catalogs first, objects after: a catalog never names a missing object.
        for key in sorted(keys):
            store.remove_catalog(key)
        removed = 0
        for digest, executable in sorted(candidates - remaining):
            path = store.object_path(digest, executable)
            try:
                store.remove(path)
            except OSError:
                continue
            removed += 1
    return RemoveResult(sorted(keys), removed)


@dataclass
class CleanResult:
    removed: list[str]

    def as_dict(self) -> dict:
        return {"removed": self.removed}


def clean(store: Store) -> CleanResult:
    """Empty the store: everything but its layout marker and locks."""
    removed = []
    with store.lock():
        for identity, path in store.iter_templates():
            # One by one: a sealed template (a read-only btrfs subvolume) is unsealed by its own removal,
            # and one a seeding is cloning right now stays.
            with store.template_claim(identity) as free:
                if free:
                    store.remove(path)
        for folder in (store.catalogs, store.objects, store.index, store.refs, store.wheels, store.resolutions,
                       store.install_plans, store.tmp, store.templates):
            if folder.exists():
                store.remove(folder)
                removed.append(folder.name)
    return CleanResult(removed)
