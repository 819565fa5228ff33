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

from fakes import UNSET, FakeLibrary

GiB = 1 << 30
IOCTL_NAMES = {
    win.FSCTL_SET_SPARSE: "FSCTL_SET_SPARSE",
    win.FSCTL_GET_INTEGRITY_INFORMATION: "FSCTL_GET_INTEGRITY_INFORMATION",
    win.FSCTL_SET_INTEGRITY_INFORMATION: "FSCTL_SET_INTEGRITY_INFORMATION",
    win.FSCTL_DUPLICATE_EXTENTS_TO_FILE: "FSCTL_DUPLICATE_EXTENTS_TO_FILE",
}


class FakeKernel32(FakeLibrary):
    """The kernel32 functions the backend uses, on real files, with scripted failures.

    ``fail`` maps a step (a function name, or an FSCTL name) to the
    GetLastError code it answers; ``fail_at`` makes only the n-th call
    (counting from 1) of that step fail.  ``size`` pretends the source has
    that many bytes (so 4 GiB files cost nothing).
    """

    def __init__(self, cluster=4096, size=None, sparse=False, integrity=(0, 0), fail=None, fail_at=None,
                 reported_cluster=None, volumes=(7, 7), processes=None, posix_deletes=True,
                 held_by_filter=False) -> None:
        # posix_deletes: FileDispositionInfoEx exists (Windows 10 1709+); held_by_filter: another
        # handle (an antivirus filter) holds every new file, so a classic delete keeps the name.
        self.posix_deletes, self.held_by_filter = posix_deletes, held_by_filter
        self.posix_delete_on_close: set[int] = set()
        self.cluster, self.size, self.sparse, self.integrity = cluster, size, sparse, integrity
        # What FSCTL_GET_INTEGRITY_INFORMATION says the cluster size is (0: not reported).
        self.reported_cluster = cluster if reported_cluster is None else reported_cluster
        self.volumes = dict(zip(("source", "target"), volumes))  # volume serial number per side
        self.processes = dict(processes or {})  # pid -> exit code, or "denied"
        self.process_handles: dict[int, int] = {}
        self.delete_on_close: set[int] = set()
        self.readonly: set[int] = set()
        self.fail, self.fail_at = dict(fail or {}), dict(fail_at or {})
        self.last_error = 0
        self.steps: list[tuple] = []
        self.counts: dict[str, int] = {}
        self.handles: dict[int, tuple[int, str]] = {}
        self.eof: dict[int, int] = {}
        self._next = 0x7FFF_0000_0000_0010  # above 32 bits: a truncated handle would show
        super().__init__(win.PROTOTYPES)

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
        if handle in self.process_handles:
            self.steps.append(("CloseHandle", "process", self.process_handles.pop(handle)))
            return 1
        self.steps.append(("CloseHandle", self._name(handle)))
        fd, path = self.handles.pop(handle)
        os.close(fd)
        if handle in self.posix_delete_on_close:  # the name goes now, whoever else holds the file
            self.posix_delete_on_close.discard(handle)
            os.unlink(path)
        if handle in self.delete_on_close:  # what Windows does with a delete disposition
            self.delete_on_close.discard(handle)
            if not self.held_by_filter:  # else the name stays until the filter's handle closes
                os.unlink(path)
        return 1

    def _GetFileInformationByHandle(self, handle, info):
        self.steps.append(("GetFileInformationByHandle", self._name(handle)))
        if self._failing("GetFileInformationByHandle"):
            return 0
        info._obj.dwVolumeSerialNumber = self.volumes[self._name(handle)]
        return 1

    def _OpenProcess(self, access, inherit, pid):
        self.steps.append(("OpenProcess", access, inherit, pid))
        state = self.processes.get(pid)
        if state is None:
            self.last_error = win.ERROR_INVALID_PARAMETER  # what Windows answers for an unknown pid
            return None
        if state == "denied":
            self.last_error = win.ERROR_ACCESS_DENIED
            return None
        handle = self._next
        self._next += 4
        self.process_handles[handle] = pid
        return handle

    def _GetExitCodeProcess(self, handle, code):
        self.steps.append(("GetExitCodeProcess", self.process_handles[handle]))
        code._obj.value = self.processes[self.process_handles[handle]]
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
        if kind == win.FILE_DISPOSITION_INFO_EX_CLASS:
            assert length == 4
            self.steps.append(("SetDispositionEx", self._name(handle), info.Flags))
            if not self.posix_deletes:  # before Windows 10 1709: no such class
                self.last_error = win.ERROR_INVALID_PARAMETER
                return 0
            if self._failing("SetDispositionEx"):
                return 0
            if handle in self.readonly and not info.Flags & win.FILE_DISPOSITION_FLAG_IGNORE_READONLY_ATTRIBUTE:
                self.last_error = win.ERROR_ACCESS_DENIED
                return 0
            (self.posix_delete_on_close if info.Flags & win.FILE_DISPOSITION_FLAG_POSIX_SEMANTICS
             else self.delete_on_close).add(handle)
            return 1
        if kind == win.FILE_DISPOSITION_INFO_CLASS:
            assert length == 1
            self.steps.append(("SetDisposition", self._name(handle), info.DeleteFile))
            if self._failing("SetDisposition"):
                return 0
            if handle in self.readonly:  # Windows refuses to delete a read-only file
                self.last_error = win.ERROR_ACCESS_DENIED
                return 0
            self.delete_on_close.add(handle)
            return 1
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
            self.readonly.add(handle)
        elif info.FileAttributes == win.FILE_ATTRIBUTE_NORMAL:
            os.fchmod(fd, 0o644)
            self.readonly.discard(handle)
        return 1

    def _GetVolumePathNameW(self, path, buf, length):
        self.steps.append(("GetVolumePathNameW",))
        if self._failing("GetVolumePathNameW"):
            return 0
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
            out.ClusterSizeInBytes = self.reported_cluster
            return 1
        if name == "FSCTL_SET_INTEGRITY_INFORMATION":
            data = inbuf._obj
            assert insize == ctypes.sizeof(data) == 8
            self.steps.append((name, self._name(handle), data.ChecksumAlgorithm, data.Flags))
            return 0 if self._failing(name) else 1
        if name == "FSCTL_SET_SPARSE":
            # No input buffer means "make it sparse"; FILE_SET_SPARSE_BUFFER (1 byte) says which.
            if inbuf is None:
                assert insize == 0
                sparse = 1
            else:
                assert insize == ctypes.sizeof(inbuf._obj) == 1
                sparse = inbuf._obj.SetSparse
            self.steps.append((name, self._name(handle), sparse))
            return 0 if self._failing(name if sparse else "FSCTL_SET_SPARSE(off)") else 1
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
    pm.register(win.PLUGIN, name="platform")
    backend = pm.hook.holoclone_clone_backend()
    assert backend == hookspecs.CloneBackend("windows-duplicate-extents", win.duplicate_extents)


