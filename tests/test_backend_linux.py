"""The Linux FICLONE backend on real loop-mounted filesystems.

XFS and btrfs clone: a clone shares its extents with the source, and
writing into it changes neither the source nor another clone.  ext4 and
tmpfs do not, and a clone across filesystems cannot: those are fallbacks
(:class:`Unsupported`) that leave nothing behind.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from holoclone_venv.errors import Unsupported
from holoclone_venv.platforms import linux
from holoclone_venv.plugins import Plugins

SOURCE_MTIME = 315532800
MiB = 1 << 20


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _store_object(directory: Path, data: bytes, name: str = "object") -> Path:
    """A read-only object with an old mtime, as the store keeps them."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(data)
    os.chmod(path, 0o444)
    os.utime(path, (1_000_000_000, 1_000_000_000))
    return path


def _clone_into(source: Path, directory: Path, name: str, mode: int = 0o644, mtime: int | None = None) -> Path:
    """Clone the way the materializer does: a bare name relative to an open directory."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        linux.ficlone(str(source), name, fd, mode, mtime)
    finally:
        os.close(fd)
    return directory / name


@pytest.fixture(params=["xfs", "btrfs"])
def cloning_fs(request) -> Path:
    return request.getfixturevalue(request.param)


def test_the_platform_plugin_is_the_ficlone_backend():
    backend = Plugins(load_external=False).first("holoclone_clone_backend")
    assert backend.name == "linux-ficlone"
    assert backend.clone is linux.ficlone


def test_clone_shares_extents_and_gets_its_own_mode_and_mtime(cloning_fs, unique):
    data = os.urandom(256 * 1024)
    source = _store_object(cloning_fs / unique / "store", data)
    target = _clone_into(source, cloning_fs / unique / "env", "mod.py", 0o644, SOURCE_MTIME)

    assert target.read_bytes() == data
    assert linux.shares_extents(target) and linux.shares_extents(source)
    info = target.stat()
    assert stat.S_IMODE(info.st_mode) == 0o644 & ~_umask()
    assert info.st_mtime == SOURCE_MTIME
    assert info.st_ino != source.stat().st_ino
    # The store object keeps its own metadata.
    assert stat.S_IMODE(source.stat().st_mode) == 0o444


def test_writing_into_a_clone_changes_neither_source_nor_other_clones(cloning_fs, unique):
    data = os.urandom(64 * 1024)
    source = _store_object(cloning_fs / unique / "store", data)
    first = _clone_into(source, cloning_fs / unique / "env1", "mod.py")
    second = _clone_into(source, cloning_fs / unique / "env2", "mod.py")

    with open(first, "r+b") as handle:
        handle.seek(4096)
        handle.write(b"X" * 4096)
    assert source.read_bytes() == data
    assert second.read_bytes() == data
    assert first.read_bytes() == data[:4096] + b"X" * 4096 + data[8192:]


def test_executable_mode_is_applied(cloning_fs, unique):
    source = _store_object(cloning_fs / unique / "store", b"#!/bin/sh\necho hi\n")
    target = _clone_into(source, cloning_fs / unique / "env", "tool", 0o755)
    assert stat.S_IMODE(target.stat().st_mode) == 0o755 & ~_umask()


def test_empty_file_clones(cloning_fs, unique):
    source = _store_object(cloning_fs / unique / "store", b"")
    target = _clone_into(source, cloning_fs / unique / "env", "__init__.py", 0o644, SOURCE_MTIME)
    assert target.read_bytes() == b""
    assert target.stat().st_mtime == SOURCE_MTIME


def test_large_file_clone_takes_no_new_space(cloning_fs, unique):
    data = os.urandom(50 * MiB)
    source = _store_object(cloning_fs / unique / "store", data)
    os.sync()
    before = os.statvfs(cloning_fs)
    target = _clone_into(source, cloning_fs / unique / "env", "big.so")
    os.sync()
    after = os.statvfs(cloning_fs)

    used = (before.f_bavail - after.f_bavail) * before.f_frsize
    assert used < 5 * MiB, f"a clone of 50 MiB used {used} bytes"
    assert linux.shares_extents(target)
    assert target.read_bytes() == data


def test_sparse_file_clones_with_its_holes(cloning_fs, unique):
    directory = cloning_fs / unique / "store"
    directory.mkdir(parents=True)
    source = directory / "sparse"
    with open(source, "wb") as handle:
        handle.truncate(50 * MiB)
        handle.seek(20 * MiB)
        handle.write(b"data" * 1024)
    target = _clone_into(source, cloning_fs / unique / "env", "sparse")

    assert target.stat().st_size == 50 * MiB
    assert linux.shares_extents(target)
    assert sum(length for _, _, length, _ in linux.extents(target)) < MiB
    with open(target, "rb") as handle:
        handle.seek(20 * MiB)
        assert handle.read(4096) == b"data" * 1024


@pytest.mark.parametrize("kind", ["ext4", "tmpfs"])
def test_filesystems_without_reflinks_fall_back_and_leave_no_target(request, kind, unique):
    root = request.getfixturevalue(kind)
    source = _store_object(root / unique / "store", b"payload")
    env = root / unique / "env"
    with pytest.raises(Unsupported) as caught:
        _clone_into(source, env, "mod.py")
    assert caught.value.errno == errno.EOPNOTSUPP
    assert os.listdir(env) == []


def test_clone_across_filesystems_falls_back_with_exdev(xfs, btrfs, unique):
    source = _store_object(xfs / unique / "store", b"payload")
    env = btrfs / unique / "env"
    with pytest.raises(Unsupported) as caught:
        _clone_into(source, env, "mod.py")
    assert caught.value.errno == errno.EXDEV
    assert os.listdir(env) == []


def test_existing_target_is_an_error_and_left_intact(cloning_fs, unique):
    source = _store_object(cloning_fs / unique / "store", b"from the store")
    env = cloning_fs / unique / "env"
    env.mkdir(parents=True)
    (env / "mod.py").write_bytes(b"already here")
    with pytest.raises(FileExistsError):
        _clone_into(source, env, "mod.py")
    assert (env / "mod.py").read_bytes() == b"already here"


def test_clone_with_a_full_path_and_no_directory_handle(cloning_fs, unique):
    # Larger than a block: btrfs keeps tiny files inline in metadata, never shared.
    source = _store_object(cloning_fs / unique / "store", os.urandom(64 * 1024))
    env = cloning_fs / unique / "env"
    env.mkdir(parents=True)
    linux.ficlone(str(source), str(env / "mod.py"), None, 0o644, None)
    assert linux.shares_extents(env / "mod.py")


@pytest.mark.parametrize("kind", ["xfs", "btrfs", "ext4", "tmpfs"])
def test_filesystem_names_for_messages(request, kind):
    assert linux.filesystem_name(str(request.getfixturevalue(kind))) == kind
