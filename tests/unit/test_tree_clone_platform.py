"""Whole-tree cloners without root or mounts: ioctl encodings, struct layouts, the exact calls, Platform.tree."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys

import pytest

from holoclone_venv.errors import Unsupported
from holoclone_venv.platforms import Platform, TreeCloner, base, btrfs, current, darwin, is_subvolume, linux

#: From linux/btrfs.h compiled on x86_64 (gcc, printf of each macro).
X86_64 = {
    "BTRFS_IOC_SUBVOL_CREATE": 0x5000940E,
    "BTRFS_IOC_SNAP_DESTROY": 0x5000940F,
    "BTRFS_IOC_SNAP_CREATE_V2": 0x50009417,
    "BTRFS_IOC_SUBVOL_GETFLAGS": 0x80089419,
    "BTRFS_IOC_SUBVOL_SETFLAGS": 0x4008941A,
}
#: powerpc (asm/ioctl.h): _IOC_WRITE=4, _IOC_READ=2, 13 size bits, so the direction sits at bit 29.
PPC64LE = {
    "BTRFS_IOC_SUBVOL_CREATE": 0x9000940E,
    "BTRFS_IOC_SNAP_DESTROY": 0x9000940F,
    "BTRFS_IOC_SNAP_CREATE_V2": 0x90009417,
    "BTRFS_IOC_SUBVOL_GETFLAGS": 0x40089419,
    "BTRFS_IOC_SUBVOL_SETFLAGS": 0x8008941A,
}


@pytest.fixture
def fresh(monkeypatch):
    current.cache_clear()
    yield monkeypatch
    current.cache_clear()


@pytest.mark.parametrize(("arch", "expected"), [
    ("x86_64", X86_64), ("aarch64", X86_64), ("riscv64", X86_64), ("s390x", X86_64),
    ("ppc64le", PPC64LE), ("ppc64", PPC64LE), ("mips64", PPC64LE), ("sparc64", PPC64LE),
])
def test_ioctl_numbers_per_architecture(arch, expected):
    assert btrfs.requests(arch) == expected


def test_read_and_write_swap_on_parisc_and_the_size_must_fit():
    assert linux.ioc_read("parisc", 0x94, 25, 8) == 0x40089419
    assert linux.ioc_write("parisc", 0x94, 26, 8) == 0x8008941A
    assert linux.ioc_write("x86_64", 0x94, 9, 4) == 0x40049409  # FICLONE, unchanged
    with pytest.raises(ValueError):
        linux.ioc_write("ppc64le", 0x94, 14, 8192)  # 13 size bits there


def test_this_machine_uses_its_own_numbers():
    found = btrfs.requests(base.machine())
    assert btrfs.BTRFS_IOC_SUBVOL_CREATE == found["BTRFS_IOC_SUBVOL_CREATE"]
    assert btrfs.BTRFS_IOC_SNAP_CREATE_V2 == found["BTRFS_IOC_SNAP_CREATE_V2"]
    assert btrfs.BTRFS_IOC_SNAP_DESTROY == found["BTRFS_IOC_SNAP_DESTROY"]
    assert btrfs.BTRFS_IOC_SUBVOL_GETFLAGS == found["BTRFS_IOC_SUBVOL_GETFLAGS"]
    assert btrfs.BTRFS_IOC_SUBVOL_SETFLAGS == found["BTRFS_IOC_SUBVOL_SETFLAGS"]
    if base.machine() == "x86_64":
        assert found == X86_64


def test_struct_layouts():
    assert btrfs.VOL_ARGS.size == btrfs.VOL_ARGS_V2.size == 4096
    assert btrfs.FLAGS.size == 8
    assert btrfs.BTRFS_SUBVOL_RDONLY == 2 and btrfs.BTRFS_FIRST_FREE_OBJECTID == 256
    v1 = btrfs.VOL_ARGS.pack(-1, b"tmpl")
    assert v1[:8] == b"\xff" * 8 and v1[8:13] == b"tmpl\0" and v1[13:] == bytes(4096 - 13)
    v2 = btrfs.VOL_ARGS_V2.pack(7, 1, 2, 3, 4, 5, 6, b"clone")
    assert int.from_bytes(v2[0:8], sys.byteorder) == 7  # fd
    assert int.from_bytes(v2[16:24], sys.byteorder) == 2  # flags
    assert v2[56:62] == b"clone\0"  # name after fd, transid, flags and the 32-byte union


class RecordingIoctl:
    def __init__(self, fail: int | None = None) -> None:
        self.calls, self.fail = [], fail

    def __call__(self, fd, request, buffer, mutate):
        assert isinstance(buffer, bytearray) and mutate is True  # large buffers are passed, not copied
        self.calls.append((os.readlink(f"/proc/self/fd/{fd}"), request, bytes(buffer)))
        if self.fail is not None:
            raise OSError(self.fail, os.strerror(self.fail))


def test_prepare_template_is_one_subvol_create_on_the_parent(monkeypatch, tmp_path):
    ioctl = RecordingIoctl()
    monkeypatch.setattr(btrfs, "_ioctl", ioctl)
    btrfs.TREE.prepare_template(str(tmp_path / "tmpl") + "/")
    assert ioctl.calls == [(str(tmp_path), btrfs.BTRFS_IOC_SUBVOL_CREATE, btrfs.VOL_ARGS.pack(0, b"tmpl"))]


@pytest.mark.parametrize("kernel", ["4.12", "4.18"])
def test_a_template_is_made_only_where_the_owner_can_remove_snapshots(monkeypatch, tmp_path, kernel):
    # Before Linux 4.18, rmdir of a subvolume is EPERM for its owner: rm -rf ENV and
    # virtualenv --clear would fail on every snapshot environment.  The kernel lists the feature.
    features = tmp_path / "features"
    features.mkdir()
    if kernel == "4.18":
        (features / "rmdir_subvol").write_text("0\n")
    ioctl = RecordingIoctl()
    monkeypatch.setattr(btrfs, "_ioctl", ioctl)
    monkeypatch.setattr(btrfs, "FEATURES", str(features))
    monkeypatch.setattr(btrfs, "filesystem_name", lambda path: "btrfs")
    (tmp_path / "store").mkdir()
    if kernel == "4.12":
        with pytest.raises(Unsupported) as caught:
            btrfs.TREE.prepare_template(str(tmp_path / "store" / "tmpl"))
        assert caught.value.errno == errno.EPERM and "rmdir_subvol, Linux 4.18" in caught.value.reason
        assert ioctl.calls == [] and os.listdir(tmp_path / "store") == []
    else:
        btrfs.TREE.prepare_template(str(tmp_path / "store" / "tmpl"))
        assert [call[1] for call in ioctl.calls] == [btrfs.BTRFS_IOC_SUBVOL_CREATE]


@pytest.mark.parametrize(("code", "unsupported"), [
    (errno.ENOTTY, True), (errno.EOPNOTSUPP, True), (errno.EXDEV, True), (errno.EPERM, True),
    (errno.EACCES, True), (errno.EINVAL, True), (errno.ENOSPC, False), (errno.EDQUOT, False),
    (errno.EROFS, False), (errno.EEXIST, False),
])
def test_errno_mapping(monkeypatch, tmp_path, code, unsupported):
    monkeypatch.setattr(btrfs, "_ioctl", RecordingIoctl(fail=code))
    with pytest.raises(OSError if not unsupported else Unsupported) as caught:
        btrfs.TREE.prepare_template(str(tmp_path / "tmpl"))
    assert caught.value.errno == code
    assert isinstance(caught.value, Unsupported) == unsupported
    if unsupported:
        assert "BTRFS_IOC_SUBVOL_CREATE" in caught.value.reason
    elif code == errno.EEXIST:
        assert isinstance(caught.value, FileExistsError)


@pytest.mark.parametrize("name", ["", ".", "..", "x" * 4040])
def test_names_a_subvolume_cannot_have(monkeypatch, tmp_path, name):
    ioctl = RecordingIoctl()
    monkeypatch.setattr(btrfs, "_ioctl", ioctl)
    with pytest.raises(OSError) as caught:
        btrfs.TREE.clone(str(tmp_path), os.path.join(str(tmp_path), name) if name else "")
    assert caught.value.errno in (errno.EINVAL, errno.ENAMETOOLONG)
    assert ioctl.calls == []


def test_only_a_subvolume_root_is_cloned_or_sealed(monkeypatch, tmp_path):
    ioctl = RecordingIoctl()
    monkeypatch.setattr(btrfs, "_ioctl", ioctl)
    (tmp_path / "plain").mkdir()
    for call in (lambda: btrfs.TREE.clone(str(tmp_path / "plain"), str(tmp_path / "c")),
                 lambda: btrfs.TREE.seal(str(tmp_path / "plain"))):
        with pytest.raises(Unsupported):
            call()
    assert ioctl.calls == [] and not os.path.lexists(tmp_path / "c")


def test_the_kernel_refuses_outside_btrfs(tmp_path):
    if linux.filesystem_name(str(tmp_path)) == "btrfs":
        pytest.skip("the temporary directory is on btrfs")
    with pytest.raises(Unsupported) as caught:
        btrfs.TREE.prepare_template(str(tmp_path / "tmpl"))
    assert caught.value.errno == errno.ENOTTY and os.listdir(tmp_path) == []
    assert not is_subvolume(str(tmp_path)) and not btrfs.is_subvolume(str(tmp_path / "missing"))


def test_remove_of_an_ordinary_tree_asks_btrfs_nothing(monkeypatch, tmp_path):
    ioctl = RecordingIoctl()
    monkeypatch.setattr(btrfs, "_ioctl", ioctl)
    (tmp_path / "t" / "a").mkdir(parents=True)
    (tmp_path / "t" / "a" / "f").write_bytes(b"x")
    btrfs.TREE.remove(str(tmp_path / "t"))
    assert not os.path.lexists(tmp_path / "t") and ioctl.calls == []


def test_remove_tree_refuses_a_symlink(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f").write_bytes(b"x")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(OSError):
        base.remove_tree(str(tmp_path / "link"))
    assert (tmp_path / "real" / "f").exists()


def test_a_directory_without_write_permission_is_opened_up_once(tmp_path):
    # Root never sees the PermissionError, so the handler is called here as rmtree would call it.
    directory = tmp_path / "ro"
    directory.mkdir()
    (directory / "f").write_bytes(b"x")
    os.chmod(directory, 0o555)
    denied = PermissionError(errno.EACCES, "denied")
    with pytest.raises(PermissionError):  # not an unlink or rmdir: nothing to open up
        base._make_writable_and_retry(os.open, str(directory / "f"), (type(denied), denied, None))
    io_error = OSError(errno.EIO, "io")
    with pytest.raises(OSError):
        base._make_writable_and_retry(os.unlink, str(directory / "f"), (type(io_error), io_error, None))
    assert stat.S_IMODE(directory.stat().st_mode) == 0o555

    base._make_writable_and_retry(os.unlink, str(directory / "f"), (type(denied), denied, None))
    assert stat.S_IMODE(directory.stat().st_mode) == 0o755 and os.listdir(directory) == []
    (directory / "g").write_bytes(b"x")
    with pytest.raises(PermissionError):  # already writable: the denial is about something else
        base._make_writable_and_retry(os.unlink, str(directory / "g"), (type(denied), denied, None))
    assert (directory / "g").exists()


def test_platform_has_a_tree_field():
    assert "tree" in Platform._fields
    assert TreeCloner._fields == ("name", "prepare_template", "seal", "clone", "remove", "in_smart", "is_template",
                                  "clones_keep_seal")


@pytest.mark.parametrize(("sys_platform", "expected"), [
    ("linux", "btrfs-snapshot"), ("darwin", "darwin-clonefile"), ("win32", None), ("freebsd14", None),
])
def test_current_tree_per_platform(fresh, sys_platform, expected):
    fresh.setattr(sys, "platform", sys_platform)
    tree = current().tree
    if expected is None:
        assert tree is None
        return
    assert isinstance(tree, TreeCloner) and tree.name == expected
    assert tree is {"linux": btrfs.TREE, "darwin": darwin.TREE}[sys_platform]
    assert all(callable(function) for function in tree[1:5])
    # smart clones whole trees only where that has no side effects: macOS yes, btrfs (subvolumes) no.
    assert tree.in_smart is (sys_platform == "darwin")


def test_is_subvolume_is_false_off_linux(fresh, tmp_path):
    fresh.setattr(sys, "platform", "darwin")
    fresh.setattr(btrfs, "is_subvolume", lambda path: pytest.fail("btrfs asked off Linux"))
    assert is_subvolume(str(tmp_path)) is False


def test_importing_the_platforms_package_still_loads_no_platform_module():
    code = ("import sys, holoclone_venv.platforms as p\n"
            "assert p.TreeCloner and 'holoclone_venv.platforms.btrfs' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)