def test_structures_have_the_windows_layout():
    def layout(struct):
        return ctypes.sizeof(struct), [getattr(struct, name).offset for name, _ in struct._fields_]

    assert layout(win.DUPLICATE_EXTENTS_DATA) == (32, [0, 8, 16, 24])
    assert layout(win.FSCTL_GET_INTEGRITY_INFORMATION_BUFFER) == (16, [0, 2, 4, 8, 12])
    assert layout(win.FSCTL_SET_INTEGRITY_INFORMATION_BUFFER) == (8, [0, 2, 4])
    assert layout(win.FILE_BASIC_INFO) == (40, [0, 8, 16, 24, 32])
    assert layout(win.FILE_END_OF_FILE_INFO) == (8, [0])
    assert layout(win.FILE_DISPOSITION_INFO) == (1, [0])
    assert layout(win.FILE_SET_SPARSE_BUFFER) == (1, [0])
    assert layout(win.BY_HANDLE_FILE_INFORMATION) == (52, [0, 4, 12, 20, 28, 32, 36, 40, 44, 48])


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
    for function in lib.functions().values():
        assert function.argtypes is not None and function.restype is not UNSET, function.name
    # Handles are pointer-sized both ways, never C ints.
    assert lib.functions()["CreateFileW"].restype is win.HANDLE
    assert lib.functions()["DeviceIoControl"].argtypes[0] is win.HANDLE
    assert lib.functions()["CloseHandle"].argtypes == [win.HANDLE]


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
        ("FSCTL_SET_SPARSE", "target", 1),
        ("FSCTL_SET_INTEGRITY_INFORMATION", "target", 2, 1),
        ("SetEndOfFile", "target", 5000),
        ("FSCTL_DUPLICATE_EXTENTS_TO_FILE", "source", 0, 8192),
        ("FSCTL_SET_SPARSE", "target", 0),
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


