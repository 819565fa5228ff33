"""Windows API constants, structures and kernel32 prototypes used by the block-clone backend.

Plain data: importable on any platform (the layouts use fixed-width types,
so tests check them everywhere); ``windows.py`` loads kernel32 and calls it.
"""

from __future__ import annotations

import ctypes
import errno

FSCTL_SET_SPARSE = 0x000900C4
FSCTL_GET_INTEGRITY_INFORMATION = 0x0009027C
FSCTL_SET_INTEGRITY_INFORMATION = 0x0009C280
FSCTL_DUPLICATE_EXTENTS_TO_FILE = 0x00098344

GENERIC_READ = 0x80000000
GENERIC_WRITE = 0x40000000
DELETE = 0x00010000
FILE_SHARE_READ = 0x1
FILE_SHARE_DELETE = 0x4
CREATE_NEW = 1
OPEN_EXISTING = 3
FILE_ATTRIBUTE_READONLY = 0x1
FILE_ATTRIBUTE_NORMAL = 0x80
FILE_ATTRIBUTE_SPARSE_FILE = 0x200
FILE_BASIC_INFO_CLASS = 0  # FILE_INFO_BY_HANDLE_CLASS.FileBasicInfo
FILE_DISPOSITION_INFO_CLASS = 4  # FILE_INFO_BY_HANDLE_CLASS.FileDispositionInfo
FILE_END_OF_FILE_INFO_CLASS = 6  # FILE_INFO_BY_HANDLE_CLASS.FileEndOfFileInfo
FILE_DISPOSITION_INFO_EX_CLASS = 21  # FILE_INFO_BY_HANDLE_CLASS.FileDispositionInfoEx (Windows 10 1709+)
FILE_DISPOSITION_FLAG_DELETE = 0x1
FILE_DISPOSITION_FLAG_POSIX_SEMANTICS = 0x2
FILE_DISPOSITION_FLAG_IGNORE_READONLY_ATTRIBUTE = 0x10
PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
STILL_ACTIVE = 259
COPY_FILE_FAIL_IF_EXISTS = 0x1
INVALID_HANDLE_VALUE = ctypes.c_void_p(-1).value
MAX_PATH = 260

#: One FSCTL_DUPLICATE_EXTENTS_TO_FILE call must stay under 4 GiB.
CALL_LIMIT = 1 << 32
#: Seconds between 1601-01-01 (FILETIME's epoch) and 1970-01-01, in 100 ns units.
_FILETIME_EPOCH = 116444736000000000

ERROR_FILE_NOT_FOUND = 2
ERROR_PATH_NOT_FOUND = 3
ERROR_ACCESS_DENIED = 5
ERROR_INVALID_FUNCTION = 1
ERROR_NOT_SAME_DEVICE = 17
ERROR_WRITE_PROTECT = 19
ERROR_NOT_SUPPORTED = 50
ERROR_FILE_EXISTS = 80
ERROR_INVALID_PARAMETER = 87
ERROR_DISK_FULL = 112
ERROR_ALREADY_EXISTS = 183
ERROR_BLOCK_TOO_MANY_REFERENCES = 347

#: Errors meaning "this volume or pair of volumes cannot clone": fall back.
#: NTFS and FAT answer ERROR_INVALID_FUNCTION; another volume answers
#: ERROR_INVALID_PARAMETER (told apart by comparing volume serial numbers,
#: then reported as EXDEV); a misaligned region or a sparse or integrity
#: mismatch answers ERROR_NOT_SUPPORTED.  A region shared 8175 times answers
#: ERROR_BLOCK_TOO_MANY_REFERENCES, reported as EMLINK: the store object stays
#: saturated until the store re-seeds it (``platforms.reseed``).
CLONE_UNSUPPORTED = frozenset({
    ERROR_INVALID_FUNCTION, ERROR_NOT_SAME_DEVICE, ERROR_NOT_SUPPORTED, ERROR_INVALID_PARAMETER,
    ERROR_BLOCK_TOO_MANY_REFERENCES,
})

