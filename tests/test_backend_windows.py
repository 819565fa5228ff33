"""The Windows block-clone backend, run here against a recording stand-in for kernel32.

No Windows kernel is available, so the stand-in plays its part: each call
is checked against the declared ``argtypes`` as ctypes would, handles are
64-bit values backed by real files in ``tmp_path``, and
FSCTL_DUPLICATE_EXTENTS_TO_FILE enforces what ReFS enforces (cluster
alignment, calls under 4 GiB, the target's end of file set beforehand)
before copying the bytes it was asked to share.  Errors are scripted per
step as GetLastError codes.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import subprocess
import sys

import pluggy
import pytest

from holoclone_venv import hookspecs
from holoclone_venv.errors import Unsupported
from holoclone_venv.platforms import windows as win

GiB = 1 << 30
UNSET = object()
IOCTL_NAMES = {
    win.FSCTL_SET_SPARSE: "FSCTL_SET_SPARSE",
    win.FSCTL_GET_INTEGRITY_INFORMATION: "FSCTL_GET_INTEGRITY_INFORMATION",
    win.FSCTL_SET_INTEGRITY_INFORMATION: "FSCTL_SET_INTEGRITY_INFORMATION",
    win.FSCTL_DUPLICATE_EXTENTS_TO_FILE: "FSCTL_DUPLICATE_EXTENTS_TO_FILE",
}


class FakeFunction:
    def __init__(self, lib: "FakeKernel32", name: str) -> None:
        self.lib, self.name = lib, name
        self.argtypes = None
        self.restype = UNSET

    def __call__(self, *args):
        assert self.argtypes is not None and self.restype is not UNSET, f"{self.name} called undeclared"
        assert len(args) == len(self.argtypes), f"{self.name}: {len(args)} arguments"
        for value, argtype in zip(args, self.argtypes):
            argtype.from_param(value)  # raises TypeError where ctypes would
        return getattr(self.lib, "_" + self.name)(*args)


class FakeKernel32:
    """The kernel32 functions the backend uses, on real files, with scripted failures.

    ``fail`` maps a step (a function name, or an FSCTL name) to the
    GetLastError code it answers; ``fail_at`` makes only the n-th call
    (counting from 1) of that step fail.  ``size`` pretends the source has
    that many bytes (so 4 GiB files cost nothing).
    """

    def __init__(self, cluster=4096, size=None, sparse=False, integrity=(0, 0), fail=None, fail_at=None) -> None:
        self.cluster, self.size, self.sparse, self.integrity = cluster, size, sparse, integrity
        self.fail, self.fail_at = dict(fail or {}), dict(fail_at or {})
        self.last_error = 0
        self.steps: list[tuple] = []
        self.counts: dict[str, int] = {}
        self.handles: dict[int, tuple[int, str]] = {}
        self.eof: dict[int, int] = {}
        self._next = 0x7FFF_0000_0000_0010  # above 32 bits: a truncated handle would show
        self.functions = {name: FakeFunction(self, name) for name in win.PROTOTYPES}

    def __getattr__(self, name):
        try:
            return self.__dict__["functions"][name]
        except KeyError:
            raise AttributeError(name) from None

    # -- helpers
    def _failing(self, step: str) -> bool:
        self.counts[step] = self.counts.get(step, 0) + 1
        if step in self.fail and self.fail_at.get(step, self.counts[step]) == self.counts[step]:
            self.last_error = self.fail[step]
            return True
        return False

    def _name(self, handle: int) -> str:
        return "source" if self.handles[handle][1].endswith("source") else "target"

    def _source_size(self, handle: int) -> int:
        return self.size if self.size is not None else os.fstat(self.handles[handle][0]).st_size

    # -- kernel32
    def _CreateFileW(self, path, access, share, security, disposition, flags, template):
        self.steps.append(("CreateFileW", path, access, share, disposition))
        if self._failing("CreateFileW"):
            return win.INVALID_HANDLE_VALUE
        try:
            if disposition == win.CREATE_NEW:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
            else:
                fd = os.open(path, os.O_RDONLY)
        except FileExistsError:
            self.last_error = win.ERROR_FILE_EXISTS
            return win.INVALID_HANDLE_VALUE
        except FileNotFoundError:
            self.last_error = win.ERROR_FILE_NOT_FOUND
            return win.INVALID_HANDLE_VALUE
        handle = self._next
        self._next += 4
        self.handles[handle] = (fd, path)
        return handle

    def _CloseHandle(self, handle):
        self.steps.append(("CloseHandle", self._name(handle)))
        fd, _ = self.handles.pop(handle)
        os.close(fd)
        return 1

    def _DeleteFileW(self, path):
        self.steps.append(("DeleteFileW", path))
        os.unlink(path)
        return 1

    def _GetFileSizeEx(self, handle, size):
        self.steps.append(("GetFileSizeEx", self._name(handle)))
        size._obj.value = self._source_size(handle)
        return 1

    def _GetFileInformationByHandleEx(self, handle, kind, buf, length):
        assert kind == win.FILE_BASIC_INFO_CLASS and length == ctypes.sizeof(win.FILE_BASIC_INFO)
        self.steps.append(("GetFileInformationByHandleEx", self._name(handle)))
        buf._obj.FileAttributes = win.FILE_ATTRIBUTE_SPARSE_FILE if self.sparse else win.FILE_ATTRIBUTE_NORMAL
        return 1

    def _SetFileInformationByHandle(self, handle, kind, buf, length):
        info = buf._obj
        assert length == ctypes.sizeof(info)
        fd = self.handles[handle][0]
        if kind == win.FILE_END_OF_FILE_INFO_CLASS:
            self.steps.append(("SetEndOfFile", self._name(handle), info.EndOfFile))
            if self._failing("SetEndOfFile"):
                return 0
            self.eof[handle] = info.EndOfFile
            if self.size is None:
                os.ftruncate(fd, info.EndOfFile)
            return 1
        assert kind == win.FILE_BASIC_INFO_CLASS
        self.steps.append(("SetBasicInfo", self._name(handle), info.LastAccessTime, info.LastWriteTime,
                           info.CreationTime, info.ChangeTime, info.FileAttributes))
        if self._failing("SetBasicInfo"):
            return 0
        if info.LastWriteTime:
            seconds = (info.LastWriteTime - win._FILETIME_EPOCH) // 10_000_000
            os.utime(fd, (seconds, seconds))
        if info.FileAttributes & win.FILE_ATTRIBUTE_READONLY:
            os.fchmod(fd, 0o444)
        return 1

    def _GetVolumePathNameW(self, path, buf, length):
        self.steps.append(("GetVolumePathNameW",))
        buf.value = "R:\\"
        return 1

    def _GetDiskFreeSpaceW(self, root, sectors, sector_bytes, free, total):
        self.steps.append(("GetDiskFreeSpaceW", root))
        sectors._obj.value = self.cluster // 512
        sector_bytes._obj.value = 512
        free._obj.value = total._obj.value = 1000
        return 1

    def _GetVolumeInformationW(self, root, name, name_size, serial, components, flags, fs_name, fs_name_size):
        self.steps.append(("GetVolumeInformationW", root))
        if self._failing("GetVolumeInformationW"):
            return 0
        fs_name.value = "ReFS"
        return 1

    def _DeviceIoControl(self, handle, code, inbuf, insize, outbuf, outsize, returned, overlapped):
        name = IOCTL_NAMES[code]
        assert overlapped is None
        if name == "FSCTL_GET_INTEGRITY_INFORMATION":
            self.steps.append((name, self._name(handle)))
            if self._failing(name):
                return 0
            assert outsize == ctypes.sizeof(win.FSCTL_GET_INTEGRITY_INFORMATION_BUFFER) == 16
            out = outbuf._obj
            out.ChecksumAlgorithm, out.Flags = self.integrity
            out.ClusterSizeInBytes = self.cluster
            return 1
        if name == "FSCTL_SET_INTEGRITY_INFORMATION":
            data = inbuf._obj
            assert insize == ctypes.sizeof(data) == 8
            self.steps.append((name, self._name(handle), data.ChecksumAlgorithm, data.Flags))
            return 0 if self._failing(name) else 1
        if name == "FSCTL_SET_SPARSE":
            self.steps.append((name, self._name(handle)))
            return 0 if self._failing(name) else 1
        request = inbuf._obj
        assert insize == ctypes.sizeof(request) == 32
        assert request.SourceFileOffset == request.TargetFileOffset
        self.steps.append((name, self._name(request.FileHandle), request.SourceFileOffset, request.ByteCount))
        if self._failing(name):
            return 0
        # What ReFS refuses: unaligned regions, 4 GiB or more at once, a region past the end of file.
        eof = self.eof.get(handle, 0)
        cluster = self.cluster
        if (request.SourceFileOffset % cluster or request.ByteCount % cluster or request.ByteCount >= 1 << 32
                or request.SourceFileOffset + request.ByteCount > -(-eof // cluster) * cluster):
            self.last_error = win.ERROR_INVALID_PARAMETER
            return 0
        if self.size is None:
            src_fd, dst_fd = self.handles[request.FileHandle][0], self.handles[handle][0]
            data = os.pread(src_fd, request.ByteCount, request.SourceFileOffset)
            os.pwrite(dst_fd, data, request.TargetFileOffset)
        return 1


@pytest.fixture
def kernel32(monkeypatch):
    """Install a stand-in kernel32; ``kernel32(**options)`` replaces it with another."""

    def install(**options) -> FakeKernel32:
        lib = FakeKernel32(**options)
        monkeypatch.setattr(win, "_open_library", lambda: lib)
        monkeypatch.setattr(win, "_last_error", lambda: lib.last_error)
        monkeypatch.setattr(win, "_library", None)
        monkeypatch.setattr(win, "_cluster_sizes", {})
        return lib

    return install


@pytest.fixture
def places(tmp_path):
    source = tmp_path / "store" / "source"
    source.parent.mkdir()
    source.write_bytes(os.urandom(5000))
    env = tmp_path / "env"
    env.mkdir()
    return source, env


def _clone(source, target, mode=0o644, mtime=None):
    win.duplicate_extents(str(source), str(target), None, mode, mtime)


def _duplicates(lib):
    return [(offset, count) for step, _, offset, count in
            (s for s in lib.steps if s[0] == "FSCTL_DUPLICATE_EXTENTS_TO_FILE")]


def test_module_imports_without_kernel32():
    # Loading kernel32 at import would fail here: ctypes has no WinDLL on Linux.
    code = "import holoclone_venv.platforms.windows as w; assert w._library is None"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_registers_as_the_clone_backend_plugin():
    pm = pluggy.PluginManager("holoclone")
    pm.add_hookspecs(hookspecs)
    pm.register(win)
    backend = pm.hook.holoclone_clone_backend()
    assert backend.name == "windows-duplicate-extents"
    assert backend.clone is win.duplicate_extents


def test_structures_have_the_windows_layout():
    def layout(struct):
        return ctypes.sizeof(struct), [getattr(struct, name).offset for name, _ in struct._fields_]

    assert layout(win.DUPLICATE_EXTENTS_DATA) == (32, [0, 8, 16, 24])
    assert layout(win.FSCTL_GET_INTEGRITY_INFORMATION_BUFFER) == (16, [0, 2, 4, 8, 12])
    assert layout(win.FSCTL_SET_INTEGRITY_INFORMATION_BUFFER) == (8, [0, 2, 4])
    assert layout(win.FILE_BASIC_INFO) == (40, [0, 8, 16, 24, 32])
    assert layout(win.FILE_END_OF_FILE_INFO) == (8, [0])


def test_control_codes_match_ctl_code():
    def ctl_code(function, access, device=9, method=0):  # FILE_DEVICE_FILE_SYSTEM, METHOD_BUFFERED
        return device << 16 | access << 14 | function << 2 | method

    assert win.FSCTL_DUPLICATE_EXTENTS_TO_FILE == ctl_code(209, 2) == 0x00098344  # FILE_WRITE_DATA
    assert win.FSCTL_SET_SPARSE == ctl_code(49, 0)
    assert win.FSCTL_GET_INTEGRITY_INFORMATION == ctl_code(159, 0)
    assert win.FSCTL_SET_INTEGRITY_INFORMATION == ctl_code(160, 3)  # FILE_READ_DATA | FILE_WRITE_DATA


def test_every_function_has_its_prototype_declared(kernel32, places):
    lib = kernel32(sparse=True)
    source, env = places
    _clone(source, env / "mod.py", 0o444, 315532800)
    win.filesystem_name(str(env))
    for function in lib.functions.values():
        assert function.argtypes is not None and function.restype is not UNSET, function.name
    # Handles are pointer-sized both ways, never C ints.
    assert lib.functions["CreateFileW"].restype is win.HANDLE
    assert lib.functions["DeviceIoControl"].argtypes[0] is win.HANDLE
    assert lib.functions["CloseHandle"].argtypes == [win.HANDLE]


def test_clone_sequence_for_a_small_file(kernel32, places):
    lib = kernel32(integrity=(2, 1))
    source, env = places
    target = env / "mod.py"
    _clone(source, target)

    write = win.GENERIC_READ | win.GENERIC_WRITE | win.DELETE
    assert lib.steps == [
        ("CreateFileW", str(source), win.GENERIC_READ, win.FILE_SHARE_READ | win.FILE_SHARE_DELETE, win.OPEN_EXISTING),
        ("GetFileSizeEx", "source"),
        ("GetFileInformationByHandleEx", "source"),
        ("FSCTL_GET_INTEGRITY_INFORMATION", "source"),
        ("CreateFileW", str(target), write, 0, win.CREATE_NEW),
        ("FSCTL_SET_INTEGRITY_INFORMATION", "target", 2, 1),
        ("SetEndOfFile", "target", 5000),
        ("GetVolumePathNameW",),
        ("GetDiskFreeSpaceW", "R:\\"),
        ("FSCTL_DUPLICATE_EXTENTS_TO_FILE", "source", 0, 8192),
        ("CloseHandle", "target"),
        ("CloseHandle", "source"),
    ]
    assert target.read_bytes() == source.read_bytes()
    assert lib.handles == {}


C4K, C64K = 4096, 65536


@pytest.mark.parametrize(("cluster", "size", "expected"), [
    (C4K, 0, []),
    (C4K, 1, [(0, C4K)]),
    (C4K, C4K - 1, [(0, C4K)]),
    (C4K, C4K, [(0, C4K)]),
    (C4K, C4K + 1, [(0, 2 * C4K)]),
    (C4K, 4 * GiB - 1, [(0, 4 * GiB - C4K), (4 * GiB - C4K, C4K)]),
    (C4K, 4 * GiB, [(0, 4 * GiB - C4K), (4 * GiB - C4K, C4K)]),
    (C4K, 4 * GiB + C4K + 1, [(0, 4 * GiB - C4K), (4 * GiB - C4K, 3 * C4K)]),
    (C64K, 1, [(0, C64K)]),
    (C64K, C64K + 1, [(0, 2 * C64K)]),
    (C64K, 4 * GiB + C64K + 1, [(0, 4 * GiB - C64K), (4 * GiB - C64K, 3 * C64K)]),
    (C64K, 10 * GiB, [(0, 4 * GiB - C64K), (4 * GiB - C64K, 4 * GiB - C64K), (8 * GiB - 2 * C64K, 2 * GiB + 2 * C64K)]),
])
def test_chunks_are_aligned_under_4_gib_and_the_last_rounded_up(kernel32, places, cluster, size, expected):
    lib = kernel32(cluster=cluster, size=size)
    source, env = places
    _clone(source, env / "big")
    assert _duplicates(lib) == expected
    assert ("SetEndOfFile", "target", size) in lib.steps
    # The stand-in refuses what ReFS refuses, so getting here means every call was acceptable.
    assert lib.handles == {}


def test_sparse_source_makes_a_sparse_target_before_cloning(kernel32, places):
    lib = kernel32(sparse=True)
    source, env = places
    _clone(source, env / "sparse")
    names = [step[0] for step in lib.steps]
    assert ("FSCTL_SET_SPARSE", "target") in lib.steps
    assert names.index("FSCTL_SET_SPARSE") < names.index("FSCTL_DUPLICATE_EXTENTS_TO_FILE")


def test_dense_source_leaves_the_target_dense(kernel32, places):
    lib = kernel32()
    source, env = places
    _clone(source, env / "dense")
    assert "FSCTL_SET_SPARSE" not in [step[0] for step in lib.steps]


def test_read_only_mode_and_mtime_are_set_last(kernel32, places):
    lib = kernel32()
    source, env = places
    target = env / "mod.py"
    _clone(source, target, 0o444, 315532800)
    filetime_1980 = 0x01A8E79FE1D58000  # 1980-01-01T00:00:00Z as a FILETIME
    assert lib.steps[-3] == ("SetBasicInfo", "target", filetime_1980, filetime_1980, 0, 0, win.FILE_ATTRIBUTE_READONLY)
    assert target.stat().st_mtime == 315532800
    assert stat.S_IMODE(target.stat().st_mode) == 0o444


def test_writable_file_without_mtime_needs_no_basic_info(kernel32, places):
    lib = kernel32()
    source, env = places
    _clone(source, env / "mod.py", 0o644, None)
    assert "SetBasicInfo" not in [step[0] for step in lib.steps]


def test_cluster_size_is_asked_once_per_directory(kernel32, places):
    lib = kernel32()
    source, env = places
    _clone(source, env / "a")
    _clone(source, env / "b")
    assert [step[0] for step in lib.steps].count("GetDiskFreeSpaceW") == 1


def test_ntfs_falls_back_before_creating_a_target(kernel32, places):
    lib = kernel32(fail={"FSCTL_GET_INTEGRITY_INFORMATION": win.ERROR_INVALID_FUNCTION})
    source, env = places
    with pytest.raises(Unsupported) as caught:
        _clone(source, env / "mod.py")
    assert caught.value.errno == errno.EOPNOTSUPP
    assert "ReFS" in caught.value.reason
    assert [step for step in lib.steps if step[0] == "CreateFileW"] == [lib.steps[0]]
    assert os.listdir(env) == [] and lib.handles == {}


@pytest.mark.parametrize("code", [win.ERROR_INVALID_FUNCTION, win.ERROR_NOT_SUPPORTED, win.ERROR_INVALID_PARAMETER,
                                  win.ERROR_BLOCK_TOO_MANY_REFERENCES, win.ERROR_NOT_SAME_DEVICE])
def test_cannot_clone_here_falls_back_and_deletes_the_target(kernel32, places, code):
    lib = kernel32(fail={"FSCTL_DUPLICATE_EXTENTS_TO_FILE": code})
    source, env = places
    target = env / "mod.py"
    with pytest.raises(Unsupported):
        _clone(source, target)
    assert ("DeleteFileW", str(target)) in lib.steps
    assert os.listdir(env) == [] and lib.handles == {}


def test_full_disk_is_an_error_and_deletes_the_target(kernel32, places):
    lib = kernel32(fail={"FSCTL_DUPLICATE_EXTENTS_TO_FILE": win.ERROR_DISK_FULL})
    source, env = places
    with pytest.raises(OSError) as caught:
        _clone(source, env / "mod.py")
    assert not isinstance(caught.value, Unsupported)
    assert caught.value.errno == errno.ENOSPC and caught.value.winerror == win.ERROR_DISK_FULL
    assert os.listdir(env) == [] and lib.handles == {}


def test_failure_in_a_later_chunk_deletes_the_target(kernel32, places):
    lib = kernel32(size=5 * GiB, fail={"FSCTL_DUPLICATE_EXTENTS_TO_FILE": win.ERROR_DISK_FULL},
                   fail_at={"FSCTL_DUPLICATE_EXTENTS_TO_FILE": 2})
    source, env = places
    with pytest.raises(OSError):
        _clone(source, env / "big")
    assert len(_duplicates(lib)) == 2
    assert os.listdir(env) == [] and lib.handles == {}


@pytest.mark.parametrize("step", ["SetEndOfFile", "FSCTL_SET_INTEGRITY_INFORMATION", "SetBasicInfo"])
def test_failed_preparation_or_finish_deletes_the_target(kernel32, places, step):
    lib = kernel32(sparse=True, fail={step: win.ERROR_DISK_FULL})
    source, env = places
    with pytest.raises(OSError):
        _clone(source, env / "mod.py", 0o444, 315532800)
    assert os.listdir(env) == [] and lib.handles == {}


def test_existing_target_is_an_error_and_left_intact(kernel32, places):
    lib = kernel32()
    source, env = places
    (env / "mod.py").write_bytes(b"mine")
    with pytest.raises(FileExistsError) as caught:
        _clone(source, env / "mod.py")
    assert caught.value.winerror == win.ERROR_FILE_EXISTS
    assert (env / "mod.py").read_bytes() == b"mine"
    assert "DeleteFileW" not in [step[0] for step in lib.steps]
    assert lib.handles == {}


def test_missing_source_is_an_error_and_creates_nothing(kernel32, places):
    lib = kernel32()
    source, env = places
    with pytest.raises(FileNotFoundError):
        _clone(source.with_name("gone"), env / "mod.py")
    assert os.listdir(env) == [] and lib.handles == {}


def test_a_directory_handle_is_not_a_windows_target(kernel32, places):
    lib = kernel32()
    source, env = places
    with pytest.raises(Unsupported):
        win.duplicate_extents(str(source), "mod.py", 3, 0o644, None)
    assert lib.steps == []


def test_filesystem_name_is_the_volume_file_system(kernel32, places):
    lib = kernel32()
    assert win.filesystem_name(str(places[1])) == "ReFS"
    assert lib.steps == [("GetVolumePathNameW",), ("GetVolumeInformationW", "R:\\")]


def test_filesystem_name_is_none_when_the_volume_cannot_be_asked(kernel32, places):
    kernel32(fail={"GetVolumeInformationW": win.ERROR_ACCESS_DENIED})
    assert win.filesystem_name(str(places[1])) is None


def test_too_many_references_falls_back_for_that_file(kernel32, places):
    kernel32(fail={"FSCTL_DUPLICATE_EXTENTS_TO_FILE": win.ERROR_BLOCK_TOO_MANY_REFERENCES})
    source, env = places
    with pytest.raises(Unsupported) as caught:
        _clone(source, env / "mod.py")
    assert caught.value.errno == errno.EMLINK
    assert "shared too many times" in caught.value.reason
