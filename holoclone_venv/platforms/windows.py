"""Windows: block cloning through ``FSCTL_DUPLICATE_EXTENTS_TO_FILE`` (ReFS, Dev Drive).

Chosen by ``platforms/__init__.py`` on Windows; its :data:`PLUGIN` is the
platform plugin.  Also here: process liveness without signals, flushing
objects before they are cloned, and a native copy through ``CopyFile2``.
kernel32 is loaded on first use, never at import, so this module imports on
any platform.  Every foreign function has its ``argtypes`` and ``restype``
declared before it is called: without them ctypes passes and returns C
``int``, which truncates 64-bit handles.

NTFS answers ``ERROR_INVALID_FUNCTION``: the caller falls back to a copy.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import threading
from typing import Optional, Sequence

from ..errors import Unsupported
from .base import PlatformPlugin, process_umask

# Re-exported: the backend and its tests use these names.
from .winapi import (  # noqa: F401
    chunks, _filetime,
    FSCTL_SET_SPARSE, FSCTL_GET_INTEGRITY_INFORMATION, FSCTL_SET_INTEGRITY_INFORMATION,
    FSCTL_DUPLICATE_EXTENTS_TO_FILE, GENERIC_READ, GENERIC_WRITE, DELETE, FILE_SHARE_READ, FILE_SHARE_DELETE,
    CREATE_NEW, OPEN_EXISTING, FILE_ATTRIBUTE_READONLY, FILE_ATTRIBUTE_NORMAL, FILE_ATTRIBUTE_SPARSE_FILE,
    FILE_BASIC_INFO_CLASS, FILE_DISPOSITION_INFO_CLASS, FILE_END_OF_FILE_INFO_CLASS,
    FILE_DISPOSITION_INFO_EX_CLASS, FILE_DISPOSITION_FLAG_DELETE, FILE_DISPOSITION_FLAG_POSIX_SEMANTICS,
    FILE_DISPOSITION_FLAG_IGNORE_READONLY_ATTRIBUTE, FILE_DISPOSITION_INFO_EX,
    PROCESS_QUERY_LIMITED_INFORMATION, STILL_ACTIVE, COPY_FILE_FAIL_IF_EXISTS, INVALID_HANDLE_VALUE, MAX_PATH,
    CALL_LIMIT, _FILETIME_EPOCH, ERROR_FILE_NOT_FOUND, ERROR_PATH_NOT_FOUND, ERROR_ACCESS_DENIED,
    ERROR_INVALID_FUNCTION, ERROR_NOT_SAME_DEVICE, ERROR_WRITE_PROTECT, ERROR_NOT_SUPPORTED, ERROR_FILE_EXISTS,
    ERROR_INVALID_PARAMETER, ERROR_DISK_FULL, ERROR_ALREADY_EXISTS, ERROR_BLOCK_TOO_MANY_REFERENCES,
    CLONE_UNSUPPORTED, _ERRNO, _MESSAGES, HANDLE, WORD, DWORD, BOOL, LPCWSTR, LPWSTR, DUPLICATE_EXTENTS_DATA,
    FSCTL_GET_INTEGRITY_INFORMATION_BUFFER, FSCTL_SET_INTEGRITY_INFORMATION_BUFFER, FILE_BASIC_INFO,
    FILE_END_OF_FILE_INFO, FILE_DISPOSITION_INFO, FILE_SET_SPARSE_BUFFER, FILETIME, BY_HANDLE_FILE_INFORMATION,
    _LPD, PROTOTYPES,
)


def _open_library():
    """Load kernel32 keeping GetLastError for ``_last_error``."""
    return ctypes.WinDLL("kernel32", use_last_error=True)


def _last_error() -> int:
    return ctypes.get_last_error()  # type: ignore[attr-defined]


_lock = threading.Lock()
_library = None
#: Cluster size per target directory, where the volume does not report it: asked once, not once per file.
_cluster_sizes: dict[str, int] = {}


def _kernel32():
    global _library
    with _lock:
        if _library is None:
            lib = _open_library()
            for name, (argtypes, restype) in PROTOTYPES.items():
                function = getattr(lib, name)
                function.argtypes = argtypes
                function.restype = restype
            _library = lib
        return _library


def _error(what: str, path: str | None = None) -> OSError:
    """The last Windows error as an OSError with a POSIX errno and ``winerror`` set."""
    code = _last_error()
    format_error = getattr(ctypes, "FormatError", None)  # the system's own text, Windows only
    text = _MESSAGES.get(code) or (format_error(code).strip().rstrip(".") if format_error else "unexpected error")
    message = f"{what} failed: {text} (Windows error {code})"
    error = OSError(_ERRNO.get(code, errno.EIO), message, path)
    setattr(error, "winerror", code)  # OSError has the attribute on Windows only
    return error


def _unsupported(error: OSError) -> Unsupported:
    return Unsupported(error.strerror or str(error), error.errno)


def _raise(error: OSError) -> None:
    raise _unsupported(error) if getattr(error, "winerror", None) in CLONE_UNSUPPORTED else error


def _check(ok: int, what: str, path: str | None = None) -> None:
    if not ok:
        _raise(_error(what, path))


def _device_io_control(k32, handle: int, code: int, inbuf=None, outbuf=None) -> int:
    returned = DWORD()
    return k32.DeviceIoControl(
        handle, code,
        ctypes.byref(inbuf) if inbuf is not None else None, ctypes.sizeof(inbuf) if inbuf is not None else 0,
        ctypes.byref(outbuf) if outbuf is not None else None, ctypes.sizeof(outbuf) if outbuf is not None else 0,
        ctypes.byref(returned), None,
    )


def _ioctl(k32, handle: int, code: int, what: str, inbuf=None, outbuf=None, path: str | None = None) -> None:
    _check(_device_io_control(k32, handle, code, inbuf, outbuf), what, path)


def cluster_size(k32, path: str) -> int:
    """Bytes per cluster of the volume holding ``path``, from GetDiskFreeSpaceW.

    Only used where FSCTL_GET_INTEGRITY_INFORMATION reports no cluster size.
    A volume that cannot be asked (a path too long for GetVolumePathNameW...)
    is a reason to fall back, not a crash.
    """
    directory = os.path.dirname(path)
    size = _cluster_sizes.get(directory)
    if size is None:
        root = ctypes.create_unicode_buffer(MAX_PATH + 1)
        sectors, sector_bytes, free, total = (DWORD() for _ in range(4))
        if not (k32.GetVolumePathNameW(path, root, len(root)) and k32.GetDiskFreeSpaceW(
                root.value, ctypes.byref(sectors), ctypes.byref(sector_bytes), ctypes.byref(free),
                ctypes.byref(total))):
            error = _error("asking the volume's cluster size", path)
            raise Unsupported(str(error.strerror), error.errno)
        size = sectors.value * sector_bytes.value
        _cluster_sizes[directory] = size
    return size


def duplicate_extents(source: str, target: str, dir_fd: Optional[int], mode: int, mtime: Optional[int]) -> None:
    """Create ``target`` as a block clone of ``source`` (the LinkFunction contract).

    ``dir_fd`` is always None on Windows: ``target`` is a full path.  Raises
    :class:`Unsupported` when the volume cannot clone (NTFS, another volume
    as EXDEV, a saturated source region as EMLINK...) and ``OSError`` for real
    failures (``FileExistsError`` with the existing file left alone, a full
    disk).  Any target this call created is deleted through its own handle
    on failure, and every handle is closed.
    """
    if dir_fd is not None:
        raise Unsupported("block cloning needs a full target path, not a directory handle")
    k32 = _kernel32()
    src = k32.CreateFileW(source, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_DELETE, None, OPEN_EXISTING,
                          FILE_ATTRIBUTE_NORMAL, None)
    if src is None or src == INVALID_HANDLE_VALUE:
        raise _error("opening the source", source)
    try:
        # Learn everything about the source first: on NTFS the integrity
        # query already fails, before any target exists.
        size = ctypes.c_longlong()
        _check(k32.GetFileSizeEx(src, ctypes.byref(size)), "GetFileSizeEx", source)
        basic = FILE_BASIC_INFO()
        _check(k32.GetFileInformationByHandleEx(src, FILE_BASIC_INFO_CLASS, ctypes.byref(basic), ctypes.sizeof(basic)),
               "GetFileInformationByHandleEx", source)
        integrity = FSCTL_GET_INTEGRITY_INFORMATION_BUFFER()
        _ioctl(k32, src, FSCTL_GET_INTEGRITY_INFORMATION, "FSCTL_GET_INTEGRITY_INFORMATION", outbuf=integrity,
               path=source)
        dst = k32.CreateFileW(target, GENERIC_READ | GENERIC_WRITE | DELETE, 0, None, CREATE_NEW,
                              FILE_ATTRIBUTE_NORMAL, None)
        if dst is None or dst == INVALID_HANDLE_VALUE:
            raise _error("creating the target", target)  # FileExistsError leaves that file alone
        try:
            _fill(k32, src, dst, target, size.value, basic.FileAttributes, integrity, mode, mtime)
        except BaseException:
            _discard(k32, dst, target)
            raise
        # Nothing is buffered on this side of the handle, so closing cannot lose data.
        k32.CloseHandle(dst)
    finally:
        k32.CloseHandle(src)


def _fill(k32, src: int, dst: int, target: str, size: int, attributes: int,
          integrity: FSCTL_GET_INTEGRITY_INFORMATION_BUFFER, mode: int, mtime: Optional[int]) -> None:
    """Give the new, empty ``dst`` the source's layout and clone every cluster into it."""
    # Sparse while cloning, whatever the source: extending a dense file would
    # allocate (and on a nearly full volume fail for) the whole size, only to
    # release it again as the clone replaces those clusters.  A sparse source
    # also needs a sparse target.
    _ioctl(k32, dst, FSCTL_SET_SPARSE, "FSCTL_SET_SPARSE", path=target)
    if integrity.ChecksumAlgorithm or integrity.Flags:
        # Integrity streams should match on both sides.  Some volumes refuse
        # the request (a Dev Drive answers access denied): clone anyway, the
        # clone itself says whether it minds.
        wanted = FSCTL_SET_INTEGRITY_INFORMATION_BUFFER(integrity.ChecksumAlgorithm, 0, integrity.Flags)
        _device_io_control(k32, dst, FSCTL_SET_INTEGRITY_INFORMATION, inbuf=wanted)
    # The clone never extends the file: set its size first.
    end = FILE_END_OF_FILE_INFO(size)
    _check(k32.SetFileInformationByHandle(dst, FILE_END_OF_FILE_INFO_CLASS, ctypes.byref(end), ctypes.sizeof(end)),
           "SetFileInformationByHandle(FileEndOfFileInfo)", target)
    if size:
        cluster = integrity.ClusterSizeInBytes or cluster_size(k32, target)
        for offset, length in chunks(size, cluster):
            _duplicate(k32, src, dst, offset, length, target)
    if not attributes & FILE_ATTRIBUTE_SPARSE_FILE:
        _ioctl(k32, dst, FSCTL_SET_SPARSE, "FSCTL_SET_SPARSE(off)", inbuf=FILE_SET_SPARSE_BUFFER(0), path=target)
    # Last, as it may make the file read-only: the read-only attribute stands
    # for a mode without write permission, as os.chmod does on Windows.
    readonly = not mode & 0o200
    if readonly or mtime is not None:
        times = _filetime(mtime) if mtime is not None else 0
        info = FILE_BASIC_INFO(0, times, times, 0, FILE_ATTRIBUTE_READONLY if readonly else 0)
        _check(k32.SetFileInformationByHandle(dst, FILE_BASIC_INFO_CLASS, ctypes.byref(info), ctypes.sizeof(info)),
               "SetFileInformationByHandle(FileBasicInfo)", target)


