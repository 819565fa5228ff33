"""The resolution document: a dependency set resolved to wheels, as the store keeps it (``resolutions/``).

``{"format": 1, "requirements": [...], "specs": [...], "wheels": [[file name, sha256], ...],
"serial": ns}``.  ``serial`` is when it was resolved (nanoseconds since the epoch); it is signed
with the rest when a resolution is pushed, and orders the resolutions of one key: a pull refuses
one older than the store has seen, a push replaces only an older one (docs/fleet.md).

This module is the one parser of the format: the seeding's cache of resolutions and the remote
store's pulls read a document through :func:`resolution_wheels`.
"""

from __future__ import annotations

import time
from typing import Iterable, Sequence

from .catalog import is_sha256

FORMAT = 1


class UnsafeWheel(ValueError):
    """A resolution names a wheel by a name that could leave the store's ``wheels/`` folder."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unsafe wheel {name[:80]!r}")
        self.name = name


def resolution_document(requirements: Sequence[str], specs: Sequence[str], wheels: Iterable[tuple[str, str]],
                        serial: int | None = None) -> dict:
    """A new resolution document for ``wheels`` (``(file name, sha256)``), resolved now unless ``serial``."""
    return {
        "format": FORMAT,
        "requirements": list(requirements),
        "specs": list(specs),
        "wheels": [[name, digest] for name, digest in wheels],
        "serial": time.time_ns() if serial is None else serial,
    }


def resolution_wheels(document: object) -> list[tuple[str, str]]:
    """``[(wheel file name, sha256)]`` of a resolution document, each checked.

    Raises :class:`UnsafeWheel` for a name that is not a plain ``.whl`` file name (a path, a hidden
    file) and ``ValueError`` for anything else that is not a resolution of this format.
    """
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    if document.get("format") != FORMAT:
        raise ValueError(f"format {document.get('format')!r}")
    try:
        wheels = [(str(name), str(digest)) for name, digest in document["wheels"]]
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(str(error) or type(error).__name__) from None
    for name, digest in wheels:
        if not is_sha256(digest) or not name.endswith(".whl") or "/" in name or "\\" in name or name.startswith("."):
            raise UnsafeWheel(name)
    return wheels


def resolution_serial(document: object) -> int:
    """A resolution's ``serial``; 0 for one without (or for what is not a resolution)."""
    found = document.get("serial", 0) if isinstance(document, dict) else 0
    return found if type(found) is int and found >= 0 else 0
