"""Bytes on disk: apparent size, and physical size with shared data counted once."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

from . import Progress


@dataclass
class Space:
    """Bytes on disk.  ``method`` says how they were counted: ``extents`` (shared data once) or ``blocks``."""

    apparent: int = 0
    physical: int = 0
    method: str = "extents"

    def as_dict(self) -> dict:
        return {"apparent": self.apparent, "physical": self.physical, "method": self.method}


def measure(paths: Iterable[str], exclusive: bool = False, progress: Progress | None = None,
            total: int = 0) -> Space:
    """Apparent and physical size of ``paths``, data shared between them counted once.

    Physical size comes from the files' extents (FIEMAP on Linux): extents at
    the same physical place are counted once.  Where extents are unavailable
    (tmpfs, other platforms) it falls back to allocated blocks, which count
    shared data once per file, and ``method`` says ``blocks``.

    With ``exclusive``, only what removing the files would free is counted:
    extents shared with anything (a reflinked environment) and files with more
    than one hardlink are left out.
    """
    from ...platforms import current

    extents = current().extents
    space = Space()
    ranges: list[tuple[int, int]] = []
    unlocated = 0
    done = 0
    for path in paths:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        space.apparent += st.st_size
        done += st.st_size
        if progress:
            progress(done, total)
        if exclusive and st.st_nlink > 1:
            continue
        found = None
        if extents is not None and st.st_size:
            try:
                found = extents(path)
            except OSError:
                found = None
        if found is None:
            if st.st_size:
                space.method = "blocks"
            unlocated += getattr(st, "st_blocks", (st.st_size + 4095) // 4096 * 8) * 512
            continue
        for extent in found:
            if exclusive and extent.shared:
                continue
            if extent.located:
                ranges.append((extent.physical, extent.physical + extent.length))
            else:
                unlocated += extent.length
    ranges.sort()
    end = -1
    for start, stop in ranges:
        if start >= end:
            space.physical += stop - start
            end = stop
        elif stop > end:
            space.physical += stop - end
            end = stop
    space.physical += unlocated
    return space
