"""Errors a user can see, each carrying what happened and what to do about it."""

from __future__ import annotations

import contextlib
import errno as _errno
from typing import Iterator

#: errno values meaning "this link method does not work between these two places",
#: not "something broke": the next method is tried.  EOPNOTSUPP/ENOTSUP (ext4, tmpfs,
#: overlayfs, not APFS), EXDEV (another filesystem), EINVAL (btrfs NOCOW, unaligned,
#: flags an old kernel does not know), ENOTTY (old kernel), EPERM/EACCES (immutable
#: files, SELinux, sandboxes; a copy then reports a real permission error itself),
#: ETXTBSY (swap file), EAGAIN (ZFS before its blocks are synced), ENOSYS (seccomp),
#: EMLINK (an inode at its link limit), EBADF.
UNSUPPORTED_ERRNOS = frozenset(
    getattr(_errno, name)
    for name in ("EOPNOTSUPP", "ENOTSUP", "EXDEV", "EINVAL", "ENOTTY", "EPERM", "EACCES", "ETXTBSY",
                 "EAGAIN", "ENOSYS", "EMLINK", "EBADF")
    if hasattr(_errno, name)
)


class HoloCloneError(Exception):
    """Base of every error holoclone reports to a user.

    ``str(error)`` is one sentence saying what happened; ``hint`` (optional)
    says what to do about it.  Callers show both and never a traceback.
    """

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip() if self.hint else self.message


class ConfigError(HoloCloneError):
    """A setting (strategy name, store path, pattern) is not valid."""


class WheelError(HoloCloneError):
    """A wheel is corrupt, hostile or not a wheel; nothing of it was stored."""


class StoreError(HoloCloneError):
    """The store is unusable: locked, read-only, foreign, of another layout, or damaged."""


class MalformedCatalog(StoreError):
    """A catalog file that is not a catalog (bad JSON, unsafe paths, wrong fields); nothing of it is used."""


class RemovedWhileSeeding(StoreError):
    """Something the seeding had found in the store (a catalog, an object) was removed before it was used:
    another process (a gc with no grace period, another tool) cleaned the store meanwhile."""


class RemoteError(HoloCloneError):
    """A remote store could not be used: unreachable, untrusted, refused, or its documents are not valid."""


class BundleError(HoloCloneError):
    """A bundle could not be made or imported; an import that fails writes nothing."""


class StoreLockTimeout(StoreError):
    """Waiting for a store lock took longer than the configured timeout."""


class DamagedObject(StoreError):
    """A store object a catalog names is missing or changed; found while linking it, so nothing was linked
    from it.  ``catalog_key`` is the catalog being materialized: its wheel is imported again."""

    def __init__(self, path: str, catalog_key: str = "") -> None:
        super().__init__(f"store object {path} is missing or was changed.", "It is imported again from its wheel.")
        self.path = path
        self.catalog_key = catalog_key


class StrictModeError(HoloCloneError):
    """``--holoclone-strict`` is on and a link method had to fall back."""


class MaterializeError(HoloCloneError):
    """Writing files into an environment failed (full disk, permissions, ...)."""


class SeedError(RuntimeError):
    """What virtualenv shows when seeding fails: its message is the user-facing sentence (virtualenv prints
    ``SeedError: <sentence>``, so it is not a :class:`HoloCloneError`, whose type name would mean nothing)."""


class Unsupported(Exception):
    """A link method cannot work between these two places; the next one should be tried.

    Raised by link methods and clone backends for "not supported here" errors
    (EOPNOTSUPP, EXDEV, EINVAL, ...).  ``errno`` is the system error number when
    there is one, ``reason`` a short human explanation.  Never shown as a crash:
    the materializer records it as the reason for a fallback.
    """

    def __init__(self, reason: str, errno: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.errno = errno


_FULL = frozenset(getattr(_errno, name) for name in ("ENOSPC", "EDQUOT") if hasattr(_errno, name))
_DENIED = frozenset((_errno.EACCES, _errno.EPERM))


def os_error(
    error: OSError, doing: str, *, disk: str = "", error_class: type[HoloCloneError] = HoloCloneError
) -> HoloCloneError:
    """One sentence for a failed file operation, with what to do about it.

    ``doing`` completes "while ...", e.g. ``"importing pip.whl; nothing partial was kept"``;
    ``disk`` names what the full disk holds (``"the store /x"``) when that helps.
    """
    where = f" ({error.filename})" if error.filename else ""
    if error.errno in _FULL:
        holding = f" holding {disk}" if disk else ""
        return error_class(f"the disk{holding} is full while {doing}.",
                           "Free some space (for the store, 'holoclone store gc' helps) and run again.")
    if error.errno == _errno.EROFS:
        return error_class(f"a read-only filesystem stopped {doing}{where}.",
                           "Use a writable location (for the store, --holoclone-store DIR).")
    if error.errno in _DENIED:
        return error_class(f"permission denied while {doing}{where}.",
                           "Check the permissions, or use a location you can write to.")
    return error_class(f"{error.strerror or error} while {doing}{where}.")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM (how tox, CI runners and service managers stop a process) stops the work
    as Ctrl-C does, so what catches KeyboardInterrupt cleans up what was half written.

    Only in the main thread, where Python delivers signals; the previous handler comes back after.
    """
    import signal
    import threading

    previous = None
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGTERM"):
        previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"stopped by signal {signum}")  # the words an interrupted run prints
