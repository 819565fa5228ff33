"""The store's one way in (Store.commit): durable, then adopted under the lock, then catalogs last."""

from __future__ import annotations

import hashlib
import os

from holoclone_venv import platforms
from holoclone_venv.store import StagedObject, Store


def _staged(store: Store, data: bytes) -> StagedObject:
    path = store.tmp_file("test-object")
    with open(path, "xb") as handle:
        handle.write(data)
    return StagedObject(hashlib.sha256(data).hexdigest(), False, path)


def test_commit_makes_objects_durable_then_adopts_them_then_writes_the_catalog_last(store, make_catalog,
                                                                                     monkeypatch):
    seen = []
    real = platforms.current()

    def make_durable(directory, paths):
        seen.append(("durable", sorted(paths), [p for _, _, p in store.iter_objects()]))

    monkeypatch.setattr(platforms, "current", lambda: real._replace(make_durable=make_durable))
    real_write = store.write_catalog

    def write_catalog(catalog):
        # Every object the catalog names is in place when it is written.
        seen.append(("catalog", catalog.key, store.check_objects(catalog)))
        real_write(catalog)

    monkeypatch.setattr(store, "write_catalog", write_catalog)
    catalog = make_catalog(store, "ingested", {"ingested/__init__.py": b"VALUE = 1\n"}, write=False)
    # make_catalog stored the objects already; stage a new one the catalog does not name, and one it does.
    extra = _staged(store, b"another object\n")
    store.commit([extra], [catalog], str(store.tmp))
    assert seen[0] == ("durable", [extra.path], [p for _, _, p in store.iter_objects() if p.name != extra.digest[2:]])
    assert seen[1] == ("catalog", catalog.key, [])
    assert store.present(extra.digest, False) and store.load_catalog(catalog.key) == catalog
    assert not os.path.exists(extra.path)


def test_commit_keeps_an_intact_object_and_an_existing_catalog_when_asked(store, make_catalog):
    catalog = make_catalog(store, "kept", {"kept/a.py": b"a = 1\n"})
    digest = catalog.entries[0].digest
    inode = os.stat(store.object_path(digest)).st_ino
    again = _staged(store, b"a = 1\n")
    store.commit([again], [catalog._replace(version="2.0")], str(store.tmp), only_new_catalogs=True)
    assert os.stat(store.object_path(digest)).st_ino == inode  # the intact object was kept
    assert store.load_catalog(catalog.key).version == "1.0"  # and the catalog already there
    replaced = _staged(store, b"a = 1\n")
    store.commit([replaced], [], None, adopt_present=True)
    assert os.stat(store.object_path(digest)).st_ino != inode


def test_present_reads_the_size_of_an_object_whose_size_no_catalog_holds(store):
    digest = store.put_bytes(b"a wheel's RECORD rows\n")
    assert store.present(digest, False) and store.present(digest, False, len(b"a wheel's RECORD rows\n"))
    assert not store.present(digest, False, 3) and not store.present("0" * 64, False)
