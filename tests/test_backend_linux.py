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
import sys
from pathlib import Path

import pytest

from holoclone_venv.errors import Unsupported
from holoclone_venv.hookspecs import CloneBackend
from holoclone_venv.platforms import Extent, current, linux
from holoclone_venv.platforms.reseed import reseed

FIXED_MTIME = 315532800
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
    platform = current()
    assert platform.plugin is linux.PLUGIN
    assert platform.plugin.holoclone_clone_backend() == CloneBackend("linux-ficlone", linux.ficlone, linux.ficlone_open)
    assert platform.extents is linux.extents and platform.make_durable is linux.make_durable


def test_clone_shares_extents_and_gets_its_own_mode_and_mtime(cloning_fs, unique):
    data = os.urandom(256 * 1024)
    source = _store_object(cloning_fs / unique / "store", data)
    target = _clone_into(source, cloning_fs / unique / "env", "mod.py", 0o644, FIXED_MTIME)

    assert target.read_bytes() == data
    assert linux.shares_extents(target) and linux.shares_extents(source)
    info = target.stat()
    assert stat.S_IMODE(info.st_mode) == 0o644 & ~_umask()
    assert info.st_mtime == FIXED_MTIME
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
    target = _clone_into(source, cloning_fs / unique / "env", "__init__.py", 0o644, FIXED_MTIME)
    assert target.read_bytes() == b""
    assert target.stat().st_mtime == FIXED_MTIME


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
    assert sum(extent.length for extent in linux.extents(target)) < MiB
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


def test_extents_are_shared_and_located_after_a_clone(cloning_fs, unique):
    source = _store_object(cloning_fs / unique / "store", os.urandom(256 * 1024))
    target = _clone_into(source, cloning_fs / unique / "env", "mod.py")
    ours, theirs = linux.extents(str(target)), linux.extents(str(source))
    assert ours and all(isinstance(extent, Extent) and extent.shared and extent.located for extent in ours)
    assert {e.physical for e in ours} == {e.physical for e in theirs}
    # Extent values come from the raw FIEMAP flags.
    raw = linux.fiemap(str(target))
    assert [bool(flags & linux.FIEMAP_EXTENT_SHARED) for *_, flags in raw] == [e.shared for e in ours]


def test_inline_extent_is_not_located(btrfs, unique):
    # btrfs keeps a tiny file inside its metadata: no disk location of its own.
    path = _store_object(btrfs / unique / "store", b"tiny")
    os.sync()
    found = linux.extents(str(path))
    assert found and not any(extent.located for extent in found)
    assert all(flags & linux.FIEMAP_EXTENT_DATA_INLINE for *_, flags in linux.fiemap(str(path)))


def test_reseeded_object_no_longer_shares_its_extents_with_its_clones(xfs, unique):
    # What the store does with an object whose references are saturated: a fresh, unshared copy.
    data = os.urandom(128 * 1024)
    source = _store_object(xfs / unique / "store", data)
    clone = _clone_into(source, xfs / unique / "env", "mod.py")
    before = source.stat()
    reseed(str(source), str(xfs / unique / "store" / "reseed-staged"))
    after = source.stat()
    assert after.st_ino != before.st_ino
    assert (stat.S_IMODE(after.st_mode), after.st_mtime_ns) == (0o444, before.st_mtime_ns)
    assert source.read_bytes() == data and clone.read_bytes() == data
    assert not linux.shares_extents(source)
    assert not {e.physical for e in linux.extents(str(source))} & {e.physical for e in linux.extents(str(clone))}
    assert os.listdir(source.parent) == [source.name]
    # And the fresh object clones again.
    again = _clone_into(source, xfs / unique / "env2", "mod.py")
    assert linux.shares_extents(again) and again.read_bytes() == data


# -- through the ioctl seam: what ZFS does, which no kernel here can show

