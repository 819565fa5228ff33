"""The store's folders, opened without ever following a symbolic link.

A store that other accounts can write into (a group-shared one, mode 2775)
lets them plant a link where one of its folders belongs: ``tmp/`` pointing
at a private folder of the store's owner would make reclaiming staging
delete that folder's files.  So every folder below the store's root is
opened one name at a time, relative to its parent's descriptor, with
``O_NOFOLLOW | O_DIRECTORY``; folders are listed through that descriptor,
and files in them are read, written and removed by name relative to it
(``openat``, ``renameat``, ``unlinkat``).  A link (or anything else) where a
folder belongs raises :class:`~holoclone_venv.errors.StoreError` in one
sentence naming the folder.  The root itself may be a link: the store's
owner may have made one, and :meth:`Store.check` vetted it.

Where the platform lacks descriptor-relative calls (Windows), each folder
on the way is checked with ``lstat`` before it is used instead.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from pathlib import Path

from ..errors import StoreError
from .parts import StoreParts

#: Whether folders can be worked in through descriptors (a feature test, not a platform test).
#: (``os.replace`` is ``os.rename`` that may replace: one implementation, and only ``rename`` is listed.)
AT = (hasattr(os, "O_NOFOLLOW") and hasattr(os, "O_DIRECTORY") and os.open in os.supports_dir_fd
      and os.unlink in os.supports_dir_fd and os.rmdir in os.supports_dir_fd and os.mkdir in os.supports_dir_fd
      and os.rename in os.supports_dir_fd and os.stat in os.supports_dir_fd and os.scandir in os.supports_fd
      and os.chmod in os.supports_fd)

_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
#: A document is opened without following a link, and without waiting on a FIFO planted in its place.
_FILE_FLAGS = (os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
               | getattr(os, "O_BINARY", 0))
#: What opening a link or a file as a folder without following it fails with (Linux: ENOTDIR; others: ELOOP).
_NOT_A_FOLDER = frozenset(getattr(errno, name) for name in ("ENOTDIR", "ELOOP") if hasattr(errno, name))


def not_a_folder(path: str | os.PathLike[str]) -> StoreError:
    """The one sentence for a link (or a file) where a store folder belongs, with the fix."""
    return StoreError(
        f"the store folder {path} is a symbolic link or not a folder, and holoclone never follows one there.",
        "Remove it ('holoclone store verify --repair' does) and check who else can write into the store.",
    )


def _parts(root: Path, path: Path) -> list[str]:
    relative = os.path.relpath(path, root)
    if relative == ".":
        return []
    parts = relative.replace(os.sep, "/").split("/")
    if ".." in parts:
        raise ValueError(f"{path} is not inside the store {root}")
    return parts


def open_folder(root: Path, folder: Path, create: bool = False) -> int:
    """A descriptor of ``folder`` (the root or a folder below it), each level below the root opened
    without following a link; missing levels are made when ``create``.  The caller closes it.

    Raises ``FileNotFoundError`` when a level is missing (and not ``create``), :class:`StoreError`
    when one is a link or not a folder.  Needs :data:`AT`.
    """
    fd = os.open(root, _FLAGS)
    try:
        done = root
        for part in _parts(root, folder):
            done = done / part
            try:
                new = os.open(part, _FLAGS | _NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(part, dir_fd=fd)
                except FileExistsError:
                    pass  # another process made it meanwhile: opened below like any folder
                new = _open_level(fd, part, done)
            except OSError as error:
                if error.errno in _NOT_A_FOLDER:
                    raise not_a_folder(done) from None
                raise
            os.close(fd)
            fd = new
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_level(fd: int, part: str, path: Path) -> int:
    try:
        return os.open(part, _FLAGS | _NOFOLLOW, dir_fd=fd)
    except OSError as error:
        if error.errno in _NOT_A_FOLDER:
            raise not_a_folder(path) from None
        raise


def check_folders(root: Path, folder: Path) -> bool:
    """Without :data:`AT`: whether ``folder`` exists, each level below ``root`` checked with ``lstat``;
    raises :class:`StoreError` for a link or a file on the way."""
    done = root
    for part in _parts(root, folder):
        done = done / part
        try:
            mode = os.lstat(done).st_mode
        except FileNotFoundError:
            return False
        if not stat.S_ISDIR(mode):
            raise not_a_folder(done)
    return True


def list_folder(root: Path, folder: Path) -> list[str]:
    """The names in ``folder`` (none when it does not exist), listed without following a link to it."""
    if not AT:
        return os.listdir(folder) if check_folders(root, folder) else []
    try:
        fd = open_folder(root, folder)
    except FileNotFoundError:
        return []
    try:
        with os.scandir(fd) as entries:
            return [entry.name for entry in entries]
    finally:
        os.close(fd)


def read_file(root: Path, path: Path) -> tuple[bytes, os.stat_result] | None:
    """The bytes and ``fstat`` of the regular file ``path`` in the store, opened without following a
    link (neither it nor a folder on its way); None when it is absent, a link, not a regular file or
    unreadable.  Raises :class:`StoreError` when a folder on its way is a link."""
    try:
        if AT:
            folder_fd = open_folder(root, path.parent)
            try:
                fd = os.open(path.name, _FILE_FLAGS, dir_fd=folder_fd)
            finally:
                os.close(folder_fd)
        else:
            if not check_folders(root, path.parent):
                return None
            fd = os.open(path, _FILE_FLAGS)
    except OSError:  # absent, a link (ELOOP) or unreadable: not a file the store holds
        return None
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode):
            return None
        return handle.read(), st


def write_file(root: Path, path: Path, data: bytes, stage: Path, mode: int = 0o644) -> None:
    """Put ``data`` at ``path`` in the store whole or not at all: staged in ``stage`` (a store folder on
    the same filesystem) under a name ending in ``.<pid>.<ns>``, then renamed; folders are made as
    needed and never followed through a link.  Raises ``OSError`` or :class:`StoreError`."""
    from ..fsutil import write_atomic

    if not AT:
        for folder in (stage, path.parent):
            if not check_folders(root, folder):
                folder.mkdir(parents=True, exist_ok=True)
                check_folders(root, folder)
        write_atomic(path, data, mode=mode, stage_dir=stage)
        return
    stage_fd = open_folder(root, stage, create=True)
    try:
        folder_fd = open_folder(root, path.parent, create=True)
        try:
            name = f".{path.name[:40]}.partial.{os.getpid()}.{time.monotonic_ns()}"
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, mode, dir_fd=stage_fd)
            try:
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                finally:
                    os.close(fd)
                os.replace(name, path.name, src_dir_fd=stage_fd, dst_dir_fd=folder_fd)
            except BaseException:
                try:
                    os.unlink(name, dir_fd=stage_fd)
                except OSError:
                    pass
                raise
        finally:
            os.close(folder_fd)
    finally:
        os.close(stage_fd)


def remove(root: Path, path: Path) -> None:
    """Remove the file, link or folder ``path`` of the store; a link is removed itself, never followed,
    and a folder is emptied through descriptors, so nothing outside it is touched.  Gone already is
    fine.  Raises ``OSError``, or :class:`StoreError` when a folder on its way is a link."""
    if not AT:
        import shutil

        if not check_folders(root, path.parent):
            return
        try:
            if stat.S_ISDIR(os.lstat(path).st_mode):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        except FileNotFoundError:
            pass
        return
    try:
        fd = open_folder(root, path.parent)
    except FileNotFoundError:
        return
    try:
        _remove_at(fd, path.name)
    finally:
        os.close(fd)


def _remove_at(parent: int, name: str) -> None:
    try:
        mode = os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(mode):
        try:
            os.unlink(name, dir_fd=parent)
        except FileNotFoundError:
            pass
        return
    try:
        fd = os.open(name, _FLAGS | _NOFOLLOW, dir_fd=parent)
    except FileNotFoundError:
        return
    try:
        st = os.fstat(fd)
        if st.st_mode & 0o700 != 0o700:  # a read-only staged folder: let its entries be removed
            try:
                os.chmod(fd, 0o700)
            except OSError:
                pass  # a sealed template: its remover reports what is wrong
        with os.scandir(fd) as entries:
            names = [entry.name for entry in entries]
        for child in names:
            _remove_at(fd, child)
    finally:
        os.close(fd)
    try:
        os.rmdir(name, dir_fd=parent)
    except FileNotFoundError:
        pass


def remove_empty(root: Path, folder: Path) -> None:
    """Remove the empty folders directly in ``folder`` (those that still hold something stay)."""
    if not AT:
        for name in list_folder(root, folder):
            try:
                os.rmdir(folder / name)
            except OSError:
                pass
        return
    try:
        fd = open_folder(root, folder)
    except FileNotFoundError:
        return
    try:
        with os.scandir(fd) as entries:
            names = [entry.name for entry in entries if entry.is_dir(follow_symlinks=False)]
        for name in names:
            try:
                os.rmdir(name, dir_fd=fd)
            except OSError:
                pass  # not empty
    finally:
        os.close(fd)


class Folders(StoreParts):
    """The store's folders, as a part of :class:`~holoclone_venv.store.Store` (the folder names are
    :class:`StoreParts`')."""

    install_plans: Path  # a property of the Plans part

    def list_folder(self, folder: Path) -> list[str]:
        """The names in a store folder (none when it is absent); :class:`StoreError` when it is a link."""
        return list_folder(self.root, folder)

    def is_folder(self, path: Path) -> bool:
        """Whether ``path`` is a real folder: False when absent or a file, :class:`StoreError` when a link."""
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return False
        if stat.S_ISLNK(mode):
            raise not_a_folder(path)
        return stat.S_ISDIR(mode)

    def make_folder(self, folder: Path) -> Path:
        """Make a store folder (and those above it) unless there, never through a link; returns it."""
        if AT:
            os.close(open_folder(self.root, folder, create=True))
        elif not check_folders(self.root, folder):
            folder.mkdir(parents=True, exist_ok=True)
        return folder

    def remove_empty_folders(self, folder: Path) -> None:
        """Remove the empty folders directly in a store folder (``objects/ab/`` after gc)."""
        remove_empty(self.root, folder)

    def folder_links(self) -> list[Path]:
        """The store's own folders that are links (or files) where a folder belongs."""
        found = []
        for folder in (self.objects, self.catalogs, self.index, self.refs, self.wheels, self.resolutions,
                       self.install_plans, self.templates, self.tmp, self.locks):
            try:
                mode = os.lstat(folder).st_mode
            except FileNotFoundError:
                continue
            if not stat.S_ISDIR(mode):
                found.append(folder)
        return found

    def open_lock_file(self, path: str) -> int:
        """A descriptor of a lock file in ``locks/``, made if needed, never opened through a link (nor
        truncated: another process may hold it)."""
        flags = os.O_CREAT | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        folder = open_folder(self.root, self.locks, create=True)
        try:
            try:
                return os.open(os.path.basename(path), flags | os.O_RDWR, 0o664, dir_fd=folder)
            except PermissionError:  # another account's lock file: a lock needs no write access to it
                return os.open(os.path.basename(path), flags | os.O_RDONLY, 0o664, dir_fd=folder)
        finally:
            os.close(folder)