#: Windows errors as errno values, so callers (and OSError's subclass
#: selection: FileExistsError, PermissionError...) treat them like POSIX ones.
_ERRNO = {
    ERROR_FILE_NOT_FOUND: errno.ENOENT, ERROR_PATH_NOT_FOUND: errno.ENOENT, ERROR_ACCESS_DENIED: errno.EACCES,
    ERROR_WRITE_PROTECT: errno.EROFS, ERROR_FILE_EXISTS: errno.EEXIST, ERROR_ALREADY_EXISTS: errno.EEXIST,
    ERROR_DISK_FULL: errno.ENOSPC, ERROR_INVALID_FUNCTION: errno.EOPNOTSUPP, ERROR_NOT_SUPPORTED: errno.EOPNOTSUPP,
    ERROR_NOT_SAME_DEVICE: errno.EXDEV, ERROR_INVALID_PARAMETER: errno.EINVAL,
    ERROR_BLOCK_TOO_MANY_REFERENCES: errno.EMLINK,  # like a hardlink count at its limit
}
_MESSAGES = {
    ERROR_INVALID_FUNCTION: "the volume does not support block cloning (ReFS or a Dev Drive is needed)",
    ERROR_NOT_SAME_DEVICE: "source and target are on different volumes",
    ERROR_NOT_SUPPORTED: "the volume refused the clone (misaligned, or sparse or integrity settings differ)",
    ERROR_INVALID_PARAMETER: "the volume refused the clone request as invalid",
    ERROR_BLOCK_TOO_MANY_REFERENCES: "the source region is already shared too many times",
    ERROR_DISK_FULL: "there is not enough space on the disk",
    ERROR_FILE_EXISTS: "the file exists",
    ERROR_ACCESS_DENIED: "access is denied",
}


# Windows types with their Windows widths.  ctypes.wintypes spells DWORD as
# c_ulong, which is 8 bytes outside Windows; fixed widths give the same
# layout everywhere, so the structures can be checked on any platform.
HANDLE = ctypes.c_void_p
WORD = ctypes.c_uint16
DWORD = ctypes.c_uint32
BOOL = ctypes.c_int
LPCWSTR = ctypes.c_wchar_p
LPWSTR = ctypes.c_wchar_p


class DUPLICATE_EXTENTS_DATA(ctypes.Structure):
    """Input of FSCTL_DUPLICATE_EXTENTS_TO_FILE: 32 bytes on x64 and x86."""

    _fields_ = [
        ("FileHandle", HANDLE),
        ("SourceFileOffset", ctypes.c_longlong),
        ("TargetFileOffset", ctypes.c_longlong),
        ("ByteCount", ctypes.c_longlong),
    ]


class FSCTL_GET_INTEGRITY_INFORMATION_BUFFER(ctypes.Structure):
    _fields_ = [
        ("ChecksumAlgorithm", WORD),
        ("Reserved", WORD),
        ("Flags", DWORD),
        ("ChecksumChunkSizeInBytes", DWORD),
        ("ClusterSizeInBytes", DWORD),
    ]


class FSCTL_SET_INTEGRITY_INFORMATION_BUFFER(ctypes.Structure):
    _fields_ = [
        ("ChecksumAlgorithm", WORD),
        ("Reserved", WORD),
        ("Flags", DWORD),
    ]


class FILE_BASIC_INFO(ctypes.Structure):
    """Times are FILETIME values; 0 leaves a time unchanged, as 0 attributes leave them unchanged."""

    _fields_ = [
        ("CreationTime", ctypes.c_longlong),
        ("LastAccessTime", ctypes.c_longlong),
        ("LastWriteTime", ctypes.c_longlong),
        ("ChangeTime", ctypes.c_longlong),
        ("FileAttributes", DWORD),
    ]


