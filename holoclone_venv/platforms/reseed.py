"""Re-seed a store object that can no longer be shared: replace it by a fresh copy of itself.

A ReFS/Dev Drive region can be shared at most 8,175 times
(``ERROR_BLOCK_TOO_MANY_REFERENCES``), and an inode can have only so many
hardlinks (``EMLINK``, 65,000 on ext4).  The store object is the source of
every clone and link, so once it is saturated it stays saturated: every
later clone of it falls back.  Clone backends report that as
:class:`holoclone_venv.errors.Unsupported` with errno ``EMLINK``; the linker
then asks the store to re-seed the object (``Store.reseed_object``, which
stages the copy under the store's ``tmp/``) and tries again.  No lock is
taken: the replace is atomic and the bytes are the same, so a concurrent
reader opens the old file or the new one, each whole.  Files already made
from the old object keep their data: on POSIX they keep the old inode or
blocks, on Windows the old clusters stay referenced by them.
"""

from __future__ import annotations

import os
import stat

_CHUNK = 1 << 20
_BINARY = getattr(os, "O_BINARY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_os_replace = os.replace  # a seam: the tests play Windows' refusal to replace a read-only file


def reseed(path: str, temporary: str) -> None:
    """Atomically replace the file at ``path`` by an unshared copy with the same bytes, mode and times.

    The copy is written at ``temporary`` (a new name on the same filesystem, outside the folder of
    objects, so a crash never leaves a file there that looks like one) and renamed over ``path``.

    The copy is a plain byte copy, deliberately: a clone (``copy_file_range``,
    ``CopyFile2`` on new Windows) would share the saturated data again.  It
    is flushed before it replaces the object, so it is safe to clone at
    once.  Raises OSError when the object cannot be read or replaced (on
    Windows, for instance, while another process holds it open without
    delete sharing); the object is then left as it was and no temporary
    file remains.
    """
    info = os.stat(path)
    mode = stat.S_IMODE(info.st_mode)
    try:
        _copy_bytes(path, temporary)
        os.utime(temporary, ns=(info.st_atime_ns, info.st_mtime_ns))
        os.chmod(temporary, mode)
        _replace(temporary, path, mode)
    except BaseException:
        _remove(temporary)
        raise


def _copy_bytes(source: str, target: str) -> None:
    src = os.open(source, os.O_RDONLY | _BINARY | _CLOEXEC)
    try:
        dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _BINARY | _CLOEXEC, 0o600)
        try:
            while True:
                block = os.read(src, _CHUNK)
                if not block:
                    break
                view = memoryview(block)
                while view:
                    view = view[os.write(dst, view):]
            os.fsync(dst)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def replace(source: str, target: str) -> None:
    """``os.replace(source, target)``, also over a read-only ``target`` (which Windows refuses to replace).

    The store replaces objects this way when it heals one that is damaged
    but still read-only.  On a refusal the target's write bit is set for the
    replace and cleared again if it still fails.
    """
    try:
        _os_replace(source, target)  # the usual case: one call, nothing looked up first
    except PermissionError:
        _replace(source, target, stat.S_IMODE(os.lstat(target).st_mode))


def _replace(temporary: str, path: str, mode: int) -> None:
    try:
        _os_replace(temporary, path)
    except PermissionError:
        # Windows refuses to replace a file with the read-only attribute
        # (a 0444 object); POSIX never fails for the target's own mode.
        if mode & stat.S_IWRITE:
            raise
        os.chmod(path, mode | stat.S_IWRITE)
        try:
            _os_replace(temporary, path)
        except BaseException:
            os.chmod(path, mode)
            raise


def _remove(path: str) -> None:
    try:
        os.chmod(path, stat.S_IREAD | stat.S_IWRITE)  # Windows cannot delete a read-only file
        os.unlink(path)
    except OSError:
        pass
