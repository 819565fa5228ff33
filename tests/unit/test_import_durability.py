"""An import flushes its staged objects before the store adopts them (the catalog invariant, and
Windows builds that cloned unflushed files as zeroes)."""

from __future__ import annotations

import os
import sys

from wheels import write_wheel

from holoclone_venv import platforms
from holoclone_venv.wheels.importer import ensure_catalog
from holoclone_venv.environment import Interpreter
from holoclone_venv.store import Store

INTERPRETER = Interpreter(sys.executable, sys.implementation.name, sys.version_info[:2])


def test_an_import_flushes_every_staged_object_once_before_any_is_adopted(tmp_path, monkeypatch):
    store = Store(tmp_path / "store")
    store.check(create=True)
    calls = []

    def make_durable(directory: str, paths) -> None:
        adopted = [path for _, _, path in store.iter_objects()]
        calls.append((directory, sorted(open(path, "rb").read() for path in paths), adopted))

    real = platforms.current()
    monkeypatch.setattr(platforms, "current", lambda: real._replace(make_durable=make_durable))
    files = {"durable/__init__.py": b"VALUE = 1\n", "durable/data.txt": b"some data\n"}
    wheel = write_wheel(tmp_path / "wheels", "durable", "1.0", files)
    catalog, imported = ensure_catalog(store, wheel, INTERPRETER)
    assert imported and len(calls) == 1
    directory, flushed, adopted = calls[0]
    assert adopted == [], "objects were adopted before they were flushed"
    assert set(files.values()) <= set(flushed)
    assert len(flushed) >= len(catalog.entries)
    assert os.path.commonpath([directory, str(store.root)]) == str(store.root)  # the store's filesystem