class FILE_END_OF_FILE_INFO(ctypes.Structure):
    _fields_ = [("EndOfFile", ctypes.c_longlong)]


class FILE_DISPOSITION_INFO(ctypes.Structure):
    """``BOOLEAN DeleteFile``: 1 byte."""

    _fields_ = [("DeleteFile", ctypes.c_ubyte)]


class FILE_DISPOSITION_INFO_EX(ctypes.Structure):
    """``DWORD Flags``: 4 bytes."""

    _fields_ = [("Flags", ctypes.c_uint32)]


class FILE_SET_SPARSE_BUFFER(ctypes.Structure):
    """Input of FSCTL_SET_SPARSE to clear the sparse attribute: ``BOOLEAN SetSparse``, 1 byte."""

    _fields_ = [("SetSparse", ctypes.c_ubyte)]


class FILETIME(ctypes.Structure):
    _fields_ = [("dwLowDateTime", DWORD), ("dwHighDateTime", DWORD)]


class BY_HANDLE_FILE_INFORMATION(ctypes.Structure):
    """What GetFileInformationByHandle fills: 52 bytes, the volume serial number at offset 28."""

    _fields_ = [
        ("dwFileAttributes", DWORD),
        ("ftCreationTime", FILETIME),
        ("ftLastAccessTime", FILETIME),
        ("ftLastWriteTime", FILETIME),
        ("dwVolumeSerialNumber", DWORD),
        ("nFileSizeHigh", DWORD),
        ("nFileSizeLow", DWORD),
        ("nNumberOfLinks", DWORD),
        ("nFileIndexHigh", DWORD),
        ("nFileIndexLow", DWORD),
    ]


_H, _B, _D = HANDLE, BOOL, DWORD
_LPD = ctypes.POINTER(DWORD)
#: name: (argtypes, restype) of every kernel32 function used here.
PROTOTYPES = {
    "CreateFileW": ([LPCWSTR, _D, _D, ctypes.c_void_p, _D, _D, _H], _H),
    "CloseHandle": ([_H], _B),
    "DeleteFileW": ([LPCWSTR], _B),
    "DeviceIoControl": ([_H, _D, ctypes.c_void_p, _D, ctypes.c_void_p, _D, _LPD, ctypes.c_void_p], _B),
    "GetFileSizeEx": ([_H, ctypes.POINTER(ctypes.c_longlong)], _B),
    "GetFileInformationByHandle": ([_H, ctypes.POINTER(BY_HANDLE_FILE_INFORMATION)], _B),
    "GetFileInformationByHandleEx": ([_H, ctypes.c_int, ctypes.c_void_p, _D], _B),
    "SetFileInformationByHandle": ([_H, ctypes.c_int, ctypes.c_void_p, _D], _B),
    "GetVolumePathNameW": ([LPCWSTR, LPWSTR, _D], _B),
    "GetDiskFreeSpaceW": ([LPCWSTR, _LPD, _LPD, _LPD, _LPD], _B),
    "GetVolumeInformationW": ([LPCWSTR, LPWSTR, _D, _LPD, _LPD, _LPD, LPWSTR, _D], _B),
    "OpenProcess": ([_D, _B, _D], _H),
    "GetExitCodeProcess": ([_H, _LPD], _B),
}


def chunks(size: int, cluster: int) -> list[tuple[int, int]]:
    """``(offset, length)`` of each duplicate-extents call for a file of ``size`` bytes.

    Each call is under 4 GiB and starts on a cluster boundary; the last
    length is rounded up to a whole cluster, as the call requires (the
    target's end of file, set beforehand, keeps the real size).
    """
    limit = (CALL_LIMIT - 1) // cluster * cluster
    result = []
    offset = 0
    while offset < size:
        length = min(limit, size - offset)
        result.append((offset, -(-length // cluster) * cluster))
        offset += length
    return result


def _filetime(seconds: int) -> int:
    return seconds * 10_000_000 + _FILETIME_EPOCH
