"""Inter-process locks on store files, which say what they wait for and never hang forever."""

from __future__ import annotations

import errno
import logging

from .errors import StoreError, StoreLockTimeout

LOG = logging.getLogger("holoclone")


class StoreLock:
    """An exclusive ``filelock`` on ``path``: reports a wait, turns a timeout into a clear error.

    ``what`` completes "waiting for ..." in messages.  Waiting longer than
    ``timeout`` seconds raises :class:`StoreLockTimeout`; a lock file that
    cannot be created on a read-only store raises :class:`StoreError`.
    """

    def __init__(self, path: str, what: str, timeout: float) -> None:
        from filelock import FileLock

        self._lock = FileLock(path)
        self.path = path
        self.what = what
        self.timeout = timeout

    def __enter__(self) -> StoreLock:
        from filelock import Timeout

        try:
            try:
                self._lock.acquire(timeout=0)
                return self
            except Timeout:
                pass
            # A warning, not info: virtualenv hides info by default, and a silent
            # wait of minutes looks like a hang.
            LOG.warning("holoclone: waiting for %s (lock %s)", self.what, self.path)
            self._lock.acquire(timeout=self.timeout)
        except Timeout:
            raise StoreLockTimeout(
                f"gave up after {self.timeout:g} s waiting for {self.what} (lock {self.path}).",
                "Another holoclone process holds it; if none runs, the filesystem may not support locks: "
                "raise --holoclone-lock-timeout or move the store to a local disk.",
            ) from None
        except OSError as error:
            if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise StoreError(
                    f"cannot take the lock {self.path}: {error.strerror}.",
                    "The store is read-only here; pass a writable --holoclone-store.",
                ) from None
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()