def _duplicate(k32, src: int, dst: int, offset: int, length: int, target: str) -> None:
    request = DUPLICATE_EXTENTS_DATA(src, offset, offset, length)
    if _device_io_control(k32, dst, FSCTL_DUPLICATE_EXTENTS_TO_FILE, inbuf=request):
        return
    error = _error("FSCTL_DUPLICATE_EXTENTS_TO_FILE", target)
    # Another volume answers ERROR_INVALID_PARAMETER (ReFS) or
    # ERROR_INVALID_FUNCTION (a target on NTFS): say EXDEV, so the caller
    # skips every method that needs one volume.
    if getattr(error, "winerror", None) in (ERROR_INVALID_PARAMETER, ERROR_INVALID_FUNCTION) and _other_volume(k32, src, dst):
        raise Unsupported("source and target are on different volumes", errno.EXDEV)
    _raise(error)


def _other_volume(k32, src: int, dst: int) -> bool:
    """Whether the two handles are on different volumes; False when either cannot be asked."""
    serials = []
    for handle in (src, dst):
        info = BY_HANDLE_FILE_INFORMATION()
        if not k32.GetFileInformationByHandle(handle, ctypes.byref(info)):
            return False
        serials.append(info.dwVolumeSerialNumber)
    return serials[0] != serials[1]


