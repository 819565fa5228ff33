"""Fixtures for the unit tests: a fresh store in tmp_path and a factory of real catalogs in it."""

from __future__ import annotations

import hashlib
import os

import pytest

from holoclone_venv.store.catalog import EXECUTABLE, Catalog, Entry, Script
from holoclone_venv.materialize.record import hash_of, record_bytes
from holoclone_venv.store import Store


@pytest.fixture
def store(tmp_path):
    """An empty, created store under tmp_path."""
    made = Store(tmp_path / "store", lock_timeout=5.0)
    made.check(create=True)
    return made


@pytest.fixture
def make_catalog():
    """``make_catalog(store, name, files, version="1.0", executable=(), scripts=(), write=True)``.

    Stores each file's bytes as an object (executable ones as ``.x``), stores the
    wheel's RECORD listing them, and writes the catalog, as the importer would.
    """

    def make(target: Store, name: str, files: dict, version: str = "1.0", executable=(), scripts=(),
             write: bool = True, tag: str = "cpython-311") -> Catalog:
        entries = []
        for path, data in sorted(files.items()):
            digest = hashlib.sha256(data).hexdigest()
            is_exe = path in executable
            if not target.has_object(digest, len(data), is_exe):
                staged = target.tmp_file("test-object")
                with open(staged, "xb") as handle:
                    handle.write(data)
                target.adopt_object(staged, digest, is_exe)
            entries.append(Entry("purelib", path, digest, len(data), EXECUTABLE if is_exe else 0))
        dist_info = f"{name}-{version}.dist-info"
        rows = [(path, hash_of(data), len(data)) for path, data in sorted(files.items())]
        rows.append((f"{dist_info}/RECORD", "", ""))
        record = target.put_bytes(record_bytes(rows))
        wheel = f"{name}-{version}-py3-none-any.whl"
        catalog = Catalog(
            name=name, version=version, wheel=wheel,
            wheel_sha256=hashlib.sha256(f"{name}-{version}-{tag}".encode() + os.urandom(8)).hexdigest(),
            tag=tag, dist_info=dist_info, root="purelib", record=record,
            entries=tuple(entries), scripts=tuple(Script(n, "console", t) for n, t in scripts),
        )
        if write:
            target.write_catalog(catalog)
        return catalog

    return make
