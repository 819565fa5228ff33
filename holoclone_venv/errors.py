"""Errors a user can see, each carrying what happened and what to do about it."""

from __future__ import annotations


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


class StoreLockTimeout(StoreError):
    """Waiting for a store lock took longer than the configured timeout."""


class CorruptObjectError(StoreError):
    """A store object no longer matches the digest it is stored under."""


class StrictModeError(HoloCloneError):
    """``--holoclone-strict`` is on and a link method had to fall back."""


class MaterializeError(HoloCloneError):
    """Writing files into an environment failed (full disk, permissions, ...)."""


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
