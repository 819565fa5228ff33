"""Catalogs: the on-disk form survives a round trip, and a hostile or broken one is refused.

A catalog tells the materializer where to write; a path that leaves the
environment must never get that far, and a damaged file must be reported with
its name so the user knows what to repair.
"""

from __future__ import annotations

import json

import pytest

from holoclone_venv.store.catalog import (
    EXECUTABLE,
    FORMAT,
    HAS_BYTECODE,
    SHEBANG,
    Catalog,
    Entry,
    Script,
    safe_relpath,
)
from holoclone_venv.errors import StoreError
from holoclone_venv.store import Store

DIGEST = "ab" * 32
ORIGIN = "/somewhere/catalogs/feed-cpython-311.json"


def _catalog(**changes) -> Catalog:
    fields = dict(
        name="demo",
        version="1.0",
        wheel="demo-1.0-py3-none-any.whl",
        wheel_sha256="cd" * 32,
        tag="cpython-311",
        dist_info="demo-1.0.dist-info",
        root="purelib",
        record="67" * 32,
        entries=(
            Entry("purelib", "demo/__init__.py", DIGEST, 12, HAS_BYTECODE),
            Entry("purelib", "demo/__pycache__/__init__.cpython-311.pyc", "ef" * 32, 140),
            Entry("purelib", "demo/data file, with comma.txt", "01" * 32, 0),
            Entry("scripts", "demo-tool", "23" * 32, 40, SHEBANG | EXECUTABLE),
            Entry("data", "share/demo/ü.txt", "45" * 32, 3),
        ),
        scripts=(
            Script("demo", "console", b"#!/holoclone/placeholder/python\nimport demo\n"),
            # a launcher is binary: every byte value must survive
            Script("demo.exe", "gui", bytes(range(256)) + b"#!/holoclone/placeholder/python\n"),
        ),
    )
    fields.update(changes)
    return Catalog(**fields)


def _document(**changes) -> dict:
    doc = json.loads(_catalog().to_json())
    doc.update(changes)
    return doc


# Catalog.from_json catches ValueError, KeyError and TypeError but not the
# AttributeError that ``doc.get`` raises for a JSON document that is not an
# object: the user sees a traceback instead of the file's name.
def _refused(doc) -> StoreError:
    data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    with pytest.raises(StoreError) as caught:
        Catalog.from_json(data, ORIGIN)
    return caught.value


def test_round_trip_keeps_every_field():
    catalog = _catalog()
    again = Catalog.from_json(catalog.to_json(), ORIGIN)
    assert again == catalog
    assert again.scripts[1].template == catalog.scripts[1].template
    assert again.key == catalog.key == f"{'cd' * 32}-cpython-311"


def test_round_trip_through_the_store(tmp_path):
    store = Store(tmp_path / "store")
    store.check(create=True)
    catalog = _catalog()
    store.write_catalog(catalog)
    assert store.load_catalog(catalog.key) == catalog
    assert [key for key, _ in store.iter_catalogs()] == [catalog.key]


@pytest.mark.parametrize(
    "path",
    ["../evil.py", "demo/../../evil.py", "demo/..", "/etc/passwd", "demo\\..\\evil.py", "C:/evil.py", "c:evil.py",
     "", ".", "./demo.py", "demo//x.py", "demo/", "nul\0byte"],
)
def test_unsafe_entry_paths_are_refused(path):
    doc = _document(entries=[["purelib", path, DIGEST, 1, 0]])
    error = _refused(doc)
    assert ORIGIN in str(error)
    assert error.hint  # says what to do


@pytest.mark.parametrize("name", ["../pip", "bin/pip", "/usr/bin/pip", "..", "a\\b", ""])
def test_unsafe_script_names_are_refused(name):
    error = _refused(_document(scripts=[[name, "console", ""]]))
    assert ORIGIN in str(error)


def test_unknown_scheme_is_refused():
    assert ORIGIN in str(_refused(_document(entries=[["elsewhere", "x.py", DIGEST, 1, 0]])))


@pytest.mark.parametrize(
    "document",
    [
        b"",
        b"not json",
        b"[]",
        b'"a string"',
        b"\xff\xfe",
        {"format": 2},
        _document(format=None),
        {k: v for k, v in _document().items() if k != "entries"},
        {k: v for k, v in _document().items() if k != "name"},
        _document(entries=[["purelib", "x.py", DIGEST]]),  # size and flags missing
        _document(entries=[["purelib", "x.py", "abc", 1, 0]]),  # short digest
        _document(entries=[["purelib", "x.py", DIGEST, -1, 0]]),
        _document(entries=[["purelib", "x.py", DIGEST, "12", 0]]),
        _document(entries=[["purelib", 5, DIGEST, 1, 0]]),
        _document(entries=[["purelib", None, DIGEST, 1, 0]]),
        _document(entries=[["purelib", "x.py", DIGEST, 1, 0, "extra"]]),
        _document(entries=[["purelib", "x.py", DIGEST, 1, "1"]]),
        _document(entries="purelib"),
        _document(scripts=[["pip", "console", "***not base64***"]]),
    ],
    ids=lambda d: "doc" if isinstance(d, dict) else repr(d)[:20],
)
def test_malformed_documents_raise_store_error_naming_the_file(document):
    error = _refused(document)
    assert ORIGIN in str(error)
    assert "malformed" in str(error)


def test_store_names_the_damaged_catalog_file(tmp_path):
    store = Store(tmp_path / "store")
    store.check(create=True)
    store.catalogs.mkdir(parents=True, exist_ok=True)
    path = store.catalog_path("feed-cpython-311")
    path.write_text(json.dumps({"format": FORMAT, "entries": [["purelib", "../../x", DIGEST, 1, 0]]}))
    with pytest.raises(StoreError) as caught:
        store.load_catalog("feed-cpython-311")
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("path", ["pip/__init__.py", "pip-26.3.dist-info/RECORD", "a b/c,d.txt", "ü/ß.py"])
def test_ordinary_paths_are_safe(path):
    assert safe_relpath(path)
