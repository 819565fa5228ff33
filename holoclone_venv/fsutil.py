"""Small file-system helpers every writer shares: whole-or-nothing writes, directories of their own,
content hashes."""

from __future__ import annotations

import os
import stat
import time
from typing import Iterable

_CHUNK = 1 << 20


def write_atomic(
    path: str | os.PathLike[str],
    data: bytes,
    *,
    mode: int = 0o666,
    exact_mode: bool = False,
    stage_dir: str | os.PathLike[str] | None = None,
    durable: bool = False,
) -> None:
    """Replace ``path`` with ``data`` whole or not at all.

    The bytes go to a fresh staged file (in ``stage_dir``, which must be on
    the same filesystem, else beside ``path``), then one rename puts it in
    place: a reader sees the old file or the new one, never a part.  ``mode``
    is applied through the umask as ``open(2)`` does, or exactly with
    ``exact_mode``.  ``durable`` flushes the data before the rename.  The
    staged file never outlives a failure; its name ends in ``.<pid>.<ns>``, so
    the leftover of a killed process can be told apart.  Raises ``OSError``.
    """
    path = os.fspath(path)
    directory = os.fspath(stage_dir) if stage_dir is not None else os.path.dirname(path) or "."
    staged = os.path.join(directory, f".{os.path.basename(path)[:40]}.partial.{os.getpid()}.{time.monotonic_ns()}")
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        if exact_mode:
            os.chmod(staged, mode)
        os.replace(staged, path)
    except BaseException:
        try:
            os.unlink(staged)
        except OSError:
            pass
        raise


def make_dir_below(root: str, directory: str, made: set[str]) -> str:
    """Make ``root/directory`` (``directory`` a relative posix path) one level at a time; returns its path.

    A symlink on the way (from ``--symlink-app-data``, or a user's) is
    replaced by a directory, never written through.  Several threads or
    processes may make overlapping paths at once: each level is settled as a
    directory of its own before anything is made in it.  Something else in
    the way (a file) is left for whatever is made in it to report.  ``made``
    holds the paths this caller already made, which are skipped.
    """
    path = f"{root}/{directory}"
    if path in made:
        return path
    parent = directory.rpartition("/")[0]
    if parent:
        make_dir_below(root, parent, made)
    try:
        os.mkdir(path)
    except FileExistsError:
        _settle_directory(path)
    made.add(path)
    return path


def _settle_directory(path: str) -> None:
    """Make what ``mkdir`` found at ``path`` a directory, going on while another maker replaces the same link."""
    while True:
        try:
            mode: int | None = os.lstat(path).st_mode
        except FileNotFoundError:  # another maker removed the link and has not made the directory yet
            mode = None
        if mode is not None and not stat.S_ISLNK(mode):
            return
        if mode is not None:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError:  # EISDIR, EPERM: another maker put a directory there meanwhile, or a real error
                if os.path.islink(path):
                    raise
                continue
        try:
            os.mkdir(path)
        except FileExistsError:
            pass


def remove_emptied_folders(paths: Iterable[str], within: str, keep: Iterable[str]) -> None:
    """Remove the folders that removing ``paths`` left empty, innermost first, as pip's uninstall does.

    Only folders below ``within`` are touched, never one of ``keep`` (install roots) nor anything above
    it; a folder that is not empty (or not removable) ends the walk up from that path.
    """
    roots = {os.path.realpath(path) for path in keep}
    for path in sorted(paths, key=len, reverse=True):
        folder = os.path.dirname(path)
        while os.path.realpath(folder) not in roots and folder.startswith(within + os.sep):
            try:
                os.rmdir(folder)
            except OSError:
                break
            folder = os.path.dirname(folder)


def folder_listing(directory: str | os.PathLike[str]) -> list[list[object]]:
    """``[[name, size, mtime_ns]...]`` of a folder's entries, sorted by name (none when it cannot be listed):
    what a cache key needs to change when a wheelhouse gains, loses or replaces a file."""
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        return []
    listing: list[list[object]] = []
    for entry in entries:
        try:
            st = entry.stat()
        except OSError:
            continue
        listing.append([entry.name, st.st_size, st.st_mtime_ns])
    return listing


def hash_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    """``(sha256 hex, size)`` of a file, read in 1 MiB blocks: the store's content address."""
    import hashlib

    sha = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            sha.update(block)
            size += len(block)
    return sha.hexdigest(), size
