"""Linux: reflinks through the FICLONE ioctl, FIEMAP to prove them, syncfs for durability.

Chosen by ``platforms/__init__.py`` on Linux; its :data:`PLUGIN` is the
platform plugin.  Uses ``fcntl.ioctl`` from the standard library; libc (for
``statfs`` and ``syncfs``) and ctypes itself are loaded on first use, never at import.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import os
import struct
import threading
from typing import Optional, Sequence

from ..errors import UNSUPPORTED_ERRNOS, Unsupported
from .base import Extent, PlatformPlugin, machine

#: ``_IOC`` encodings that differ from the generic one (asm/ioctl.h):
#: architecture prefix -> (_IOC_WRITE, _IOC_READ, _IOC_SIZEBITS).  Everything
#: else uses the generic _IOC_WRITE=1, _IOC_READ=2 with 14 size bits.
_IOC_ENCODINGS = (
    (("ppc", "powerpc", "mips", "sparc", "alpha"), (4, 2, 13)),
    (("parisc",), (2, 1, 14)),  # parisc swaps _IOC_READ and _IOC_WRITE
)


def _ioc(arch: str, read: bool, kind: int, number: int, size: int) -> int:
    write_bit, read_bit, size_bits = 1, 2, 14
    for prefixes, encoding in _IOC_ENCODINGS:
        if arch.startswith(prefixes):
            write_bit, read_bit, size_bits = encoding
            break
    if not 0 <= size < 1 << size_bits:
        raise ValueError(f"an ioctl argument of {size} bytes does not fit the size field on {arch}")
    return (read_bit if read else write_bit) << (16 + size_bits) | size << 16 | kind << 8 | number


def ioc_write(arch: str, kind: int, number: int, size: int) -> int:
    """``_IOW(kind, number, size)`` as the kernel of architecture ``arch`` (``uname -m``) encodes it."""
    return _ioc(arch, False, kind, number, size)


def ioc_read(arch: str, kind: int, number: int, size: int) -> int:
    """``_IOR(kind, number, size)`` as the kernel of architecture ``arch`` (``uname -m``) encodes it."""
    return _ioc(arch, True, kind, number, size)


def ficlone_request(arch: str) -> int:
    """``FICLONE`` = ``_IOW(0x94, 9, int)`` on ``arch``: 0x40049409, or 0x80049409 on powerpc/mips/sparc/alpha/parisc."""
    return ioc_write(arch, 0x94, 9, 4)


#: Python 3.12 has fcntl.FICLONE from the C headers; before, encode it for this machine.
FICLONE = getattr(fcntl, "FICLONE", None) or ficlone_request(machine())
FS_IOC_FIEMAP = 0xC020660B  # _IOWR('f', 11, struct fiemap): the same on every architecture
FIEMAP_FLAG_SYNC = 0x1
FIEMAP_EXTENT_LAST = 0x1
FIEMAP_EXTENT_UNKNOWN = 0x2
FIEMAP_EXTENT_DATA_INLINE = 0x200
FIEMAP_EXTENT_DATA_TAIL = 0x400
FIEMAP_EXTENT_SHARED = 0x2000
#: Extents whose physical offset is not a real, shareable disk location.
_NOT_LOCATED = FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DATA_INLINE | FIEMAP_EXTENT_DATA_TAIL
_FIEMAP_HEADER = struct.Struct("=QQLLLL")  # start, length, flags, mapped, count, reserved: 32 bytes
_FIEMAP_EXTENT = struct.Struct("=QQQQQLLLL")  # logical, physical, length, 2 reserved, flags, 3 reserved: 56 bytes

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC

# Seams: the tests replace these to play a filesystem this machine lacks (ZFS).
_ioctl = fcntl.ioctl
_sync = os.sync


def ficlone(source: str, target: str, dir_fd: Optional[int], mode: int, mtime: Optional[int]) -> None:
    """Create ``target`` as a reflink of ``source`` (the LinkFunction contract); see :func:`ficlone_open`."""
    src = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    try:
        ficlone_open(src, os.fstat(src).st_size, target, dir_fd, mode, mtime)
    finally:
        os.close(src)


def ficlone_open(src: int, size: int, target: str, dir_fd: Optional[int], mode: int, mtime: Optional[int]) -> None:
    """Create ``target`` as a reflink of the open file ``src`` of ``size`` bytes (the OpenLinkFunction contract).

    The target is created with ``O_EXCL`` (FICLONE never truncates, so a stale
    file would keep its tail) and with ``mode`` at creation, since FICLONE
    copies data only.  ``EAGAIN`` (ZFS refusing blocks not yet synced) is
    a fallback for this file only (the linker keeps trying the next files).
    A clone that reports success but is shorter than ``size`` (a ZFS bug) is
    a failed clone.  On any failure the target is removed.
    """
    dst = os.open(target, _CREATE, mode, dir_fd=dir_fd)
    try:
        _clone(src, dst, size)
        if mtime is not None:
            os.utime(dst, (mtime, mtime))
    except BaseException as error:
        os.close(dst)
        os.unlink(target, dir_fd=dir_fd)
        if isinstance(error, OSError) and error.errno in UNSUPPORTED_ERRNOS:
            raise Unsupported(f"FICLONE failed: [Errno {error.errno}] {error.strerror}", error.errno) from None
        raise
    os.close(dst)


def _clone(src: int, dst: int, size: int) -> None:
    # OpenZFS 2.2 to 2.3.3 (zfs_bclone_wait_dirty=0) answers EAGAIN for blocks
    # of the open transaction group.  No retry: syncfs and sync(2) reach only
    # zil_commit, which does not wait for the group, so a retry would fail the
    # same way after a flush.  The caller falls back for this one file.
    _ioctl(dst, FICLONE, src)
    # The new file's size, without building a stat result: this runs once per file.
    got = os.lseek(dst, 0, os.SEEK_END)
    if got != size:
        # Some OpenZFS versions (issue 15728) report success for a partial clone.
        raise Unsupported(f"FICLONE reported success but cloned {got} of {size} bytes")


def make_durable(directory: str, paths: Sequence[str]) -> None:
    """Put ``paths`` (all on the filesystem of ``directory``) on stable storage: one ``syncfs``.

    One ``syncfs(2)`` of the store's filesystem costs one flush for a whole
    batch of objects, where an ``fsync`` per object costs one each.  Without
    ``syncfs`` in libc, ``sync(2)`` is used.  A vanished directory means
    nothing is left to flush.
    """
    if not paths:
        return
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        _sync_filesystem(fd)
    finally:
        os.close(fd)


def _sync_filesystem(fd: int) -> None:
    """``syncfs(fd)``, or ``sync()`` where libc lacks syncfs; OSError on a real I/O error."""
    syncfs = _libc_function("syncfs")
    if syncfs is None:
        _sync()
        return
    if syncfs(fd) != 0:
        import ctypes

        code = ctypes.get_errno()
        if code == errno.ENOSYS:  # a seccomp filter or an emulator refusing the call
            _sync()
            return
        raise OSError(code, f"syncfs failed: {os.strerror(code)}")


@functools.lru_cache(maxsize=None)
def _statfs_type():
    """The head of ``struct statfs``: ``f_type`` is ``__fsword_t``, long except on s390x (32 bits)."""
    import ctypes

    class Statfs(ctypes.Structure):
        _fields_ = [
            ("f_type", ctypes.c_uint32 if machine().startswith("s390") else ctypes.c_long),
            ("_rest", ctypes.c_byte * 248),  # the rest (120 bytes on 64-bit), with room to spare
        ]

    return Statfs


_lock = threading.Lock()
_library = None  # the C library, loaded on first use: ctypes costs every seeding an import otherwise


def _open_library():
    """The C library already loaded into this process (no search on disk)."""
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _prototype(name: str):
    import ctypes

    if name == "statfs":
        return [ctypes.c_char_p, ctypes.POINTER(_statfs_type())], ctypes.c_int
    return [ctypes.c_int], ctypes.c_int  # syncfs


def _libc_function(name: str):
    """``name`` from libc with its prototype declared, or None when libc lacks it."""
    global _library
    with _lock:
        if _library is None:
            _library = _open_library()
        function = getattr(_library, name, None)
        if function is not None and function.argtypes is None:
            function.argtypes, function.restype = _prototype(name)
        return function


_FS_MAGIC = {
    0x9123683E: "btrfs", 0x58465342: "xfs", 0xCA451A4E: "bcachefs", 0x7461636F: "ocfs2", 0xEF53: "ext4",
    0x01021994: "tmpfs", 0x794C7630: "overlayfs", 0x6969: "nfs", 0x2FC12FC1: "zfs", 0x65735546: "fuse",
}


def filesystem_name(path: str) -> Optional[str]:
    """statfs(2) f_type of ``path`` as a name (``0x...`` when unknown), or None when statfs fails."""
    try:
        statfs = _libc_function("statfs")
    except OSError:
        return None
    if statfs is None:
        return None
    import ctypes

    buf = _statfs_type()()
    if statfs(os.fsencode(path), ctypes.byref(buf)) != 0:
        return None
    magic = buf.f_type & 0xFFFFFFFF  # a 32-bit long sign-extends the larger magics
    return _FS_MAGIC.get(magic, f"0x{magic:x}")


def fiemap(path: str) -> list[tuple[int, int, int, int]]:
    """``(logical, physical, length, flags)`` of every extent of ``path``, raw from FS_IOC_FIEMAP."""
    result: list[tuple[int, int, int, int]] = []
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


def extents(path: str) -> list[Extent]:
    """Every extent of ``path`` as an :class:`Extent` (the platform's ``extents``)."""
    return [
        Extent(logical, physical, length, bool(flags & FIEMAP_EXTENT_SHARED), not flags & _NOT_LOCATED)
        for logical, physical, length, flags in fiemap(path)
    ]


def shares_extents(path: str) -> bool:
    """True when every extent of a non-empty file is marked shared (a reflink, or its source)."""
    found = extents(path)
    return bool(found) and all(extent.shared for extent in found)


PLUGIN = PlatformPlugin("linux-ficlone", ficlone, filesystem_name, clone_open=ficlone_open)

