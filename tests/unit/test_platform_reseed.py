"""Re-seeding a saturated store object: a fresh copy replaces it atomically."""

from __future__ import annotations

import errno
import os
import stat

from pathlib import Path

import pytest

from holoclone_venv.platforms import reseed as reseed_module
from holoclone_venv.platforms.reseed import reseed


@pytest.fixture
def staged(tmp_path) -> str:
    """Where the copy is staged: beside the objects' folder, as the store's tmp/ is."""
    (tmp_path / "tmp").mkdir()
    return str(tmp_path / "tmp" / "reseed")


@pytest.fixture
def store_object(tmp_path):
    path = tmp_path / "objects" / "ab" / "cdef"
    path.parent.mkdir(parents=True)
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # more than one copy chunk
    os.chmod(path, 0o444)
    os.utime(path, (1_000_000_000, 1_000_000_000))
    return path


def test_reseed_makes_a_new_file_with_the_same_bytes_mode_and_time(store_object, staged, tmp_path):
    data = store_object.read_bytes()
    linked = tmp_path / "env-file"
    os.link(store_object, linked)  # an environment file sharing the saturated object
    before = store_object.stat()
    reseed(str(store_object), staged)
    after = store_object.stat()
    assert after.st_ino != before.st_ino and after.st_nlink == 1
    assert store_object.read_bytes() == data
    assert stat.S_IMODE(after.st_mode) == 0o444
    assert after.st_mtime_ns == before.st_mtime_ns
    # What was made from the old object keeps it.
    assert linked.stat().st_ino == before.st_ino and linked.read_bytes() == data
    assert os.listdir(store_object.parent) == [store_object.name]


def test_reseed_failure_leaves_the_object_and_no_temporary(store_object, staged, monkeypatch):
    def refuse(source, target):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(reseed_module, "_os_replace", refuse)
    before = store_object.stat()
    with pytest.raises(OSError):
        reseed(str(store_object), staged)
    assert store_object.stat().st_ino == before.st_ino
    assert os.listdir(store_object.parent) == [store_object.name] and not os.path.lexists(staged)


def test_reseed_clears_a_read_only_attribute_that_refuses_the_replace(store_object, staged, monkeypatch):
    # Windows refuses to replace a read-only file; POSIX never does.  Played here.
    calls = []

    def windows_like(source, target):
        calls.append(stat.S_IMODE(os.stat(target).st_mode))
        if not os.stat(target).st_mode & stat.S_IWRITE:
            raise PermissionError(errno.EACCES, "Access is denied", target)
        os.replace(source, target)

    monkeypatch.setattr(reseed_module, "_os_replace", windows_like)
    data = store_object.read_bytes()
    reseed(str(store_object), staged)
    assert calls == [0o444, 0o444 | stat.S_IWRITE]
    assert store_object.read_bytes() == data and stat.S_IMODE(store_object.stat().st_mode) == 0o444
    assert os.listdir(store_object.parent) == [store_object.name]


def test_reseed_restores_the_mode_when_the_replace_still_fails(store_object, staged, monkeypatch):
    def always(source, target):
        raise PermissionError(errno.EACCES, "Access is denied", target)

    monkeypatch.setattr(reseed_module, "_os_replace", always)
    with pytest.raises(PermissionError):
        reseed(str(store_object), staged)
    assert stat.S_IMODE(store_object.stat().st_mode) == 0o444
    assert os.listdir(store_object.parent) == [store_object.name]


def test_reseed_of_a_vanished_object_is_file_not_found(tmp_path, staged):
    with pytest.raises(FileNotFoundError):
        reseed(str(tmp_path / "gone"), staged)
    assert not os.path.lexists(staged)


def test_healing_replaces_a_damaged_object_that_is_still_read_only(tmp_path, monkeypatch):
    # Windows refuses os.replace over a read-only file: an object damaged only in its mtime (still
    # 0444) could not be healed by importing its wheel again.  Played here for every replace.
    import hashlib

    from holoclone_venv.store.catalog import FIXED_MTIME
    from holoclone_venv.store import Store

    store = Store(tmp_path / "store")
    store.check(create=True)
    data = b"print('hello')\n"
    digest = hashlib.sha256(data).hexdigest()
    damaged = store.object_path(digest)
    os.makedirs(os.path.dirname(damaged))
    with open(damaged, "wb") as handle:
        handle.write(data)
    os.chmod(damaged, 0o444)
    os.utime(damaged, (1_000_000_000, 1_000_000_000))  # the damage: its mtime
    staged = store.tmp_file("object")
    with open(staged, "wb") as handle:
        handle.write(data)

    def windows_like(source, target):
        if os.path.exists(target) and not os.stat(target).st_mode & stat.S_IWRITE:
            raise PermissionError(errno.EACCES, "Access is denied", target)
        real_replace(source, target)

    from holoclone_venv.store import folders

    real_replace = os.replace
    monkeypatch.setattr(folders, "AT", False)  # Windows has no dir_fd operations: objects are adopted by path
    monkeypatch.setattr(os, "replace", windows_like)
    monkeypatch.setattr(reseed_module, "_os_replace", windows_like)
    store.adopt_object(staged, digest, False)
    monkeypatch.undo()
    assert store.has_object(digest, len(data))
    info = os.stat(damaged)
    assert stat.S_IMODE(info.st_mode) == 0o444 and int(info.st_mtime) == FIXED_MTIME
    assert not os.path.exists(staged)


def test_the_store_stages_a_reseed_under_tmp_and_lists_only_real_objects(store, monkeypatch):
    # A copy staged beside the object would be listed as an object after a crash (a name in objects/).
    digest = store.put_bytes(os.urandom(1 << 16))
    object_file = store.object_path(digest)
    seen = []
    real_copy = reseed_module._copy_bytes

    def crash_after_copy(source, target):
        real_copy(source, target)
        seen.append(target)
        raise KeyboardInterrupt  # the process dies with the copy written

    monkeypatch.setattr(reseed_module, "_copy_bytes", crash_after_copy)
    with pytest.raises(KeyboardInterrupt):
        store.reseed_object(object_file)
    assert seen and os.path.dirname(seen[0]) == str(store.tmp)
    assert list(store.iter_objects()) == [(digest, False, Path(object_file))]


def test_the_store_reseeds_only_its_own_objects_and_only_when_writable(store, tmp_path):
    digest = store.put_bytes(b"some bytes")
    object_file = store.object_path(digest)
    before = os.stat(object_file).st_ino
    assert store.reseed_object(object_file)
    assert os.stat(object_file).st_ino != before and os.listdir(store.tmp) == []
    outside = tmp_path / "elsewhere"
    outside.write_bytes(b"x")
    assert not store.reseed_object(str(outside))