def _discard(k32, dst: int, target: str) -> None:
    """Delete the target through its own handle (opened with DELETE access), then close it.

    The delete disposition removes the file when the handle closes, whatever
    a virus scanner does with the name meanwhile.  It is refused while the
    read-only attribute is set, so that is cleared first if need be; only if
    all that fails is the name deleted after closing.

    First a POSIX delete (``FileDispositionInfoEx``, Windows 10 1709+): the name goes when this
    handle closes even while a filter driver (antivirus) holds the file, where a classic one keeps
    it for the fallback's ``CREATE_NEW`` to meet.  Where refused, the classic disposition follows.
    """
    posix = FILE_DISPOSITION_INFO_EX(FILE_DISPOSITION_FLAG_DELETE | FILE_DISPOSITION_FLAG_POSIX_SEMANTICS
                                     | FILE_DISPOSITION_FLAG_IGNORE_READONLY_ATTRIBUTE)
    if k32.SetFileInformationByHandle(dst, FILE_DISPOSITION_INFO_EX_CLASS, ctypes.byref(posix), ctypes.sizeof(posix)):
        k32.CloseHandle(dst)
        return
    dispose = FILE_DISPOSITION_INFO(1)
    deleted = k32.SetFileInformationByHandle(dst, FILE_DISPOSITION_INFO_CLASS, ctypes.byref(dispose),
                                             ctypes.sizeof(dispose))
    if not deleted:
        normal = FILE_BASIC_INFO(0, 0, 0, 0, FILE_ATTRIBUTE_NORMAL)
        k32.SetFileInformationByHandle(dst, FILE_BASIC_INFO_CLASS, ctypes.byref(normal), ctypes.sizeof(normal))
        deleted = k32.SetFileInformationByHandle(dst, FILE_DISPOSITION_INFO_CLASS, ctypes.byref(dispose),
                                                 ctypes.sizeof(dispose))
    k32.CloseHandle(dst)
    if not deleted:
        k32.DeleteFileW(target)


