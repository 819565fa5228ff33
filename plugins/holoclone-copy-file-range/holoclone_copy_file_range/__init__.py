"""A holoclone strategy that writes files with the kernel's ``copy_file_range``.

``copy_file_range`` copies inside the kernel: no bytes pass through this
process, and filesystems that can (XFS with reflink=1, btrfs, NFS 4.2 server
side copy) may share extents instead of writing data.  Whether they did is
not reported back, so every file written this way counts as ``copied``:
holoclone's report only says ``reflinked`` when sharing is proven.

Strategy ``copy-file-range`` = this method, then the built-in ``copy``.  When
the call is missing (not Linux, old Python) or the kernel refuses it for this
pair of files (``EXDEV``, ``EOPNOTSUPP``, ``ENOSYS``, ``EINVAL``), the method
raises :class:`~holoclone_venv.api.Unsupported`; holoclone's linker then
falls back to ``copy`` and names the reason in its fallback line.

Registered through the entry-point group ``holoclone`` (see pyproject.toml);
the only hook is :func:`holoclone_strategies`.
"""

from __future__ import annotations

import errno
import os
from typing import Mapping, Optional

from holoclone_venv.api import LinkMethod, Strategy, Unsupported, hookimpl

__version__ = "0.1.0"

NAME = "copy-file-range"

#: Errors meaning "copy_file_range cannot work for these two files", not "something broke".
FALLBACK_ERRNOS = frozenset(
    code
    for code in (getattr(errno, name, None) for name in ("EXDEV", "EOPNOTSUPP", "ENOTSUP", "ENOSYS", "EINVAL"))
    if code is not None
)

# The kernel caps one call near 2 GiB; asking for 1 GiB per call keeps every platform happy.
_CHUNK = 1 << 30
_OPEN_FLAGS = getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def copy_file_range_link(source: str, target: str, dir_fd: Optional[int], mode: int, mtime: Optional[int]) -> None:
    """Create ``target`` (relative to ``dir_fd`` when not None) as a kernel-side copy of ``source``.

    Follows holoclone's ``LinkFunction`` contract: ``mode`` is the new file's
    permission, ``mtime`` is set when not None, :class:`Unsupported` means
    "try the next method", and no target is left behind on any failure.
    """
    copy_range = getattr(os, "copy_file_range", None)
    if copy_range is None:
        raise Unsupported("os.copy_file_range is not available on this platform", errno.ENOSYS)
    src = os.open(source, os.O_RDONLY | _OPEN_FLAGS)
    try:
        size = os.fstat(src).st_size
        dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _OPEN_FLAGS, mode, dir_fd=dir_fd)
        try:
            copied = 0
            while copied < size:
                done = copy_range(src, dst, min(size - copied, _CHUNK))
                if done == 0:
                    # Some filesystems answer 0 instead of an error when they
                    # cannot copy; a short file must never pass for a copy.
                    raise Unsupported(f"copy_file_range stopped after {copied} of {size} bytes")
                copied += done
            if mtime is not None:
                os.utime(dst, (mtime, mtime))
        except OSError as error:
            _discard(dst, target, dir_fd)
            if error.errno in FALLBACK_ERRNOS:
                raise Unsupported(f"copy_file_range failed: {error.strerror}", error.errno) from None
            raise
        except BaseException:
            _discard(dst, target, dir_fd)
            raise
        os.close(dst)
    finally:
        os.close(src)


def _discard(fd: int, target: str, dir_fd: Optional[int]) -> None:
    os.close(fd)
    try:
        os.unlink(target, dir_fd=dir_fd)
    except OSError:
        pass


#: Counted as ``copied``: the kernel may have shared extents, but nothing proves it did.
COPY_FILE_RANGE = LinkMethod(NAME, copy_file_range_link, counts_as="copied", shares_inode=False)


@hookimpl
def holoclone_strategies(methods: Mapping[str, LinkMethod]) -> list[Strategy]:
    """Add strategy ``copy-file-range``: this plugin's method, then the built-in ``copy``."""
    return [
        Strategy(
            NAME,
            (COPY_FILE_RANGE, methods["copy"]),
            "copy_file_range (kernel-side copy that may share extents), else copy",
        )
    ]