def _names(lib):
    return [step[0] for step in lib.steps]


def test_sparse_source_makes_a_sparse_target_and_keeps_it_sparse(kernel32, places):
    lib = kernel32(sparse=True)
    source, env = places
    _clone(source, env / "sparse")
    sparse = [step for step in lib.steps if step[0] == "FSCTL_SET_SPARSE"]
    assert sparse == [("FSCTL_SET_SPARSE", "target", 1)]
    assert lib.steps.index(sparse[0]) < _names(lib).index("SetEndOfFile")


def test_dense_source_is_cloned_into_a_sparse_target_made_dense_again(kernel32, places):
    # W2: sparse before the end of file is extended (no zero-backed allocation), dense after the clone.
    lib = kernel32()
    source, env = places
    _clone(source, env / "dense")
    names = _names(lib)
    on, off = ("FSCTL_SET_SPARSE", "target", 1), ("FSCTL_SET_SPARSE", "target", 0)
    assert lib.steps.count(on) == 1 and lib.steps.count(off) == 1
    assert lib.steps.index(on) < names.index("SetEndOfFile") < names.index("FSCTL_DUPLICATE_EXTENTS_TO_FILE")
    assert lib.steps.index(off) > len(names) - 1 - names[::-1].index("FSCTL_DUPLICATE_EXTENTS_TO_FILE")


def test_failing_to_make_the_target_dense_again_deletes_it(kernel32, places):
    lib = kernel32(fail={"FSCTL_SET_SPARSE(off)": win.ERROR_DISK_FULL})
    source, env = places
    with pytest.raises(OSError) as caught:
        _clone(source, env / "dense")
    assert caught.value.errno == errno.ENOSPC
    assert os.listdir(env) == [] and lib.handles == {}


def test_plain_integrity_settings_are_not_sent(kernel32, places):
    # W1: (0, 0) is what a new file has already; a Dev Drive refuses the request.
    lib = kernel32(integrity=(0, 0))
    source, env = places
    _clone(source, env / "mod.py")
    assert "FSCTL_SET_INTEGRITY_INFORMATION" not in _names(lib)


@pytest.mark.parametrize("integrity", [(2, 0), (0, 1), (2, 1)])
def test_refused_integrity_settings_still_clone(kernel32, places, integrity):
    lib = kernel32(integrity=integrity, fail={"FSCTL_SET_INTEGRITY_INFORMATION": win.ERROR_ACCESS_DENIED})
    source, env = places
    target = env / "mod.py"
    _clone(source, target)
    assert ("FSCTL_SET_INTEGRITY_INFORMATION", "target", *integrity) in lib.steps
    assert "FSCTL_DUPLICATE_EXTENTS_TO_FILE" in _names(lib)
    assert target.read_bytes() == source.read_bytes() and lib.handles == {}


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


