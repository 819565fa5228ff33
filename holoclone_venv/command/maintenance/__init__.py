"""Store maintenance behind ``holoclone store``: one module per job.

``space`` measures bytes on disk, ``refs`` decides which environments keep
things alive, ``info``, ``verify`` and ``gc`` inspect and clean, ``bundle``
moves catalogs between stores.  Every function takes an opened
:class:`~holoclone_venv.store.Store` and returns a plain result object; the
CLI turns results into text or JSON.  Functions that change the store hold
its lock (:meth:`Store.lock`) for their whole run (seeders take it briefly to
write a ref), so nothing a seeder has just registered is removed under it;
checks that change nothing (``verify``, ``gc --dry-run``) work on a read-only
store without it (:func:`held`).
"""

from __future__ import annotations

import contextlib
import os
from typing import Callable, Iterator

from ...store.catalog import Catalog
from ...errors import StoreError
from ...store import Store

Progress = Callable[[int, int], None]


def open_store(path: str, lock_timeout: float) -> Store:
    """Open an existing store for maintenance; raise :class:`StoreError` when there is none."""
    store = Store(path, lock_timeout)
    if not os.path.lexists(store.root):
        raise StoreError(f"no holoclone store at {store.root}.",
                         "Pass the right --store DIR (or set VIRTUALENV_HOLOCLONE_STORE); seeding creates it.")
    store.check(create=False)
    return store


@contextlib.contextmanager
def held(store: Store, changes: bool) -> Iterator[None]:
    """The store lock for a whole maintenance run; none for a check that changes nothing on a store this
    process cannot write (a read-only mount, or a shared store of another account).

    There the lock file cannot be made, and a check that only reads needs no lock to be right about
    what it reads; the store's owner, the only one who could change it meanwhile, would at worst make
    it report a catalog whose objects vanished during the check.
    """
    if not changes and not store.writable:
        yield
        return
    with store.lock():
        yield


def object_name(digest: str, executable: bool) -> str:
    """How manifests and bundles name an object: its digest, plus ``.x`` when executable."""
    return digest + (".x" if executable else "")


def read_catalogs(store: Store) -> Iterator[tuple[str, Catalog | None, str]]:
    """``(key, catalog or None, error)`` for every catalog file of ``store``."""
    for key, path in store.iter_catalogs():
        try:
            data = store.read_trusted(path)  # never through a link, only the owner's (or root's) file
            if data is None:
                st = os.lstat(path)
                yield key, None, f"catalog {path} is not a regular file of the store's owner (uid {st.st_uid})"
                continue
            catalog = Catalog.from_json(data, str(path))
        except (StoreError, OSError) as error:
            yield key, None, str(getattr(error, "message", error))
            continue
        if catalog.key != key:
            yield key, None, f"catalog {path} describes {catalog.key}, not {key}"
            continue
        yield key, catalog, ""


def file_size(path: str) -> int:
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0
