"""btrfs: whole trees cloned in one call, as a read-only subvolume and writable snapshots of it.

A template is a subvolume (``BTRFS_IOC_SUBVOL_CREATE``), filled with files
and then made read-only (``BTRFS_IOC_SUBVOL_SETFLAGS``).  A clone is a
writable snapshot of it (``BTRFS_IOC_SNAP_CREATE_V2``): one new tree root,
whatever the number of files.  None of this needs privileges when the
caller owns the template; a snapshot of another user's subvolume is EPERM.

Only ``fcntl.ioctl`` on directory file descriptors (no ``btrfs`` command);
the calls fail as :class:`Unsupported` on any other filesystem (ENOTTY).
This module imports on any platform; ``platforms/__init__.py`` offers
:data:`TREE` on Linux only.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import struct

from ..errors import UNSUPPORTED_ERRNOS, Unsupported
from .base import TreeCloner, machine, remove_tree
from .linux import filesystem_name, ioc_read, ioc_write

BTRFS_IOCTL_MAGIC = 0x94
BTRFS_SUPER_MAGIC = 0x9123683E
#: The inode number of every subvolume's root directory.
BTRFS_FIRST_FREE_OBJECTID = 256
BTRFS_PATH_NAME_MAX = 4087
BTRFS_SUBVOL_NAME_MAX = 4039
BTRFS_SUBVOL_RDONLY = 1 << 1

#: ``struct btrfs_ioctl_vol_args``: ``__s64 fd; char name[BTRFS_PATH_NAME_MAX + 1]`` (4096 bytes).
VOL_ARGS = struct.Struct(f"=q{BTRFS_PATH_NAME_MAX + 1}s")
#: ``struct btrfs_ioctl_vol_args_v2``: ``__s64 fd; __u64 transid, flags; __u64 unused[4]`` (the
#: qgroup_inherit union); ``char name[BTRFS_SUBVOL_NAME_MAX + 1]`` (4096 bytes, the name at 56).
VOL_ARGS_V2 = struct.Struct(f"=qQQ4Q{BTRFS_SUBVOL_NAME_MAX + 1}s")
FLAGS = struct.Struct("=Q")  # __u64


def requests(arch: str) -> dict[str, int]:
    """The btrfs ioctl request numbers as the kernel of architecture ``arch`` (``uname -m``) encodes them."""
    return {
        "BTRFS_IOC_SUBVOL_CREATE": ioc_write(arch, BTRFS_IOCTL_MAGIC, 14, VOL_ARGS.size),
        "BTRFS_IOC_SNAP_DESTROY": ioc_write(arch, BTRFS_IOCTL_MAGIC, 15, VOL_ARGS.size),
        "BTRFS_IOC_SNAP_CREATE_V2": ioc_write(arch, BTRFS_IOCTL_MAGIC, 23, VOL_ARGS_V2.size),
        "BTRFS_IOC_SUBVOL_GETFLAGS": ioc_read(arch, BTRFS_IOCTL_MAGIC, 25, FLAGS.size),
        "BTRFS_IOC_SUBVOL_SETFLAGS": ioc_write(arch, BTRFS_IOCTL_MAGIC, 26, FLAGS.size),
    }


_REQUESTS = requests(machine())
BTRFS_IOC_SUBVOL_CREATE = _REQUESTS["BTRFS_IOC_SUBVOL_CREATE"]
BTRFS_IOC_SNAP_DESTROY = _REQUESTS["BTRFS_IOC_SNAP_DESTROY"]
BTRFS_IOC_SNAP_CREATE_V2 = _REQUESTS["BTRFS_IOC_SNAP_CREATE_V2"]
BTRFS_IOC_SUBVOL_GETFLAGS = _REQUESTS["BTRFS_IOC_SUBVOL_GETFLAGS"]
BTRFS_IOC_SUBVOL_SETFLAGS = _REQUESTS["BTRFS_IOC_SUBVOL_SETFLAGS"]

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
# Seam: the tests replace it to see the exact calls.
_ioctl = fcntl.ioctl


def is_subvolume(path: str) -> bool:
    """Whether ``path`` (not followed if a symlink) is the root directory of a btrfs subvolume."""
    try:
        info = os.lstat(path)
    except (OSError, ValueError):
        return False
    return (stat.S_ISDIR(info.st_mode) and info.st_ino == BTRFS_FIRST_FREE_OBJECTID
            and filesystem_name(path) == "btrfs")


def _split(path: str, limit: int) -> tuple[str, bytes]:
    """``(parent directory, name as bytes)`` of ``path``; the name must fit ``limit`` bytes."""
    parent, name = os.path.split(os.fspath(path).rstrip("/") or "/")
    encoded = os.fsencode(name)
    if encoded in (b"", b".", b".."):
        raise OSError(errno.EINVAL, "not a name a subvolume can have", path)
    if len(encoded) > limit:
        raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), path)
    return parent or ".", encoded


def _failed(call: str, error: OSError, path: str, detail: str = "") -> BaseException:
    """The error to raise for a failed ioctl: :class:`Unsupported` for "cannot here", else ``OSError``."""
    code = error.errno or errno.EIO  # an ioctl's OSError always carries one
    if code in UNSUPPORTED_ERRNOS:
        where = detail or _explain(call, code, path)
        return Unsupported(f"{call} failed on {path}: [Errno {code}] {os.strerror(code)}{where}", code)
    return OSError(code, f"{call} failed: {os.strerror(code)}", path)


def _explain(call: str, code: int, path: str) -> str:
    if code == errno.ENOTTY:
        found = filesystem_name(path if os.path.isdir(path) else os.path.dirname(path) or ".")
        return f" ({found or 'this filesystem'} is not btrfs)"
    if code == errno.EPERM and call == "BTRFS_IOC_SNAP_CREATE_V2":
        return " (a snapshot needs a template the caller owns)"
    return ""


def _open_subvolume(path: str, call: str) -> int:
    """An fd of the subvolume root at ``path`` (never through a symlink), or :class:`Unsupported`."""
    try:
        fd = os.open(path, _DIRECTORY | os.O_NOFOLLOW)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR):  # O_NOFOLLOW | O_DIRECTORY on a symlink: ENOTDIR
            what = "a symlink" if os.path.islink(path) else "not a directory"
            raise Unsupported(f"{call}: {path} is {what}, not a subvolume", errno.EINVAL) from None
        raise
    if os.fstat(fd).st_ino != BTRFS_FIRST_FREE_OBJECTID:
        # Given any other directory, btrfs would act on the subvolume holding it.
        os.close(fd)
        found = filesystem_name(path)
        why = "not a btrfs subvolume" if found == "btrfs" else f"on {found or 'a filesystem'} that is not btrfs"
        raise Unsupported(f"{call}: {path} is {why}", errno.EINVAL if found == "btrfs" else errno.ENOTTY)
    return fd


def _get_flags(fd: int) -> int:
    buffer = bytearray(FLAGS.size)
    _ioctl(fd, BTRFS_IOC_SUBVOL_GETFLAGS, buffer, True)
    return FLAGS.unpack(buffer)[0]


def _set_flags(fd: int, flags: int) -> None:
    _ioctl(fd, BTRFS_IOC_SUBVOL_SETFLAGS, bytearray(FLAGS.pack(flags)), True)


#: Where the kernel lists the btrfs features it has (a seam for the tests).
FEATURES = "/sys/fs/btrfs/features"


def owner_can_remove_subvolumes() -> bool:
    """Whether this kernel lets a subvolume's owner remove it with ``rmdir`` (Linux 4.18+, ``rmdir_subvol``).

    Before, ``rmdir`` of a subvolume is EPERM for all but root, so neither
    ``rm -rf ENV`` nor ``virtualenv --clear`` could remove a snapshot
    environment.
    """
    return os.path.exists(os.path.join(FEATURES, "rmdir_subvol"))


def prepare_template(path: str) -> None:
    """Create an empty subvolume at ``path``, owned by the caller (no privileges needed).

    :class:`Unsupported` (nothing created) on a kernel where the owner could
    not remove the environments cloned from it (:func:`owner_can_remove_subvolumes`).
    """
    parent, name = _split(path, BTRFS_PATH_NAME_MAX)
    # Asked only on btrfs: elsewhere the ioctl below names the filesystem, the better reason.
    if not owner_can_remove_subvolumes() and filesystem_name(parent) == "btrfs":
        raise Unsupported("this kernel does not let a subvolume's owner remove it (rmdir_subvol, Linux 4.18), "
                          "so an environment made of a snapshot could not be removed with rm -rf", errno.EPERM)
    fd = os.open(parent, _DIRECTORY)
    try:
        _ioctl(fd, BTRFS_IOC_SUBVOL_CREATE, bytearray(VOL_ARGS.pack(0, name)), True)
    except OSError as error:
        raise _failed("BTRFS_IOC_SUBVOL_CREATE", error, path) from None
    finally:
        os.close(fd)


def seal(path: str) -> None:
    """Make the subvolume at ``path`` read-only as a whole (``BTRFS_SUBVOL_RDONLY``)."""
    fd = _open_subvolume(path, "BTRFS_IOC_SUBVOL_SETFLAGS")
    try:
        flags = _get_flags(fd)
        if not flags & BTRFS_SUBVOL_RDONLY:
            _set_flags(fd, flags | BTRFS_SUBVOL_RDONLY)
    except OSError as error:
        raise _failed("BTRFS_IOC_SUBVOL_SETFLAGS", error, path) from None
    finally:
        os.close(fd)


def clone(template: str, target: str) -> None:
    """Make ``target`` a writable snapshot of the subvolume ``template``, in one call.

    ``target`` must not exist (``FileExistsError`` then, the existing entry
    left alone) and its parent must.  The snapshot is made by the kernel in
    one transaction: on failure nothing is left at ``target``.
    """
    parent, name = _split(target, BTRFS_SUBVOL_NAME_MAX)
    source = _open_subvolume(template, "BTRFS_IOC_SNAP_CREATE_V2")
    try:
        fd = os.open(parent, _DIRECTORY)
        try:
            args = bytearray(VOL_ARGS_V2.pack(source, 0, 0, 0, 0, 0, 0, name))  # flags 0: writable
            _ioctl(fd, BTRFS_IOC_SNAP_CREATE_V2, args, True)
        except OSError as error:
            detail = ""
            if error.errno in (errno.ENOTTY, errno.EXDEV):
                found = filesystem_name(parent)
                if found != "btrfs":
                    # The call reached a filesystem that does not know it: another filesystem.
                    error = OSError(errno.EXDEV, os.strerror(errno.EXDEV))
                    detail = f" (the target's directory is on {found or 'another filesystem'}, not the template's btrfs)"
                else:
                    detail = " (the template is on another filesystem)"
            raise _failed("BTRFS_IOC_SNAP_CREATE_V2", error, target, detail) from None
        finally:
            os.close(fd)
    finally:
        os.close(source)


def remove(path: str) -> None:
    """Remove a template (sealed or not) or a clone at ``path``, never following symlinks.

    A read-only subvolume is made writable first, then the tree is removed
    the ordinary way (an empty subvolume goes with ``rmdir`` since Linux
    4.18).  When either step fails for the subvolume (another user's
    template: EPERM; a qgroup over its limit refuses even the flag change:
    EDQUOT), ``BTRFS_IOC_SNAP_DESTROY`` is tried, which works with privileges
    (or ``user_subvol_rm_allowed``); else the first error is raised.
    """
    info = os.lstat(path)
    subvolume = stat.S_ISDIR(info.st_mode) and info.st_ino == BTRFS_FIRST_FREE_OBJECTID
    try:
        if subvolume:
            subvolume = _unseal(path)
        remove_tree(path)
    except OSError as error:
        if not subvolume or not os.path.isdir(path) or os.path.islink(path):
            raise
        try:
            _destroy(path)
        except OSError:
            raise error from None


def _unseal(path: str) -> bool:
    """Clear ``BTRFS_SUBVOL_RDONLY`` of the subvolume at ``path``; False when it is not on btrfs."""
    fd = os.open(path, _DIRECTORY | os.O_NOFOLLOW)
    try:
        try:
            flags = _get_flags(fd)
        except OSError as error:
            if error.errno in (errno.ENOTTY, errno.EINVAL):
                return False  # not btrfs: an ordinary directory
            raise
        if flags & BTRFS_SUBVOL_RDONLY:
            _set_flags(fd, flags & ~BTRFS_SUBVOL_RDONLY)
        return True
    finally:
        os.close(fd)


def _destroy(path: str) -> None:
    parent, name = _split(path, BTRFS_PATH_NAME_MAX)
    fd = os.open(parent, _DIRECTORY)
    try:
        _ioctl(fd, BTRFS_IOC_SNAP_DESTROY, bytearray(VOL_ARGS.pack(0, name)), True)
    finally:
        os.close(fd)


def is_template(path: str, info: os.stat_result) -> bool:
    """False for a directory on btrfs that is not a subvolume root: a template restored from a snapshot of
    the subvolume holding the store (snapshots are not recursive) is an empty placeholder (inode 2)."""
    return info.st_ino == BTRFS_FIRST_FREE_OBJECTID or filesystem_name(path) != "btrfs"


TREE = TreeCloner("btrfs-snapshot", prepare_template, seal, clone, remove, is_template=is_template)
