"""What every platform module shares: its plugin, and the POSIX defaults.

Nothing here asks which platform this is; ``platforms/__init__.py`` decides
which of these a platform uses.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import sys
import threading
import functools
from typing import Callable, NamedTuple, Optional, Sequence

from ..hookspecs import CloneBackend, LinkFunction, hookimpl


class Extent(NamedTuple):
    """One extent of a file, as the filesystem reports it."""

    logical: int
    physical: int
    length: int
    shared: bool  # the data is shared with another file (reflink/clone)
    located: bool  # physical is a real disk location (False for inline/tail/unknown extents)


@functools.lru_cache(maxsize=None)
def machine() -> str:
    """The machine architecture as the kernel names it (``x86_64``, ``aarch64``, ``ppc64le``...)."""
    uname = getattr(os, "uname", None)
    if uname is not None:
        return uname().machine
    import platform

    return platform.machine()



class PlatformPlugin:
    """The built-in plugin of one platform: its clone backend and its filesystem names.

    ``prepare``, when given, runs each time the clone backend is asked for:
    the hook is called once per run on the main thread before any worker
    starts, the place to read process-wide state (the umask) safely.
    """

    def __init__(self, name: str, clone: LinkFunction, filesystem_name: Callable[[str], Optional[str]],
                 prepare: Optional[Callable[[], object]] = None, clone_open: Optional[Callable] = None) -> None:
        self.backend = CloneBackend(name, clone, clone_open)
        self.filesystem_name = filesystem_name
        self._prepare = prepare

    def __repr__(self) -> str:
        return f"<PlatformPlugin {self.backend.name}>"

    @hookimpl
    def holoclone_clone_backend(self) -> CloneBackend:
        """This platform's clone backend."""
        if self._prepare is not None:
            self._prepare()
        return self.backend

    @hookimpl
    def holoclone_filesystem_name(self, path: str) -> Optional[str]:
        """The filesystem holding ``path``, for messages."""
        return self.filesystem_name(path)


class TreeCloner(NamedTuple):
    """Whole directory trees cloned in one call: a template, filled once, then cloned per environment.

    Every call raises :class:`~holoclone_venv.errors.Unsupported` when the
    filesystem or the privileges here cannot do it (the per-file path is then
    the way), and ``OSError`` for real failures.
    """

    #: "btrfs-snapshot" or "darwin-clonefile".
    name: str
    #: ``prepare_template(path)``: create an empty directory at ``path`` that can later be cloned as a whole.
    prepare_template: Callable[[str], None]
    #: ``seal(path)``: make the filled template read-only as a whole.
    seal: Callable[[str], None]
    #: ``clone(template, target)``: make ``target`` (absent; its parent exists) a writable
    #: copy-on-write clone of the whole template in one call; nothing is left behind on failure.
    clone: Callable[[str, str], None]
    #: ``remove(path)``: remove a template (even a sealed one) or a clone, never following symlinks.
    remove: Callable[[str], None]
    #: Whether ``smart`` uses it too: True where a tree clone is just the per-file clones made in one call
    #: (a macOS directory clone); False where it has side effects one chooses (a btrfs subvolume).
    in_smart: bool = False
    #: ``is_template(path, lstat)``: whether the directory at ``path`` can still be cloned whole (a btrfs
    #: template restored from a snapshot of its parent is an empty placeholder, not a subvolume); None: any.
    is_template: Optional[Callable[[str, os.stat_result], bool]] = None
    #: Whether a clone carries the template's sealed (read-only) modes, which the caller then restores: a
    #: macOS template is sealed by its modes; a btrfs one by its subvolume flag, which no snapshot keeps.
    clones_keep_seal: bool = False


def _make_writable_and_retry(function: Callable, path: str, exc_info) -> None:
    """``shutil.rmtree`` error handler: a directory without write permission (0555) is opened up, once."""
    error = exc_info[1]
    if function not in (os.unlink, os.rmdir) or not isinstance(error, PermissionError):
        raise error
    parent = os.path.dirname(path)
    info = os.lstat(parent)
    if not stat.S_ISDIR(info.st_mode) or info.st_mode & 0o300 == 0o300:
        raise error
    os.chmod(parent, stat.S_IMODE(info.st_mode) | 0o700)
    function(path)


def remove_tree(path: str) -> None:
    """Remove the directory tree at ``path`` without following any symlink (``path`` itself included).

    Directories left without write permission inside the tree are made
    writable so their entries can go.
    """
    if stat.S_ISLNK(os.lstat(path).st_mode):
        raise OSError(errno.ENOTDIR, "refusing to remove a tree through a symlink", path)
    if sys.version_info >= (3, 12):  # onerror is deprecated there
        shutil.rmtree(path, onexc=lambda function, name, error: _make_writable_and_retry(
            function, name, (type(error), error, error.__traceback__)))
    else:
        shutil.rmtree(path, onerror=_make_writable_and_retry)


def posix_pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists (``kill(pid, 0)``: no signal is sent)."""
    if pid <= 0:
        return False  # 0 and negative pids name process groups, never one process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    except OverflowError:
        return False
    return True


def unknown_pid_alive(pid: int) -> bool:
    """Where liveness cannot be asked, every positive pid counts as alive (never steal a lock)."""
    return pid > 0


def fsync_each(directory: str, paths: Sequence[str]) -> None:
    """Make ``paths`` durable one ``fsync`` each; a path that vanished is skipped."""
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            continue
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_umask_lock = threading.Lock()
_umask: Optional[int] = None


def process_umask() -> int:
    """The process umask, read once and remembered.

    ``os.umask`` can only read the mask by setting it, and the mask is
    process-wide: a file another thread creates meanwhile would get the
    temporary mask.  So it is read once, from the main thread before any
    worker starts (:func:`holoclone_venv.platforms.current` and the clone
    backend hook do that); later calls return the remembered value.
    """
    global _umask
    with _umask_lock:
        if _umask is None:
            mask = os.umask(0o022)
            os.umask(mask)
            _umask = mask
        return _umask