def filesystem_name(path: str) -> Optional[str]:
    """The file system of the volume holding ``path`` (``ReFS``, ``NTFS``...), or None when unknown."""
    try:
        k32 = _kernel32()
    except (OSError, AttributeError):
        return None
    root = ctypes.create_unicode_buffer(MAX_PATH + 1)
    name = ctypes.create_unicode_buffer(MAX_PATH + 1)
    if not k32.GetVolumePathNameW(path, root, len(root)):
        return None
    if not k32.GetVolumeInformationW(root.value, None, 0, None, None, None, name, len(name)):
        return None
    return name.value or None


def pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` is running.

    Never ``os.kill(pid, 0)``: on Windows that terminates the process.  A
    process we may not open (another user's) is running; one that cannot be
    found is not.  A process that exited with code 259 (STILL_ACTIVE) looks
    alive: that code is reserved for this purpose and not used by Python.
    """
    if pid <= 0 or pid > 0xFFFFFFFF:
        return False
    k32 = _kernel32()
    handle = k32.OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid)
    if not handle:
        return _last_error() == ERROR_ACCESS_DENIED
    try:
        code = DWORD()
        if not k32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True  # it exists, and cannot be asked: never call a live process dead
        return code.value == STILL_ACTIVE
    finally:
        k32.CloseHandle(handle)


# Seams: the tests replace these to play Windows' refusal to open a read-only file for writing.
_open = os.open
_fsync = os.fsync
_BINARY = getattr(os, "O_BINARY", 0)


def make_durable(directory: str, paths: Sequence[str]) -> None:
    """Flush each of ``paths`` (FlushFileBuffers through ``os.fsync``) before it is cloned.

    Before their early-2023 updates, Windows Server 2022 and Windows 10/11
    could give all-zero clones of a recently written file cloned from
    several threads; flushing the source first avoids it.  FlushFileBuffers
    needs a handle with write access, which the read-only attribute of a
    store object refuses: it is cleared for the open and set again at once.
    A path that vanished is skipped.
    """
    for path in paths:
        try:
            _flush(path)
        except FileNotFoundError:
            continue


def _flush(path: str) -> None:
    try:
        fd = _open(path, os.O_RDWR | _BINARY)
    except PermissionError:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & stat.S_IWRITE:
            raise  # not the read-only attribute: a real permission problem
        os.chmod(path, mode | stat.S_IWRITE)
        try:
            fd = _open(path, os.O_RDWR | _BINARY)
        finally:
            os.chmod(path, mode)
    try:
        _fsync(fd)
    finally:
        os.close(fd)


def _copy_file2():
    """``_winapi.CopyFile2`` (Python 3.12+ on Windows), or None."""
    try:
        import _winapi
    except ImportError:
        return None
    return getattr(_winapi, "CopyFile2", None)


def copy_function():
    """:func:`copy_file2` where this Python offers ``CopyFile2``, else None."""
    return copy_file2 if _copy_file2() is not None else None


def copy_file2(source: str, target: str, dir_fd: Optional[int], mode: int, mtime: Optional[int]) -> None:
    """Copy ``source`` to a new ``target`` with ``CopyFile2`` (the LinkFunction contract).

    From KB5034848, Windows 11 24H2 and Server 2025, the copy engine
    block-clones on ReFS and Dev Drive by itself; elsewhere this is the
    system's own fast copy.  The target is created exclusively
    (COPY_FILE_FAIL_IF_EXISTS: FileExistsError, that file left alone).  There
    is no handle to set times through, so ``mtime`` is set by path after the
    copy; the permission (the read-only attribute) last.  Without ``mtime``
    the copy keeps the source's time, as a clone does.  A partial target is
    removed on failure.
    """
    if dir_fd is not None:
        raise Unsupported("CopyFile2 needs a full target path, not a directory handle")
    call = _copy_file2()
    if call is None:
        raise Unsupported("CopyFile2 needs Python 3.12 or later on Windows", errno.ENOSYS)
    try:
        call(source, target, COPY_FILE_FAIL_IF_EXISTS)
    except OSError as error:
        if not (isinstance(error, FileExistsError)
                or getattr(error, "winerror", None) in (ERROR_FILE_EXISTS, ERROR_ALREADY_EXISTS)):
            _remove(target)
        raise
    try:
        if mtime is not None:
            os.utime(target, (mtime, mtime))
        os.chmod(target, mode & ~process_umask() & 0o777)
    except BaseException:
        _remove(target)
        raise


def _remove(path: str) -> None:
    try:
        os.chmod(path, stat.S_IREAD | stat.S_IWRITE)  # a read-only file cannot be deleted
        os.unlink(path)
    except OSError:
        pass


PLUGIN = PlatformPlugin("windows-duplicate-extents", duplicate_extents, filesystem_name, prepare=process_umask)