class RecordingIoctl:
    """Stands in for fcntl.ioctl: answers FICLONE from a script, copying bytes where it "succeeds"."""

    def __init__(self, answers):
        self.answers = list(answers)  # per call: an errno to fail with, "ok", or "half"
        self.calls = []

    def __call__(self, fd, request, arg=0, *rest):
        assert request == linux.FICLONE
        self.calls.append((os.fstat(fd).st_ino, os.fstat(arg).st_ino))
        answer = self.answers.pop(0)
        if isinstance(answer, int):
            raise OSError(answer, os.strerror(answer))
        size = os.fstat(arg).st_size
        os.write(fd, os.pread(arg, size if answer == "ok" else size // 2, 0))
        return 0


@pytest.fixture
def seam(monkeypatch, tmp_path):
    """Install a recording ioctl and a recording filesystem sync; returns them and a source file."""

    def install(*answers):
        ioctl = RecordingIoctl(answers)
        synced = []
        monkeypatch.setattr(linux, "_ioctl", ioctl)
        monkeypatch.setattr(linux, "_sync_filesystem", lambda fd: synced.append(os.fstat(fd).st_ino))
        source = _store_object(tmp_path / "store", os.urandom(10000))
        (tmp_path / "env").mkdir()
        return ioctl, synced, source, tmp_path / "env"

    return install


def test_eagain_falls_back_for_this_file_without_a_useless_sync_and_leaves_no_target(seam):
    # OpenZFS 2.2-2.3.3: syncfs and sync(2) reach only zil_commit, which does not wait for the
    # transaction group, so a retry after them meets EAGAIN again: no sync, no retry.
    ioctl, synced, source, env = seam(errno.EAGAIN)
    with pytest.raises(Unsupported) as caught:
        _clone_into(source, env, "mod.py")
    assert caught.value.errno == errno.EAGAIN
    assert len(ioctl.calls) == 1 and synced == []
    assert os.listdir(env) == []


class UntilThePoolSyncs(RecordingIoctl):
    """ZFS 2.2-2.3.3 as the audit read it: EAGAIN for every block written since the last transaction
    group commit.  ``commit()`` plays the pool's own sync (zfs_txg_timeout, or ``zpool sync``)."""

    def __init__(self):
        super().__init__([])
        self.committed: set[int] = set()

    def commit(self, *paths):
        self.committed |= {os.stat(path).st_ino for path in paths}

    def __call__(self, fd, request, arg=0, *rest):
        self.answers.append("ok" if os.fstat(arg).st_ino in self.committed else errno.EAGAIN)
        return super().__call__(fd, request, arg, *rest)


def test_eagain_on_fresh_objects_never_disables_reflinks_for_the_pair(monkeypatch, tmp_path):
    # A cold run on ZFS: the first objects were written in the open transaction group, the
    # later ones are committed.  Only the fresh ones fall back; every committed one is a reflink.
    from holoclone_venv.materialize.linking import Linker, builtin_methods

    ioctl = UntilThePoolSyncs()
    monkeypatch.setattr(linux, "_ioctl", ioctl)
    objects = [_store_object(tmp_path / "store", os.urandom(5000), f"o{i}") for i in range(4)]
    ioctl.commit(*objects[2:])
    env = tmp_path / "env"
    env.mkdir()
    methods = builtin_methods(linux.ficlone)
    chain = (methods["reflink"], methods["copy"])
    linker = Linker(methods=chain)
    pair = (str(tmp_path / "store"), str(env))
    used = [linker.link(chain, pair, str(o), str(env / o.name), None, 0o644, None).name for o in objects]
    assert used == ["copy", "copy", "reflink", "reflink"]
    assert [(f.method, f.files, f.errno) for f in linker.fallbacks] == [("reflink", 2, errno.EAGAIN)]
    assert all((env / o.name).read_bytes() == o.read_bytes() for o in objects)


def test_other_refusals_are_not_retried(seam):
    ioctl, synced, source, env = seam(errno.EOPNOTSUPP)
    with pytest.raises(Unsupported) as caught:
        _clone_into(source, env, "mod.py")
    assert caught.value.errno == errno.EOPNOTSUPP
    assert len(ioctl.calls) == 1 and synced == []
    assert os.listdir(env) == []


def test_a_clone_reported_whole_but_short_is_a_failed_clone(seam):
    ioctl, _, source, env = seam("half")
    with pytest.raises(Unsupported) as caught:
        _clone_into(source, env, "mod.py")
    assert "cloned 5000 of 10000 bytes" in caught.value.reason
    assert os.listdir(env) == []


def test_real_errors_stay_errors_and_leave_no_target(seam):
    _, _, source, env = seam(errno.EIO)
    with pytest.raises(OSError) as caught:
        _clone_into(source, env, "mod.py")
    assert not isinstance(caught.value, Unsupported) and caught.value.errno == errno.EIO
    assert os.listdir(env) == []


# -- FICLONE per architecture (asm/ioctl.h: _IOW(0x94, 9, int))

@pytest.mark.parametrize(("arch", "expected"), [
    ("x86_64", 0x40049409), ("i686", 0x40049409), ("aarch64", 0x40049409), ("armv7l", 0x40049409),
    ("riscv64", 0x40049409), ("s390x", 0x40049409), ("loongarch64", 0x40049409),
    ("ppc64le", 0x80049409), ("ppc64", 0x80049409), ("ppc", 0x80049409),
    ("mips", 0x80049409), ("mips64", 0x80049409), ("sparc64", 0x80049409), ("alpha", 0x80049409),
    ("parisc64", 0x80049409),
])
def test_ficlone_encoding_per_architecture(arch, expected):
    assert linux.ficlone_request(arch) == expected


def test_ioc_encoding_matches_the_kernel_macros():
    # Generic: dir(2 bits) << 30 | size(14) << 16 | type << 8 | nr; powerpc: dir(3) << 29 | size(13) << 16 ...
    assert linux.ioc_write("x86_64", 0x94, 13, 32) == 0x4020940D  # FICLONERANGE
    assert linux.ioc_write("ppc64le", 0x94, 13, 32) == 0x8020940D


def test_ficlone_constant_is_this_machines():
    import fcntl

    from holoclone_venv.platforms import machine

    assert linux.FICLONE == getattr(fcntl, "FICLONE", None) or linux.FICLONE == linux.ficlone_request(machine())


# -- make_durable: one syncfs per batch

class FakeLibc:
    """libc with a recording syncfs that, like ctypes, refuses calls before its prototype is declared."""

    def __init__(self, result=0, error=0, missing=False):
        self.calls = []
        self.result, self.error, self.missing = result, error, missing
        self.syncfs = None if missing else self._Function(self)

    class _Function:
        def __init__(self, lib):
            self.lib, self.argtypes, self.restype = lib, None, None

        def __call__(self, fd):
            import ctypes

            assert self.argtypes == [ctypes.c_int] and self.restype is ctypes.c_int
            return self.lib._syncfs(fd)

    def _syncfs(self, fd):
        self.calls.append(os.fstat(fd).st_ino)
        if self.result:
            import ctypes

            ctypes.set_errno(self.error)
        return self.result


@pytest.fixture
def libc(monkeypatch):
    def install(**options):
        fake = FakeLibc(**options)
        syncs = []
        monkeypatch.setattr(linux, "_library", None)
        monkeypatch.setattr(linux, "_open_library", lambda: fake)
        monkeypatch.setattr(linux, "_sync", lambda: syncs.append(True))
        fake.syncs = syncs
        return fake

    return install


def _batch(directory: Path, count: int = 5) -> list[str]:
    paths = []
    for i in range(count):
        (directory / f"o{i}").write_bytes(b"x" * i)
        paths.append(str(directory / f"o{i}"))
    return paths


def test_make_durable_is_one_syncfs_on_the_directory(libc, tmp_path):
    fake = libc()
    linux.make_durable(str(tmp_path), _batch(tmp_path))
    assert fake.calls == [tmp_path.stat().st_ino] and fake.syncs == []


def test_make_durable_without_syncfs_syncs_everything(libc, tmp_path):
    fake = libc(missing=True)
    linux.make_durable(str(tmp_path), _batch(tmp_path))
    assert fake.syncs == [True]


def test_make_durable_refused_by_seccomp_syncs_everything(libc, tmp_path):
    fake = libc(result=-1, error=errno.ENOSYS)
    linux.make_durable(str(tmp_path), _batch(tmp_path))
    assert len(fake.calls) == 1 and fake.syncs == [True]


def test_make_durable_reports_an_io_error(libc, tmp_path):
    libc(result=-1, error=errno.EIO)
    with pytest.raises(OSError) as caught:
        linux.make_durable(str(tmp_path), _batch(tmp_path))
    assert caught.value.errno == errno.EIO


def test_make_durable_with_nothing_or_a_vanished_directory_does_nothing(libc, tmp_path):
    fake = libc()
    linux.make_durable(str(tmp_path), [])
    linux.make_durable(str(tmp_path / "gone"), [str(tmp_path / "gone" / "o")])
    assert fake.calls == [] and fake.syncs == []


def test_make_durable_really_syncs(tmp_path):
    paths = _batch(tmp_path)
    assert linux._libc_function("syncfs") is not None  # glibc and musl have had it for a decade
    linux.make_durable(str(tmp_path), paths)


# -- filesystem names without a mount: compared with what stat(1) reads

def test_filesystem_name_matches_stat(tmp_path):
    import shutil
    import subprocess

    if shutil.which("stat") is None:
        pytest.skip("no stat(1) to compare with")
    magic = int(subprocess.run(["stat", "-f", "-c", "%t", str(tmp_path)], capture_output=True, text=True,
                               check=True).stdout.strip(), 16)
    assert linux.filesystem_name(str(tmp_path)) == linux._FS_MAGIC.get(magic, f"0x{magic:x}")
    assert linux.filesystem_name(str(tmp_path / "gone")) is None


# -- L3: statfs f_type is __fsword_t: 32 bits on s390x, long elsewhere

@pytest.mark.parametrize(("arch", "width"), [("s390x", 4), ("x86_64", None), ("aarch64", None), ("ppc64le", None)])
def test_statfs_f_type_has_the_width_of_the_architectures_fsword(monkeypatch, arch, width):
    import ctypes

    monkeypatch.setattr(linux, "machine", lambda: arch)
    # The uncached function: the cached structure is the one statfs's prototype was declared with.
    head = linux._statfs_type.__wrapped__()
    assert head.f_type.offset == 0
    assert head.f_type.size == (width or ctypes.sizeof(ctypes.c_long))
    if width:  # on s390x a long would read f_type and the 4 bytes after it
        buf = head()
        ctypes.memmove(ctypes.addressof(buf), (0x9123683E).to_bytes(4, sys.byteorder) + b"\xff" * 4, 8)
        assert buf.f_type == 0x9123683E
