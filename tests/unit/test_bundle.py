"""Bundles between two stores, and hand-made hostile tar files: all or nothing, one sentence."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile

import pytest

from holoclone_venv.errors import BundleError, HoloCloneError
from holoclone_venv.command.maintenance.bundle import (
    BUNDLE_FORMAT,
    BUNDLE_HEADER,
    export,
    import_bundle,
    read_manifest,
    select_catalogs,
    write_manifest,
)
from holoclone_venv.store import Store


@pytest.fixture
def source(store, make_catalog):
    first = make_catalog(store, "demo_pkg", {"demo_pkg/__init__.py": b"x = 1\n" * 5000, "demo_pkg/run": b"#!/bin/sh\n"},
                         version="2.0", executable={"demo_pkg/run"})
    second = make_catalog(store, "other", {"other/__init__.py": b"y = 2\n"}, version="0.3")
    return store, first, second


@pytest.fixture
def target(tmp_path):
    made = Store(tmp_path / "target", lock_timeout=5.0)
    made.check(create=True)
    return made


def _nothing_imported(store: Store) -> None:
    assert list(store.iter_catalogs()) == []
    assert list(store.iter_objects()) == []
    assert not store.tmp.is_dir() or list(store.tmp.iterdir()) == []


def _members(*members) -> list:
    """``(name, data)`` or ``(TarInfo, data)`` pairs."""
    return list(members)


def _tar(path, members) -> str:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in members:
            info = name if isinstance(name, tarfile.TarInfo) else tarfile.TarInfo(name)
            if info.type == tarfile.REGTYPE:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
            else:
                archive.addfile(info)
    return str(path)


def _header(fmt=BUNDLE_FORMAT, keys=()) -> tuple:
    return BUNDLE_HEADER, json.dumps({"format": fmt, "catalogs": list(keys)}).encode()


def _object_member(data: bytes, name_data: bytes | None = None) -> tuple:
    digest = hashlib.sha256(name_data if name_data is not None else data).hexdigest()
    return f"objects/{digest[:2]}/{digest[2:]}", data


def _refused(target: Store, path: str, *words: str) -> BundleError:
    with pytest.raises(BundleError) as caught:  # one type for every refusal: no caller reads the words
        import_bundle(target, path)
    message = caught.value.message
    assert "Traceback" not in str(caught.value)
    assert message.count("\n") == 0
    assert "nothing was imported" in message.lower(), message
    for word in words:
        assert word in message, message
    _nothing_imported(target)
    return caught.value


def test_round_trip_between_two_stores(source, target, tmp_path):
    store, first, second = source
    bundle = str(tmp_path / "b.tar.gz")
    exported = export(store, [first, second], bundle)
    assert sorted(exported.catalogs) == sorted([first.key, second.key])
    assert exported.objects == len(first.objects() | second.objects()) and exported.omitted == 0
    imported = import_bundle(target, bundle)
    assert sorted(imported.catalogs) == sorted([first.key, second.key])
    assert target.load_catalog(first.key) == first and target.load_catalog(second.key) == second
    for catalog in (first, second):
        assert target.check_objects(catalog) == []
        for digest, executable in catalog.objects():
            with open(target.object_path(digest, executable), "rb") as handle:
                assert hashlib.sha256(handle.read()).hexdigest() == digest
    again = import_bundle(target, bundle)  # everything present: nothing new, nothing refused
    assert again.objects == 0 and again.present == exported.objects
    assert not os.path.exists(f"{bundle}.partial.{os.getpid()}")


def test_export_with_have_omits_objects_the_other_store_has(source, target, tmp_path, make_catalog):
    store, first, _ = source
    make_catalog(target, "demo_pkg", {"demo_pkg/__init__.py": b"x = 1\n" * 5000}, version="2.0", write=False)
    manifest = str(tmp_path / "have.json")
    count = write_manifest(target, manifest)
    have = read_manifest(manifest)
    assert len(have) == count == 2
    bundle = str(tmp_path / "b.tar")
    result = export(store, [first], bundle, have=have)
    assert result.omitted == 1
    import_bundle(target, bundle)
    assert target.load_catalog(first.key) == first


def test_a_bundle_lacking_an_object_the_store_lacks_is_refused(source, target, tmp_path):
    store, first, _ = source
    have = {f"{first.entries[0].digest}{'.x' if first.entries[0].flags & 1 else ''}"}
    bundle = str(tmp_path / "b.tar")
    export(store, [first], bundle, have=have)
    error = _refused(target, bundle, "lacks object", "demo_pkg 2.0")
    assert first.entries[0].digest in error.message


def _valid_members(store: Store, catalog) -> list:
    members = [_header(keys=[catalog.key])]
    for digest, executable in sorted(catalog.objects()):
        with open(store.object_path(digest, executable), "rb") as handle:
            members.append((f"objects/{digest[:2]}/{digest[2:]}{'.x' if executable else ''}", handle.read()))
    members.append((f"catalogs/{catalog.key}.json", catalog.to_json()))
    return members


def test_a_hand_made_valid_bundle_imports(source, target, tmp_path):
    store, _, second = source
    import_bundle(target, _tar(tmp_path / "ok.tar", _valid_members(store, second)))
    assert target.load_catalog(second.key) == second


def _symlink(name: str, to: str) -> tuple:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = to
    return info, b""


@pytest.mark.parametrize("bad, words", [
    (lambda: ("../escape", b"x"), ("'../escape'", "unexpected or unsafe path")),
    (lambda: ("objects/../../escape", b"x"), ("unsafe",)),
    (lambda: ("/etc/cron.d/evil", b"x"), ("unsafe",)),
    (lambda: ("notes.txt", b"x"), ("'notes.txt'", "unexpected")),
    (lambda: ("objects/ab/short", b"x"), ("unexpected",)),
    (lambda: _symlink("objects/ab/" + "c" * 62, "/etc/passwd"), ("not a regular file",)),
    (lambda: _object_member(b"real content", b"claimed content"), ("hashes to",)),
])
def test_hostile_member_is_refused_and_nothing_is_imported(source, target, tmp_path, bad, words):
    store, _, second = source
    members = _valid_members(store, second)
    members.insert(2, bad())
    _refused(target, _tar(tmp_path / "bad.tar", members), *words)


def test_a_bundle_not_starting_with_its_header_is_refused(source, target, tmp_path):
    store, _, second = source
    members = _valid_members(store, second)
    members.append(members.pop(0))
    _refused(target, _tar(tmp_path / "bad.tar", members), "does not start with its header")


def test_a_catalog_under_another_key_is_refused(source, target, tmp_path):
    store, first, second = source
    members = _valid_members(store, second)
    members[-1] = (f"catalogs/{first.key}.json", second.to_json())
    _refused(target, _tar(tmp_path / "bad.tar", members), f"it describes {second.key}")


def test_a_malformed_catalog_is_refused(source, target, tmp_path):
    store, _, second = source
    members = _valid_members(store, second)
    document = json.loads(second.to_json())
    document["entries"][0][1] = "../../outside.py"
    members[-1] = (f"catalogs/{second.key}.json", json.dumps(document).encode())
    _refused(target, _tar(tmp_path / "bad.tar", members), "malformed", "../../outside.py")


def test_a_catalog_disagreeing_with_its_record_is_refused(source, target, tmp_path):
    store, first, second = source
    members = _valid_members(store, second)
    document = json.loads(second.to_json())
    document["entries"][0][1] = "other/renamed.py"  # not what the wheel's RECORD lists
    members[-1] = (f"catalogs/{second.key}.json", json.dumps(document).encode())
    _refused(target, _tar(tmp_path / "bad.tar", members), "RECORD")


def test_a_truncated_bundle_is_refused(source, target, tmp_path):
    store, first, _ = source
    whole = tmp_path / "whole.tar"
    export(store, [first], str(whole))
    data = whole.read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[: len(data) // 2])
    _refused(target, str(cut), "truncated or damaged")


def test_a_bundle_of_a_newer_format_is_refused(source, target, tmp_path):
    store, _, second = source
    members = _valid_members(store, second)
    members[0] = _header(fmt=BUNDLE_FORMAT + 1, keys=[second.key])
    with pytest.raises(BundleError) as caught:  # one type for every refusal: no caller reads the words
        import_bundle(target, _tar(tmp_path / "new.tar", members))
    assert "newer" in caught.value.message and f"format {BUNDLE_FORMAT + 1}" in caught.value.message
    _nothing_imported(target)


def test_a_file_that_is_not_a_tar_is_refused(target, tmp_path):
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"this is not a tar file at all" * 40)
    with pytest.raises(HoloCloneError, match="not a holoclone bundle"):
        import_bundle(target, str(junk))
    with pytest.raises(HoloCloneError, match="does not exist"):
        import_bundle(target, str(tmp_path / "absent.tar"))


def test_read_manifest_refuses_what_is_not_a_manifest(tmp_path):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"kind": "something-else", "objects": []}))
    with pytest.raises(HoloCloneError, match="is not a holoclone manifest"):
        read_manifest(str(other))
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]")
    with pytest.raises(HoloCloneError, match="is not a holoclone manifest"):
        read_manifest(str(listing))
    with pytest.raises(HoloCloneError, match="does not exist"):
        read_manifest(str(tmp_path / "absent.json"))


def test_select_catalogs_by_key_name_and_version(source, make_catalog):
    store, first, second = source
    older = make_catalog(store, "demo_pkg", {"demo_pkg/__init__.py": b"old\n"}, version="1.0")
    assert [c.key for c in select_catalogs(store, [first.key], False)] == [first.key]
    assert {c.key for c in select_catalogs(store, ["Demo-Pkg"], False)} == {first.key, older.key}
    assert [c.key for c in select_catalogs(store, ["demo.pkg==1.0"], False)] == [older.key]
    assert {c.key for c in select_catalogs(store, [], True)} == {first.key, second.key, older.key}
    with pytest.raises(BundleError) as caught:  # one type for every refusal: no caller reads the words
        select_catalogs(store, ["other", "nosuch==9"], False)
    assert "'nosuch==9'" in caught.value.message
