"""Linux: reflinks through the FICLONE ioctl, and FIEMAP to prove them.

Registered as a plugin only on Linux (see ``platforms/__init__.py``).  Uses
``fcntl.ioctl`` from the standard library; ``fcntl.FICLONE`` only exists from
Python 3.12, so the constant is defined here.
"""

from __future__ import annotations

import errno
import os
import struct
from fcntl import ioctl as _ioctl

from ..errors import Unsupported
from ..hookspecs import hookimpl

FICLONE = 0x40049409
FS_IOC_FIEMAP = 0xC020660B
FIEMAP_EXTENT_LAST = 0x1
FIEMAP_EXTENT_SHARED = 0x2000
FIEMAP_FLAG_SYNC = 0x1
_FIEMAP_HEADER = struct.Struct("=QQLLLL")  # start, length, flags, mapped, count, reserved: 32 bytes
_FIEMAP_EXTENT = struct.Struct("=QQQQQLLLL")  # logical, physical, length, 2 reserved, flags, 3 reserved: 56 bytes

#: errno values meaning "this filesystem pair cannot clone": fall back, never crash.
#: EOPNOTSUPP (ext4, tmpfs, overlayfs), EXDEV (other filesystem), EINVAL (btrfs
#: NOCOW, unaligned), EPERM (immutable, LXC on ZFS), EACCES (SELinux), ENOTTY
#: (old kernel), EAGAIN (ZFS), ENOSYS (seccomp), ETXTBSY (swapfile), EBADF.
CLONE_UNSUPPORTED = frozenset(
    getattr(errno, name)
    for name in ("EOPNOTSUPP", "ENOTSUP", "EXDEV", "EINVAL", "EPERM", "EACCES", "ENOTTY", "EAGAIN", "ENOSYS",
                 "ETXTBSY", "EBADF")
    if hasattr(errno, name)
)
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


def ficlone(source: str, target: str, dir_fd: int | None, mode: int, mtime: int | None) -> None:
    """Create ``target`` as a reflink of ``source`` (see ``strategies.LinkFunction``).

    The target is created with ``O_EXCL`` (FICLONE never truncates, so a stale
    file would keep its tail) and with ``mode`` at creation, since FICLONE
    copies data only.  On any failure the target is removed.
    """
    src = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    try:
        dst = os.open(target, _CREATE, mode, dir_fd=dir_fd)
        try:
            _ioctl(dst, FICLONE, src)
            if mtime is not None:
                os.utime(dst, (mtime, mtime))
        except OSError as error:
            os.close(dst)
            os.unlink(target, dir_fd=dir_fd)
            if error.errno in CLONE_UNSUPPORTED:
                raise Unsupported(f"FICLONE failed: [Errno {error.errno}] {error.strerror}", error.errno) from None
            raise
        os.close(dst)
    finally:
        os.close(src)


class LinuxClone:
    """The FICLONE clone backend."""

    name = "linux-ficlone"
    clone = staticmethod(ficlone)


@hookimpl
def holoclone_clone_backend() -> LinuxClone:
    """Linux clones with FICLONE."""
    return LinuxClone()


@hookimpl
def holoclone_filesystem_name(path: str) -> str | None:
    """The filesystem type of ``path`` from statfs's magic number, for messages."""
    return filesystem_name(path)


_FS_MAGIC = {
    0x9123683E: "btrfs", 0x58465342: "xfs", 0xCA451A4E: "bcachefs", 0x7461636F: "ocfs2", 0xEF53: "ext4",
    0x01021994: "tmpfs", 0x794C7630: "overlayfs", 0x6969: "nfs", 0x2FC12FC1: "zfs", 0x65735546: "fuse",
}


def filesystem_name(path: str) -> str | None:
    """statfs(2) f_type of ``path`` as a name, or None when unknown or unavailable."""
    import ctypes
    import ctypes.util

    class _Statfs(ctypes.Structure):
        _fields_ = [("f_type", ctypes.c_long), ("_rest", ctypes.c_byte * 120)]

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        buf = _Statfs()
        libc.statfs.argtypes = [ctypes.c_char_p, ctypes.POINTER(_Statfs)]
        libc.statfs.restype = ctypes.c_int
        if libc.statfs(os.fsencode(path), ctypes.byref(buf)) != 0:
            return None
    except (OSError, AttributeError):
        return None
    magic = buf.f_type & 0xFFFFFFFF
    return _FS_MAGIC.get(magic, f"0x{magic:x}")


def extents(path: str) -> list[tuple[int, int, int, int]]:
    """``(logical, physical, length, flags)`` of every extent of ``path`` via FS_IOC_FIEMAP."""
    result = []
    start = 0
    batch = 64
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        while True:
            request = bytearray(_FIEMAP_HEADER.size + batch * _FIEMAP_EXTENT.size)
            _FIEMAP_HEADER.pack_into(request, 0, start, 0xFFFFFFFFFFFFFFFF - start, FIEMAP_FLAG_SYNC, 0, batch, 0)
            _ioctl(fd, FS_IOC_FIEMAP, request, True)
            mapped = _FIEMAP_HEADER.unpack_from(request, 0)[3]
            if not mapped:
                return result
            last = False
            for i in range(mapped):
                logical, physical, length, _, _, flags, _, _, _ = _FIEMAP_EXTENT.unpack_from(
                    request, _FIEMAP_HEADER.size + i * _FIEMAP_EXTENT.size
                )
                result.append((logical, physical, length, flags))
                start = logical + length
                last = last or bool(flags & FIEMAP_EXTENT_LAST)
            if last:
                return result
    finally:
        os.close(fd)


def shares_extents(path: str) -> bool:
    """True when every extent of a non-empty file is marked shared (a reflink, or its source)."""
    found = extents(path)
    return bool(found) and all(flags & FIEMAP_EXTENT_SHARED for _, _, _, flags in found)
