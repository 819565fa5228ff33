"""What this platform can do, decided in one place: :func:`current`.

This is the only module of the package that asks which platform it runs on
(``sys.platform``, ``os.name``, the machine architecture).  Everything else
asks :func:`current` for a :class:`Platform` and uses what it offers: the
clone backend plugin, file extents, process liveness, durability and a
native copy.

Importing this package stays cheap: the platform module is imported, and
any foreign library loaded, only when first needed.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Callable, NamedTuple, Optional, Sequence

from .base import Extent, PlatformPlugin, TreeCloner, machine  # noqa: F401  (re-exported: part of this package's API)


class Platform(NamedTuple):
    """The platform facts the rest of the package relies on."""

    #: "linux", "darwin", "windows" or "other".
    name: str
    #: Registered with pluggy as the plugin named "platform"; implements
    #: ``holoclone_clone_backend`` and ``holoclone_filesystem_name``.  None where
    #: there is no clone backend.
    plugin: PlatformPlugin | None
    #: ``extents(path)``: every extent of a file; None where the platform cannot tell.
    extents: Optional[Callable[[str], list]]
    #: ``pid_alive(pid)``: is a process with this pid running.
    pid_alive: Callable[[int], bool]
    #: ``make_durable(directory, paths)``: after it returns, ``paths`` (all under
    #: ``directory``) are on stable storage and safe to clone.  A vanished path is
    #: skipped; a real I/O error raises OSError.
    make_durable: Callable[[str, Sequence[str]], None]
    #: A native copy with the LinkFunction contract, or None.
    copy: Optional[Callable[[str, str, Optional[int], int, Optional[int]], None]]
    #: Whole trees cloned in one call (templates): btrfs snapshots on Linux (its calls raise
    #: Unsupported on other filesystems), clonefile of a directory on macOS; None elsewhere.
    tree: Optional[TreeCloner] = None
    #: Whether linking may fork worker processes (``materialize/workers.py``): measured faster than threads on
    #: Linux; macOS system libraries are not fork-safe, and Windows cannot fork.
    forks_workers: bool = False


def _platform_name() -> str:
    if sys.platform.startswith("linux"):
        return "linux"
    if sys.platform == "darwin":
        return "darwin"
    if sys.platform == "win32":
        return "windows"
    return "other"


@functools.lru_cache(maxsize=None)
def current() -> Platform:
    """This process's :class:`Platform`, computed once.

    Call it first on the main thread, before worker threads start: on macOS
    and Windows it reads the process umask, which can only be read by
    setting it.
    """
    name = _platform_name()
    if name == "linux":
        from . import btrfs, linux

        return Platform(name, linux.PLUGIN, linux.extents, _posix_pid_alive(), linux.make_durable, None,
                        btrfs.TREE, forks_workers=True)
    if name == "darwin":
        from . import base, darwin

        base.process_umask()
        return Platform(name, darwin.PLUGIN, None, base.posix_pid_alive, base.fsync_each, None, darwin.TREE)
    if name == "windows":
        from . import base, windows

        base.process_umask()
        return Platform(name, windows.PLUGIN, None, windows.pid_alive, windows.make_durable,
                        windows.copy_function(), None)
    from . import base

    return Platform(name, None, None, _posix_pid_alive(), base.fsync_each, None, None)


def _posix_pid_alive() -> Callable[[int], bool]:
    from . import base

    if os.name == "posix":
        return base.posix_pid_alive
    return base.unknown_pid_alive


def is_subvolume(path: str) -> bool:
    """Whether ``path`` (not followed if a symlink) is a btrfs subvolume root: a btrfs template or clone."""
    if _platform_name() != "linux":
        return False
    from . import btrfs

    return btrfs.is_subvolume(path)

