"""The store on a plain directory: layout, objects, catalogs, caches, refs, staging and locks."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from holoclone_venv.store.catalog import FIXED_MTIME
from holoclone_venv.errors import StoreError, StoreLockTimeout
from holoclone_venv.store import LAYOUT, Store


def _stage(store: Store, data: bytes) -> str:
    staged = store.tmp_file("test")
    with open(staged, "xb") as handle:
        handle.write(data)
    return staged


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid


# -- layout -------------------------------------------------------------------------------------
def test_check_create_writes_the_layout_marker(tmp_path):
    store = Store(tmp_path / "new" / "store")
    store.check(create=True)
    assert (tmp_path / "new" / "store" / "LAYOUT").read_text().strip() == f"holoclone-store {LAYOUT}"
    Store(tmp_path / "new" / "store").check(create=False)  # a second opener accepts it


def test_check_without_create_refuses_a_missing_store(tmp_path):
    with pytest.raises(StoreError, match="no holoclone store"):
        Store(tmp_path / "absent").check(create=False)
    assert not (tmp_path / "absent").exists()


def test_an_empty_directory_becomes_a_store(tmp_path):
    (tmp_path / "empty").mkdir()
    Store(tmp_path / "empty").check(create=True)
    assert (tmp_path / "empty" / "LAYOUT").exists()


def test_a_non_empty_foreign_directory_is_refused_and_left_alone(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("precious")
    with pytest.raises(StoreError) as caught:
        Store(home).check(create=True)
    assert "not a holoclone store" in caught.value.message and str(home) in caught.value.message
    assert sorted(p.name for p in home.iterdir()) == ["thesis.tex"]


def test_a_file_is_not_a_store(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="not a directory"):
        Store(tmp_path / "file").check(create=True)


def test_a_newer_layout_is_refused(tmp_path):
    root = tmp_path / "store"
    root.mkdir()
    (root / "LAYOUT").write_text(f"holoclone-store {LAYOUT + 1}\n")
    with pytest.raises(StoreError) as caught:
        Store(root).check(create=True)
    assert "newer" in caught.value.message and str(root) in caught.value.message


def test_a_garbled_layout_marker_is_refused(tmp_path):
    root = tmp_path / "store"
    root.mkdir()
    (root / "LAYOUT").write_text("something else\n")
    with pytest.raises(StoreError, match="not a holoclone layout marker"):
        Store(root).check(create=True)


# -- objects ------------------------------------------------------------------------------------
def test_object_path_shape(store):
    digest = hashlib.sha256(b"x").hexdigest()
    assert store.object_path(digest) == f"{store.root}/objects/{digest[:2]}/{digest[2:]}"
    assert store.object_path(digest, True) == f"{store.root}/objects/{digest[:2]}/{digest[2:]}.x"


@pytest.mark.parametrize("executable, mode", [(False, 0o444), (True, 0o555)])
def test_adopt_object_sets_mode_and_fixed_mtime(store, executable, mode):
    data = b"print('hi')\n"
    digest = hashlib.sha256(data).hexdigest()
    staged = _stage(store, data)
    store.adopt_object(staged, digest, executable)
    st = os.stat(store.object_path(digest, executable))
    assert stat.S_IMODE(st.st_mode) == mode
    assert int(st.st_mtime) == FIXED_MTIME
    assert not os.path.exists(staged)
    assert store.has_object(digest, len(data), executable)
    assert not store.has_object(digest, len(data), not executable)


def test_has_object_refuses_wrong_size_writable_mode_other_mtime_or_a_link(store, tmp_path):
    data = b"abc"
    digest = store.put_bytes(data)
    path = store.object_path(digest)
    assert store.has_object(digest, 3)
    assert not store.has_object(digest, 4)
    os.chmod(path, 0o644)
    assert not store.has_object(digest, 3)
    os.chmod(path, 0o444)
    os.utime(path, (FIXED_MTIME + 10, FIXED_MTIME + 10))
    assert not store.has_object(digest, 3)
    os.utime(path, (FIXED_MTIME, FIXED_MTIME))
    assert store.has_object(digest, 3)
    os.rename(path, tmp_path / "real")
    os.symlink(tmp_path / "real", path)
    assert not store.has_object(digest, 3)


def test_put_bytes_is_idempotent_and_returns_the_sha256(store):
    digest = store.put_bytes(b"same")
    inode = os.stat(store.object_path(digest)).st_ino
    assert digest == hashlib.sha256(b"same").hexdigest()
    assert store.put_bytes(b"same") == digest
    assert os.stat(store.object_path(digest)).st_ino == inode
    assert [d for d, _, _ in store.iter_objects()] == [digest]


def test_put_bytes_replaces_a_damaged_object(store):
    digest = store.put_bytes(b"good")
    path = store.object_path(digest)
    os.chmod(path, 0o644)
    with open(path, "wb") as handle:
        handle.write(b"evil")
    store.put_bytes(b"good")
    with open(path, "rb") as handle:
        assert handle.read() == b"good"
    assert store.has_object(digest, 4)


# -- catalogs and RECORD objects ----------------------------------------------------------------
def test_write_load_iter_and_remove_catalog(store, make_catalog):
    first = make_catalog(store, "alpha", {"alpha/__init__.py": b"a = 1\n"})
    second = make_catalog(store, "beta", {"beta/__init__.py": b"b = 1\n"})
    assert store.load_catalog(first.key) == first
    assert sorted(key for key, _ in store.iter_catalogs()) == sorted([first.key, second.key])
    store.put_record_object(first.key, "p1", b"rows of p1\n")
    store.put_record_object(second.key, "p1", b"rows of beta\n")
    store.remove_catalog(first.key)
    assert store.load_catalog(first.key) is None
    assert not list(store.catalogs.glob(f"{first.key}.record-*"))
    assert store.record_object(second.key, "p1") is not None, "another catalog's RECORD index must stay"
    assert [key for key, _ in store.iter_catalogs()] == [second.key]


def test_load_catalog_of_a_missing_key_is_none_and_a_malformed_one_raises(store):
    assert store.load_catalog("0" * 64 + "-cpython-311") is None
    store.catalogs.mkdir(parents=True, exist_ok=True)
    bad = store.catalog_path("f" * 64 + "-cpython-311")
    bad.write_bytes(b"{broken")
    with pytest.raises(StoreError) as caught:
        store.load_catalog("f" * 64 + "-cpython-311")
    assert str(bad) in caught.value.message


def test_record_objects_round_trip_and_list_their_digests(store):
    key = "a" * 64 + "-cpython-311"
    path = store.put_record_object(key, "paths1", b"pkg/x.py,sha256=abc,1\n")
    with open(path, "rb") as handle:
        assert handle.read() == b"pkg/x.py,sha256=abc,1\n"
    assert store.record_object(key, "paths1") == path
    assert store.record_object(key, "paths2") is None
    other = store.put_record_object(key, "paths2", b"other rows\n")
    assert store.record_digests(key) == {os.path.basename(os.path.dirname(p)) + os.path.basename(p) for p in (path, other)}


def test_record_object_whose_object_is_gone_is_none(store):
    key = "b" * 64 + "-cpython-311"
    path = store.put_record_object(key, "p", b"rows\n")
    os.unlink(path)
    assert store.record_object(key, "p") is None


def test_an_index_naming_a_path_not_a_digest_or_reached_through_a_link_is_not_used(store, tmp_path):
    # An index file decides which file becomes an environment's RECORD, and which catalog a wheel has:
    # only a hex sha256, in the owner's regular file, may do that.
    key = "d" * 64 + "-cpython-311"
    path = store.put_record_object(key, "p", b"rows\n")
    index = store.catalogs / f"{key}.record-p"
    outside = tmp_path / "secret"
    outside.write_bytes(b"not for an env\n")
    # 64 characters, as a digest is, naming a file outside the store: "../" + padding + the way out.
    rel = os.path.relpath(outside, store.root)
    pad = 64 - 3 - len(rel)
    assert pad >= 0
    escape = "../" + "./" * (pad // 2) + ("/" if pad % 2 else "") + rel
    assert len(escape) == 64 and os.path.samefile(store.object_path(escape), outside)
    index.write_text(escape)
    assert store.record_object(key, "p") is None and store.record_digests(key) == set()
    index.unlink()
    (tmp_path / "planted").write_text(os.path.basename(os.path.dirname(path)) + os.path.basename(path))
    index.symlink_to(tmp_path / "planted")
    assert store.record_object(key, "p") is None and store.record_digests(key) == set()

    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(b"zip bytes")
    store.wheel_digest(wheel)
    [(entry, _)] = list(store.iter_wheel_index())
    entry.write_text("C" * 64)  # not what the store writes
    assert store.wheel_digest(wheel) == hashlib.sha256(b"zip bytes").hexdigest()


# -- wheels, resolutions, refs ------------------------------------------------------------------
def test_wheel_digest_is_cached_by_name_size_and_mtime(store, tmp_path):
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(b"zip bytes")
    digest = store.wheel_digest(wheel)
    assert digest == hashlib.sha256(b"zip bytes").hexdigest()
    entries = list(store.iter_wheel_index())
    assert [d for _, d in entries] == [digest]
    # the cache answers without hashing: prove it by planting another digest in it
    entries[0][0].write_text("c" * 64)
    assert store.wheel_digest(wheel) == "c" * 64
    wheel.write_bytes(b"other zip bytes")
    os.utime(wheel, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
    assert store.wheel_digest(wheel) == hashlib.sha256(b"other zip bytes").hexdigest()


def test_adopt_wheel_keeps_it_read_only_under_its_digest(store, tmp_path):
    staged = store.tmp_file("wheel")
    with open(staged, "wb") as handle:
        handle.write(b"wheel")
    digest = hashlib.sha256(b"wheel").hexdigest()
    final = store.adopt_wheel(staged, "demo-1.0-py3-none-any.whl", digest)
    assert final == store.wheels / digest / "demo-1.0-py3-none-any.whl"
    assert final.read_bytes() == b"wheel"
    assert stat.S_IMODE(final.stat().st_mode) == 0o444
    assert list(store.iter_wheels()) == [(digest, store.wheels / digest)]
    again = store.tmp_file("wheel")
    with open(again, "wb") as handle:
        handle.write(b"wheel")
    assert store.adopt_wheel(again, "demo-1.0-py3-none-any.whl", digest) == final


def test_resolutions_round_trip_and_unreadable_ones_are_none(store):
    store.write_resolution("k1", {"format": 1, "wheels": [["a.whl", "d" * 64]]})
    assert store.load_resolution("k1") == {"format": 1, "wheels": [["a.whl", "d" * 64]]}
    assert store.load_resolution("absent") is None
    (store.resolutions / "k2.json").write_text("{oops")
    (store.resolutions / "k3.json").write_text("[1, 2]")
    assert [(key, doc) for key, _, doc in store.iter_resolutions()] == [
        ("k1", {"format": 1, "wheels": [["a.whl", "d" * 64]]}), ("k2", None), ("k3", None)]


def test_add_ref_is_one_file_per_environment(store, tmp_path):
    env = tmp_path / "env"
    first = store.add_ref(str(env), ["k2", "k1", "k1"])
    second = store.add_ref(str(tmp_path / "." / "env"), ["k3"])
    assert first == second
    refs = list(store.iter_refs())
    assert len(refs) == 1
    assert refs[0][1]["env"] == str(env) and refs[0][1]["catalogs"] == ["k3"]
    assert abs(refs[0][1]["created"] - time.time()) < 60


def test_unreadable_refs_yield_empty_documents(store, tmp_path):
    store.add_ref(str(tmp_path / "env"), ["k"])
    (store.refs / "broken.json").write_text("{not json")
    (store.refs / "list.json").write_text("[]")
    documents = {path.name: doc for path, doc in store.iter_refs()}
    assert documents["broken.json"] == {} and documents["list.json"] == {}
    assert len(documents) == 3


# -- staging ------------------------------------------------------------------------------------
def test_reclaim_tmp_removes_a_dead_process_stage_and_keeps_a_live_one(store):
    dead = store.tmp / f"stage-import.{_dead_pid()}.{time.monotonic_ns()}"
    (dead / "sub").mkdir(parents=True)
    (dead / "sub" / "obj").write_bytes(b"partial")
    os.chmod(dead / "sub" / "obj", 0o444)
    os.chmod(dead / "sub", 0o555)  # read-only folders must not stop the removal
    live = store.staging_dir("import")
    (live / "obj").write_bytes(b"in progress")
    assert store.reclaim_tmp() == 1
    assert not dead.exists()
    assert (live / "obj").read_bytes() == b"in progress"


def test_reclaim_tmp_never_follows_a_symlink_in_a_planted_stage(store, tmp_path):
    outside = tmp_path / "outside"
    (outside / "inner").mkdir(parents=True)
    (outside / "inner" / "keep.txt").write_text("keep")
    os.chmod(outside / "inner", 0o700)
    os.chmod(outside, 0o700)
    planted = store.tmp / f"stage-import.{_dead_pid()}.{time.monotonic_ns()}"
    planted.mkdir(parents=True)
    os.symlink(outside, planted / "link")
    os.symlink(outside / "inner", planted / "link2")
    store.reclaim_tmp()
    assert not planted.exists()
    assert stat.S_IMODE(os.stat(outside).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(outside / "inner").st_mode) == 0o700
    assert (outside / "inner" / "keep.txt").read_text() == "keep"


def test_reclaim_tmp_removes_a_stage_that_is_itself_a_symlink_but_not_its_target(store, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    store.tmp.mkdir(exist_ok=True)
    link = store.tmp / f"stage-import.{_dead_pid()}.{time.monotonic_ns()}"
    os.symlink(outside, link)
    store.reclaim_tmp()
    assert not os.path.lexists(link)
    assert (outside / "keep.txt").read_text() == "keep"


# -- locks --------------------------------------------------------------------------------------
HOLDER = """
import sys
from filelock import FileLock
lock = FileLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
sys.stdin.read()
"""


def test_lock_held_elsewhere_times_out_with_a_message_naming_it(store):
    path = store.locks / "store.lock"
    store.locks.mkdir(exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        waiting = Store(store.root, lock_timeout=0.3)
        started = time.monotonic()
        with pytest.raises(StoreLockTimeout) as caught:
            with waiting.lock():
                pass
        assert 0.25 <= time.monotonic() - started < 5
        message = caught.value.message
        assert "waiting for another holoclone process changing the store" in message
        assert str(path) in message and "0.3" in message
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
    with Store(store.root, lock_timeout=0.3).lock():  # free again once the holder is gone
        pass


def test_import_and_resolve_locks_are_distinct_files(store):
    digest = hashlib.sha256(b"w").hexdigest()
    paths = {
        store.lock().path,
        store.import_lock(digest, "pip.whl").path,
        store.import_lock(hashlib.sha256(b"v").hexdigest(), "setuptools.whl").path,
        store.resolve_lock("r" * 64).path,
    }
    assert len(paths) == 4
    assert all(os.path.dirname(p) == str(store.locks) for p in paths)
    with store.import_lock(digest, "pip.whl"), store.resolve_lock("r" * 64), store.lock():
        pass  # held together: none waits for another
    assert "pip.whl" in store.import_lock(digest, "pip.whl").what


def test_verify_calls_strays_what_the_store_does_not_name_as_an_object(store):
    from holoclone_venv.command.maintenance.verify import verify

    digest = store.put_bytes(b"a real object\n")
    strays = [store.objects / "loose-file", store.objects / digest[:2] / "not-a-digest",
              store.objects / "zz" / ("0" * 62), store.objects / digest[:2] / (digest[2:] + ".y")]
    for path in strays:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"x")
    named = dict(store.iter_object_files())
    assert named[Path(store.object_path(digest))] == (digest, False)
    assert all(named[path] is None for path in strays)
    result = verify(store, repair=False)
    assert sorted(p.path for p in result.problems if p.kind == "stray") == sorted(map(str, strays))
    assert not any(p.path == store.object_path(digest) for p in result.problems)
