"""The store's folders are never entered through a link, and staging is reclaimed by holoclone's names only.

A plain directory stands for the store here; ``tests/test_trust_shared.py`` plants the same links as a
second account in a group-shared store on a real filesystem.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from holoclone_venv.errors import StoreError
from holoclone_venv.store import folders

OLD = time.time() - 7200  # older than reclaim's hour


@pytest.fixture(autouse=True, params=[True, False] if folders.AT else [False], ids=["descriptors", "lstat"])
def _way(request, monkeypatch):
    """Each test both ways: through descriptors, and by lstat as where the platform lacks them (Windows)."""
    monkeypatch.setattr(folders, "AT", request.param)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid


def _private(tmp_path):
    """A folder of the store's owner outside the store, with old files (as reclaim would judge them)."""
    private = tmp_path / "private"
    (private / "inner").mkdir(parents=True)
    files = {private / "notes.txt": b"keep me\n", private / "stage-x.1.1": b"me too\n",
             private / "inner" / "deep.txt": b"and me\n"}
    for path, data in files.items():
        path.write_bytes(data)
        os.utime(path, (OLD, OLD))
    return private, files


def test_reclaim_removes_only_entries_with_holoclone_staging_names(store):
    store.tmp.mkdir(exist_ok=True)
    foreign = store.tmp / "notes.txt"  # put there by someone else: not holoclone's to remove
    foreign.write_bytes(b"x")
    os.utime(foreign, (OLD, OLD))
    old_stage = store.tmp / f"stage-y.{os.getpid()}.{time.monotonic_ns()}"
    old_stage.mkdir()
    os.utime(old_stage, (OLD, OLD))
    dead_partial = store.tmp / f".abc.json.partial.{_dead_pid()}.{time.monotonic_ns()}"
    dead_partial.write_bytes(b"half")

    assert store.reclaim_tmp() == 2
    assert foreign.read_bytes() == b"x"
    assert not os.path.lexists(old_stage) and not os.path.lexists(dead_partial)


@pytest.mark.parametrize("folder", ["tmp", "templates"])
def test_a_link_where_a_staging_folder_belongs_is_refused_and_its_target_untouched(store, tmp_path, folder):
    private, files = _private(tmp_path)
    (private / ".stage-0123456789ab.1.1").mkdir()  # a template build's staging name, in the target
    link = store.root / folder
    link.symlink_to(private)

    with pytest.raises(StoreError) as raised:
        store.reclaim_tmp()
    assert str(raised.value).startswith(f"the store folder {link} is a symbolic link or not a folder")
    assert "'holoclone store verify --repair'" in str(raised.value)
    assert all(path.read_bytes() == data for path, data in files.items())
    assert (private / ".stage-0123456789ab.1.1").is_dir()


@pytest.mark.parametrize("folder", ["objects", "wheels", "refs", "resolutions", "catalogs"])
def test_removing_a_listed_entry_never_goes_through_a_planted_folder_link(store, tmp_path, folder):
    private, files = _private(tmp_path)
    (store.root / folder).symlink_to(private)
    with pytest.raises(StoreError, match="is a symbolic link or not a folder"):
        store.remove(store.root / folder / "notes.txt")
    with pytest.raises(StoreError, match="is a symbolic link or not a folder"):
        store.list_folder(store.root / folder)
    assert all(path.read_bytes() == data for path, data in files.items())
    store.remove(store.root / folder)  # the link itself goes; what it points to stays
    assert not os.path.lexists(store.root / folder) and private.is_dir()


def test_a_link_in_place_of_an_objects_subfolder_is_refused_by_listing(store, tmp_path):
    private, files = _private(tmp_path)
    store.objects.mkdir(exist_ok=True)
    (store.objects / "zz").symlink_to(private)
    with pytest.raises(StoreError, match=r"objects/zz is a symbolic link"):
        list(store.iter_objects())
    assert all(path.read_bytes() == data for path, data in files.items())


def test_a_lock_file_planted_as_a_link_is_refused_in_one_sentence_and_its_target_kept(store, tmp_path):
    target = tmp_path / "precious.txt"
    target.write_bytes(b"not a lock\n")
    store.locks.mkdir(exist_ok=True)
    (store.locks / "store.lock").symlink_to(target)

    with pytest.raises(StoreError) as raised:
        with store.lock():
            pass
    assert str(raised.value) == (
        f"the lock file {store.locks / 'store.lock'} is a symbolic link, and holoclone never opens one through a "
        "link. Remove it (holoclone makes it again) and check who else can write into the store.")
    assert target.read_bytes() == b"not a lock\n"


def test_a_resolution_through_a_link_is_not_used(store, tmp_path):
    document = {"format": 1, "wheels": []}
    elsewhere = tmp_path / "resolution.json"
    elsewhere.write_text(json.dumps(document))
    store.resolutions.mkdir()
    (store.resolutions / "k.json").symlink_to(elsewhere)
    assert store.load_resolution("k") is None
    store.write_resolution("j", document)
    assert store.load_resolution("j") == document
