"""Inter-process locks on store files, which say what they wait for and never hang forever."""

from __future__ import annotations

import errno
import logging
import os
import time
from typing import Callable

from ..errors import StoreError, StoreLockTimeout

try:  # a feature test: where fcntl exists, locks are taken on descriptors holoclone opened itself
    import fcntl
except ImportError:  # pragma: no cover - Windows, where filelock takes them
    fcntl = None  # type: ignore[assignment]

LOG = logging.getLogger("holoclone")

#: How often a waiting process tries the lock again (filelock's default too).
_POLL = 0.05


class StoreLock:
    """An exclusive lock on ``path``: reports a wait, turns a timeout into a clear error.

    ``what`` completes "waiting for ..." in messages.  Waiting longer than
    ``timeout`` seconds raises :class:`StoreLockTimeout`; a lock file that
    cannot be created on a read-only store raises :class:`StoreError`, and so
    does a lock file that is a symbolic link (it is never followed).

    With ``opener`` (which returns a descriptor of ``path`` opened without
    following a link and without truncating it) and ``fcntl``, the lock is a
    ``flock`` on that descriptor: the same lock ``filelock`` takes, so
    processes of either kind exclude each other.  Otherwise ``filelock`` takes it
    (a version that does not follow links where the interpreter has one).
    """

    def __init__(self, path: str, what: str, timeout: float, opener: Callable[[str], int] | None = None) -> None:
        self.path = path
        self.what = what
        self.timeout = timeout
        self._opener = opener if fcntl is not None else None
        self._fd: int | None = None
        if self._opener is None:
            from filelock import FileLock

            self._lock = FileLock(path)

    def __enter__(self) -> StoreLock:
        try:
            if self._try():
                return self
            # A warning, not info: virtualenv hides info by default, and a silent
            # wait of minutes looks like a hang.
            LOG.warning("holoclone: waiting for %s (lock %s)", self.what, self.path)
            if self._wait():
                return self
            raise StoreLockTimeout(
                f"gave up after {self.timeout:g} s waiting for {self.what} (lock {self.path}).",
                "Another holoclone process holds it; if none runs, the filesystem may not support locks: "
                "raise --holoclone-lock-timeout or move the store to a local disk.",
            )
        except OSError as error:
            if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise StoreError(
                    f"cannot take the lock {self.path}: {error.strerror}.",
                    "The store is read-only here; pass a writable --holoclone-store.",
                ) from None
            if error.errno == errno.ELOOP:
                raise StoreError(
                    f"the lock file {self.path} is a symbolic link, and holoclone never opens one through a link.",
                    "Remove it (holoclone makes it again) and check who else can write into the store.",
                ) from None
            raise

    def _try(self) -> bool:
        """Take the lock if it is free; False when another process holds it."""
        if self._opener is None:
            from filelock import Timeout

            try:
                self._lock.acquire(timeout=0)
                return True
            except Timeout:
                return False
        if self._fd is None:
            self._fd = self._opener(self.path)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        except BaseException:
            self._close()
            raise

    def _wait(self) -> bool:
        """Try again until ``timeout``; False when it passed with the lock still held elsewhere."""
        if self._opener is None:
            from filelock import Timeout

            try:
                self._lock.acquire(timeout=self.timeout)
                return True
            except Timeout:
                return False
        deadline = time.monotonic() + self.timeout
        while True:
            if self._try():
                return True
            if time.monotonic() >= deadline:
                self._close()
                return False
            time.sleep(_POLL)

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __exit__(self, *exc: object) -> None:
        if self._opener is None:
            self._lock.release()
            return
        # Closing the descriptor releases the flock; the file stays (removing it would let two
        # processes lock two different files of one name).
        self._close()