@pytest.mark.parametrize("cluster", [C4K, C64K])
def test_cluster_size_comes_from_the_integrity_information(kernel32, places, cluster):
    # W4: no GetVolumePathNameW + GetDiskFreeSpaceW per directory.
    lib = kernel32(cluster=cluster)
    source, env = places
    _clone(source, env / "a")
    _clone(source, env / "b")
    assert "GetVolumePathNameW" not in _names(lib) and "GetDiskFreeSpaceW" not in _names(lib)
    assert _duplicates(lib) == [(0, -(-5000 // cluster) * cluster)] * 2


def test_cluster_size_not_reported_is_asked_once_per_directory(kernel32, places):
    lib = kernel32(cluster=C64K, reported_cluster=0)
    source, env = places
    _clone(source, env / "a")
    _clone(source, env / "b")
    assert _names(lib).count("GetDiskFreeSpaceW") == 1
    assert _duplicates(lib) == [(0, C64K)] * 2


def test_cluster_size_that_cannot_be_asked_falls_back(kernel32, places):
    lib = kernel32(reported_cluster=0, fail={"GetVolumePathNameW": 206})  # ERROR_FILENAME_EXCED_RANGE
    source, env = places
    with pytest.raises(Unsupported) as caught:
        _clone(source, env / "mod.py")
    assert "cluster size" in caught.value.reason
    assert os.listdir(env) == [] and lib.handles == {}


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


@pytest.mark.parametrize("step", ["FSCTL_SET_SPARSE", "SetEndOfFile", "SetBasicInfo"])
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
    assert "DeleteFileW" not in _names(lib) and "SetDisposition" not in _names(lib)
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


# -- W5: a failed clone is deleted through its own handle

def test_failed_clone_is_deleted_posix_style_through_its_handle_before_closing(kernel32, places):
    lib = kernel32(fail={"FSCTL_DUPLICATE_EXTENTS_TO_FILE": win.ERROR_NOT_SUPPORTED})
    source, env = places
    with pytest.raises(Unsupported):
        _clone(source, env / "mod.py")
    flags = (win.FILE_DISPOSITION_FLAG_DELETE | win.FILE_DISPOSITION_FLAG_POSIX_SEMANTICS
             | win.FILE_DISPOSITION_FLAG_IGNORE_READONLY_ATTRIBUTE)
    assert flags == 0x13 and win.FILE_DISPOSITION_INFO_EX_CLASS == 21
    assert ctypes.sizeof(win.FILE_DISPOSITION_INFO_EX) == 4
    assert lib.steps[-3:] == [("SetDispositionEx", "target", flags), ("CloseHandle", "target"),
                              ("CloseHandle", "source")]
    assert "DeleteFileW" not in _names(lib) and "SetDisposition" not in _names(lib)
    assert os.listdir(env) == [] and lib.handles == {}


def test_a_failed_clone_held_by_a_filter_driver_leaves_no_name_and_the_copy_fallback_works(kernel32, places):
    # An antivirus holding every new file: a classic delete would keep the name, and the
    # fallback's exclusive create would then fail.  The POSIX delete frees the name at close.
    kernel32(fail={"FSCTL_DUPLICATE_EXTENTS_TO_FILE": win.ERROR_NOT_SUPPORTED}, held_by_filter=True)
    source, env = places
    with pytest.raises(Unsupported):
        _clone(source, env / "mod.py")
    assert os.listdir(env) == []
    fd = os.open(env / "mod.py", os.O_WRONLY | os.O_CREAT | os.O_EXCL)  # what the copy fallback does
    os.close(fd)


def test_failed_clone_is_deleted_through_its_handle_before_closing(kernel32, places):
    # Before Windows 10 1709 there are no POSIX deletes: the classic disposition.
    lib = kernel32(fail={"FSCTL_DUPLICATE_EXTENTS_TO_FILE": win.ERROR_NOT_SUPPORTED}, posix_deletes=False)
    source, env = places
    with pytest.raises(Unsupported):
        _clone(source, env / "mod.py")
    tail = lib.steps[-3:]
    assert tail == [("SetDisposition", "target", 1), ("CloseHandle", "target"), ("CloseHandle", "source")]
    assert "DeleteFileW" not in _names(lib)
    assert os.listdir(env) == [] and lib.handles == {}


def test_read_only_target_is_made_writable_then_deleted_through_its_handle(kernel32, places):
    # The read-only attribute refuses a classic delete disposition: it is cleared, then the handle deletes.
    lib = kernel32(posix_deletes=False)
    _, env = places
    target = str(env / "mod.py")
    k32 = win._kernel32()
    handle = k32.CreateFileW(target, win.GENERIC_READ | win.GENERIC_WRITE | win.DELETE, 0, None, win.CREATE_NEW,
                             win.FILE_ATTRIBUTE_NORMAL, None)
    readonly = win.FILE_BASIC_INFO(0, 0, 0, 0, win.FILE_ATTRIBUTE_READONLY)
    k32.SetFileInformationByHandle(handle, win.FILE_BASIC_INFO_CLASS, ctypes.byref(readonly), ctypes.sizeof(readonly))
    del lib.steps[:]
    win._discard(k32, handle, target)
    assert lib.steps == [
        ("SetDispositionEx", "target", 0x13),
        ("SetDisposition", "target", 1),
        ("SetBasicInfo", "target", 0, 0, 0, 0, win.FILE_ATTRIBUTE_NORMAL),
        ("SetDisposition", "target", 1),
        ("CloseHandle", "target"),
    ]
    assert os.listdir(env) == [] and lib.handles == {}


def test_delete_disposition_refused_twice_falls_back_to_deleting_the_name(kernel32, places):
    lib = kernel32(fail={"FSCTL_DUPLICATE_EXTENTS_TO_FILE": win.ERROR_NOT_SUPPORTED,
                         "SetDispositionEx": win.ERROR_ACCESS_DENIED, "SetDisposition": win.ERROR_ACCESS_DENIED})
    source, env = places
    target = env / "mod.py"
    with pytest.raises(Unsupported):
        _clone(source, target)
    names = _names(lib)
    assert names.count("SetDisposition") == 2
    assert ("SetBasicInfo", "target", 0, 0, 0, 0, win.FILE_ATTRIBUTE_NORMAL) in lib.steps
    assert names.index("CloseHandle") < names.index("DeleteFileW")
    assert ("DeleteFileW", str(target)) in lib.steps
    assert os.listdir(env) == [] and lib.handles == {}


# -- W6: another volume is EXDEV, a refusal on one volume stays distinguishable

@pytest.mark.parametrize("code", [win.ERROR_INVALID_PARAMETER, win.ERROR_INVALID_FUNCTION])
def test_clone_to_another_volume_is_exdev(kernel32, places, code):
    lib = kernel32(volumes=(0x1111, 0x2222), fail={"FSCTL_DUPLICATE_EXTENTS_TO_FILE": code})
    source, env = places
    with pytest.raises(Unsupported) as caught:
        _clone(source, env / "mod.py")
    assert caught.value.errno == errno.EXDEV
    assert "different volumes" in caught.value.reason
    assert ("GetFileInformationByHandle", "source") in lib.steps
    assert ("GetFileInformationByHandle", "target") in lib.steps
    assert os.listdir(env) == [] and lib.handles == {}


@pytest.mark.parametrize(("code", "expected"), [
    (win.ERROR_INVALID_PARAMETER, errno.EINVAL),
    (win.ERROR_INVALID_FUNCTION, errno.EOPNOTSUPP),
    (win.ERROR_NOT_SUPPORTED, errno.EOPNOTSUPP),
])
def test_refusal_on_one_volume_is_not_exdev(kernel32, places, code, expected):
    lib = kernel32(volumes=(0x1111, 0x1111), fail={"FSCTL_DUPLICATE_EXTENTS_TO_FILE": code})
    source, env = places
    with pytest.raises(Unsupported) as caught:
        _clone(source, env / "mod.py")
    assert caught.value.errno == expected
    assert f"Windows error {code}" in caught.value.reason
    assert os.listdir(env) == [] and lib.handles == {}


def test_volume_that_cannot_be_asked_keeps_the_original_error(kernel32, places):
    kernel32(volumes=(1, 2), fail={"FSCTL_DUPLICATE_EXTENTS_TO_FILE": win.ERROR_INVALID_PARAMETER,
                                   "GetFileInformationByHandle": win.ERROR_ACCESS_DENIED})
    source, env = places
    with pytest.raises(Unsupported) as caught:
        _clone(source, env / "mod.py")
    assert caught.value.errno == errno.EINVAL


def test_misaligned_request_is_told_apart_from_another_volume(kernel32, places, monkeypatch):
    # The stand-in answers ERROR_INVALID_PARAMETER to a misaligned region, as ReFS may: on one volume
    # that must stay EINVAL (an alignment bug), never pass for a cross-volume fallback.
    lib = kernel32(cluster=C64K, reported_cluster=C4K)
    source, env = places
    with pytest.raises(Unsupported) as caught:
        _clone(source, env / "mod.py")
    assert caught.value.errno == errno.EINVAL
    assert lib.handles == {}


# -- W3: make_durable flushes each source

@pytest.fixture
def flushes(monkeypatch):
    """Record fsync calls and play Windows' refusal to open a read-only file for writing."""
    calls = []

    def fake_open(path, flags, *args):
        if flags & (os.O_WRONLY | os.O_RDWR) and not os.stat(path).st_mode & stat.S_IWRITE:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        fd = os.open(path, flags, *args)
        calls.append(("open", os.path.basename(path), fd))
        return fd

    def fake_fsync(fd):
        calls.append(("fsync", fd))

    monkeypatch.setattr(win, "_open", fake_open)
    monkeypatch.setattr(win, "_fsync", fake_fsync)
    return calls


def test_make_durable_flushes_every_path_through_a_writable_handle(tmp_path, flushes):
    paths = []
    for name in ("a", "b", "c"):
        (tmp_path / name).write_bytes(name.encode())
        paths.append(str(tmp_path / name))
    win.make_durable(str(tmp_path), paths)
    opened = [call for call in flushes if call[0] == "open"]
    assert [name for _, name, _ in opened] == ["a", "b", "c"]
    assert [call for call in flushes if call[0] == "fsync"] == [("fsync", fd) for _, _, fd in opened]


def test_make_durable_flushes_a_read_only_object_and_keeps_it_read_only(tmp_path, flushes):
    path = tmp_path / "object"
    path.write_bytes(b"data")
    os.chmod(path, 0o444)
    win.make_durable(str(tmp_path), [str(path)])
    assert [call[0] for call in flushes] == ["open", "fsync"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o444


def test_make_durable_skips_a_vanished_path(tmp_path, flushes):
    (tmp_path / "here").write_bytes(b"x")
    win.make_durable(str(tmp_path), [str(tmp_path / "gone"), str(tmp_path / "here")])
    assert [call[1] for call in flushes if call[0] == "open"] == ["here"]


def test_make_durable_reports_a_failed_flush(tmp_path, monkeypatch):
    def broken(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(win, "_fsync", broken)
    (tmp_path / "a").write_bytes(b"x")
    with pytest.raises(OSError) as caught:
        win.make_durable(str(tmp_path), [str(tmp_path / "a")])
    assert caught.value.errno == errno.EIO


# -- process liveness without signals

@pytest.mark.parametrize(("state", "alive"), [(win.STILL_ACTIVE, True), (0, False), (1, False), ("denied", True)])
def test_pid_alive_asks_the_exit_code(kernel32, state, alive):
    lib = kernel32(processes={4242: state})
    assert win.pid_alive(4242) is alive
    assert lib.steps[0] == ("OpenProcess", win.PROCESS_QUERY_LIMITED_INFORMATION, 0, 4242)
    if state != "denied":
        assert lib.steps[1:] == [("GetExitCodeProcess", 4242), ("CloseHandle", "process", 4242)]
    assert lib.process_handles == {}


def test_pid_alive_is_false_for_an_unknown_or_impossible_pid(kernel32):
    lib = kernel32(processes={})
    assert win.pid_alive(4242) is False
    assert win.pid_alive(0) is False and win.pid_alive(-1) is False
    assert [step[0] for step in lib.steps] == ["OpenProcess"]


# -- W9: CopyFile2

class FakeCopyFile2:
    """``_winapi.CopyFile2``: copies bytes and the source's mode and times, or fails as scripted."""

    def __init__(self, fail=None, partial=False):
        self.calls = []
        self.fail, self.partial = fail, partial

    def __call__(self, existing, new, flags, progress_routine=None):
        self.calls.append((existing, new, flags))
        if flags & win.COPY_FILE_FAIL_IF_EXISTS and os.path.exists(new):
            raise FileExistsError(errno.EEXIST, "The file exists", new)
        if self.fail is not None:
            if self.partial:
                with open(new, "wb") as handle:
                    handle.write(b"half")
            raise OSError(self.fail, os.strerror(self.fail), new)
        with open(existing, "rb") as src, open(new, "xb") as dst:
            dst.write(src.read())
        info = os.stat(existing)
        os.chmod(new, stat.S_IMODE(info.st_mode))
        os.utime(new, ns=(info.st_atime_ns, info.st_mtime_ns))


@pytest.fixture
def copyfile2(monkeypatch):
    def install(**options):
        fake = FakeCopyFile2(**options)
        monkeypatch.setattr(win, "_copy_file2", lambda: fake)
        return fake

    return install


def test_copy_function_needs_copyfile2():
    # No _winapi here: the platform offers no native copy.
    assert win._copy_file2() is None and win.copy_function() is None


def test_copy_function_is_copyfile2_where_available(copyfile2):
    copyfile2()
    assert win.copy_function() is win.copy_file2


def test_copyfile2_creates_exclusively_then_sets_mtime_and_mode(copyfile2, places):
    fake = copyfile2()
    source, env = places
    os.chmod(source, 0o444)
    target = env / "mod.py"
    win.copy_file2(str(source), str(target), None, 0o644, 315532800)
    assert fake.calls == [(str(source), str(target), win.COPY_FILE_FAIL_IF_EXISTS)]
    assert target.read_bytes() == source.read_bytes()
    assert target.stat().st_mtime == 315532800
    # Not the read-only mode the copy took from the store object.
    assert target.stat().st_mode & stat.S_IWRITE


def test_copyfile2_without_mtime_keeps_the_source_time_and_applies_a_read_only_mode(copyfile2, places):
    copyfile2()
    source, env = places
    os.utime(source, (1_000_000_000, 1_000_000_000))
    target = env / "mod.py"
    win.copy_file2(str(source), str(target), None, 0o444, None)
    assert target.stat().st_mtime == 1_000_000_000
    assert not target.stat().st_mode & 0o222


def test_copyfile2_leaves_an_existing_target_alone(copyfile2, places):
    copyfile2()
    source, env = places
    (env / "mod.py").write_bytes(b"mine")
    with pytest.raises(FileExistsError):
        win.copy_file2(str(source), str(env / "mod.py"), None, 0o644, None)
    assert (env / "mod.py").read_bytes() == b"mine"


def test_copyfile2_failure_removes_the_partial_target(copyfile2, places):
    copyfile2(fail=errno.ENOSPC, partial=True)
    source, env = places
    with pytest.raises(OSError) as caught:
        win.copy_file2(str(source), str(env / "mod.py"), None, 0o644, None)
    assert caught.value.errno == errno.ENOSPC
    assert os.listdir(env) == []


def test_copyfile2_removes_the_target_when_its_time_cannot_be_set(copyfile2, places, monkeypatch):
    copyfile2()
    source, env = places

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(win.os, "utime", refuse)
    with pytest.raises(PermissionError):
        win.copy_file2(str(source), str(env / "mod.py"), None, 0o644, 315532800)
    assert os.listdir(env) == []


def test_copyfile2_needs_a_full_path(copyfile2, places):
    fake = copyfile2()
    source, _ = places
    with pytest.raises(Unsupported):
        win.copy_file2(str(source), "mod.py", 3, 0o644, None)
    assert fake.calls == []
