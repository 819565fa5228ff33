"""Catalog.from_json refuses anything the importer would never write, naming where it came from."""

from __future__ import annotations

import copy
import hashlib
import json

import pytest

from holoclone_venv.store.catalog import FORMAT, Catalog, Entry, OutdatedCatalogError, Script, safe_relpath
from holoclone_venv.errors import StoreError

ORIGIN = "/some/store/catalogs/test-origin.json"
D1 = hashlib.sha256(b"one").hexdigest()
D2 = hashlib.sha256(b"two").hexdigest()


def _document() -> dict:
    catalog = Catalog(
        name="demo_pkg", version="1.2.post1", wheel="demo_pkg-1.2.post1-py3-none-any.whl",
        wheel_sha256=hashlib.sha256(b"wheel").hexdigest(), tag="cpython-311",
        dist_info="demo_pkg-1.2.post1.dist-info", root="purelib", record=hashlib.sha256(b"RECORD").hexdigest(),
        entries=(Entry("purelib", "demo_pkg/__init__.py", D1, 3, 2), Entry("scripts", "tool", D2, 3, 5)),
        scripts=(Script("demo", "console", b"#!/holoclone/placeholder/python\nimport demo\n"),),
    )
    return json.loads(catalog.to_json())


def _load(document: dict) -> Catalog:
    return Catalog.from_json(json.dumps(document).encode(), ORIGIN)


def _refused(document: dict) -> StoreError:
    with pytest.raises(StoreError) as caught:
        _load(document)
    assert ORIGIN in caught.value.message
    assert "malformed" in caught.value.message
    return caught.value


def test_round_trip_keeps_everything():
    document = _document()
    catalog = _load(document)
    assert catalog.entries[1] == Entry("scripts", "tool", D2, 3, 5)
    assert catalog.scripts[0].template.startswith(b"#!/holoclone/placeholder/python\n")
    again = Catalog.from_json(catalog.to_json(), ORIGIN)
    assert again == catalog
    assert again.key == f"{catalog.wheel_sha256}-cpython-311"
    assert (D1, False) in again.objects() and (D2, True) in again.objects() and (catalog.record, False) in again.objects()


UNSAFE_PATHS = [
    "/etc/passwd", "../outside.py", "pkg/../../x", "./pkg.py", "pkg/./x", "C:/windows/x", "C:x",
    "pkg\\..\\x", "pkg/a\0b", "pkg//x", "pkg/", "", "pkg/x\ny", "pkg/x\rb", "..", ".",
]


@pytest.mark.parametrize("path", UNSAFE_PATHS)
def test_unsafe_entry_path_is_refused(path):
    document = _document()
    document["entries"][0][1] = path
    _refused(document)


@pytest.mark.parametrize("path", [p for p in UNSAFE_PATHS if "\n" not in p and "\r" not in p])
def test_safe_relpath_agrees_with_the_catalog_check(path):
    assert not safe_relpath(path)
    assert safe_relpath("pkg/sub/module.py")


@pytest.mark.parametrize("row_index, value", [
    (0, "lib"), (0, "../purelib"), (3, "3"), (3, -1), (3, 1.5), (3, True), (4, "1"), (4, None), (2, D1.upper()),
    (2, D1[:-1]), (2, "z" * 64), (2, 12), (2, D1 + "0"),
])
def test_bad_scheme_size_flags_or_digest_is_refused(row_index, value):
    document = _document()
    document["entries"][0][row_index] = value
    _refused(document)


def test_digests_whose_lengths_make_up_for_each_other_are_refused():
    document = _document()
    assert len(document["entries"]) >= 2
    document["entries"][0][2] = D1[:-1]
    document["entries"][1][2] = D2 + "0"
    _refused(document)


def test_a_digest_of_non_ascii_characters_is_refused():
    document = _document()
    document["entries"][0][2] = "\u0660" * 64  # ARABIC-INDIC DIGIT ZERO: a digit, not hex
    _refused(document)


def test_digest_with_an_embedded_line_break_is_refused():
    document = _document()
    document["entries"][0][2] = f"{D1}\n{D2}"
    _refused(document)


def test_entry_rows_of_the_wrong_length_are_refused():
    document = _document()
    document["entries"][0].append("extra")
    _refused(document)


@pytest.mark.parametrize("field, value", [
    ("name", "../../x"), ("name", "a/b"), ("name", ""), ("name", 7),
    ("version", "1.0/../../x"), ("version", "1..0"),
    ("dist_info", "/abs/demo_pkg-1.2.post1.dist-info"), ("dist_info", "other-1.2.post1.dist-info"),
    ("dist_info", "demo_pkg-1.2.post1.dist-info/"), ("dist_info", "../demo_pkg-1.2.post1.dist-info"),
    ("root", "scripts"), ("root", "data"), ("root", "/"),
    ("tag", "CPython-311"), ("tag", "cpython311"), ("tag", "cpython-311\n"), ("tag", "../cpython-311"),
    ("wheel", "../evil.whl"), ("wheel", "dir/demo.whl"), ("wheel", "demo.zip"),
    ("wheel_sha256", "abc"), ("record", D1.upper()),
])
def test_bad_header_field_is_refused(field, value):
    document = _document()
    document[field] = value
    error = _refused(document)
    assert field in error.message or "malformed" in error.message


@pytest.mark.parametrize("field", ["name", "dist_info", "root", "record", "entries"])
def test_missing_field_is_refused(field):
    document = _document()
    del document[field]
    _refused(document)


@pytest.mark.parametrize("row", [
    ["a/b", "console", ""], ["..", "console", ""], ["demo", "service", ""], ["demo", "console", "not base64!"],
    ["demo", "console"],
])
def test_bad_script_is_refused(row):
    document = _document()
    document["scripts"] = [row]
    _refused(document)


@pytest.mark.parametrize("data", [b"[]", b'"text"', b"null", b"{not json", b"\xff\xfe"])
def test_non_object_json_is_refused(data):
    with pytest.raises(StoreError) as caught:
        Catalog.from_json(data, ORIGIN)
    assert ORIGIN in caught.value.message


@pytest.mark.parametrize("found", [FORMAT + 1, 0, "2", None, True])
def test_wrong_format_number_is_refused(found):
    document = _document()
    document["format"] = found
    error = _refused(document)
    assert not isinstance(error, OutdatedCatalogError)


def test_older_format_is_outdated_not_malformed():
    document = _document()
    document["format"] = FORMAT - 1
    with pytest.raises(OutdatedCatalogError) as caught:
        _load(document)
    assert ORIGIN in caught.value.message


def test_refusal_leaves_the_document_untouched():
    document = _document()
    document["entries"][0][1] = "../x"
    before = copy.deepcopy(document)
    _refused(document)
    assert document == before
