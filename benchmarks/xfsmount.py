"""Temporary loop-mounted XFS (reflink=1) and btrfs filesystems for the benchmarks; need root and the mkfs tools."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator


#: mkfs command per filesystem the benchmarks mount.  btrfs: single device, ``-m single`` so
#: metadata is not duplicated (as a one-disk user would typically have on an SSD).
_MKFS = {
    "xfs": ["mkfs.xfs", "-q", "-m", "reflink=1"],
    "btrfs": ["mkfs.btrfs", "-q", "-f", "-m", "single", "-d", "single"],
}


@contextlib.contextmanager
def temporary_fs(kind: str, size_mb: int, prefix: str = "holoclone-bench-") -> Iterator[Path]:
    """Yield the mountpoint of a fresh loop-mounted ``kind`` (``"xfs"`` with reflinks, or ``"btrfs"``);
    unmount and delete it afterwards.

    The sparse image lives under ``$BENCH_IMAGE_DIR`` (default ``/var/tmp``): on
    disk, not in a tmpfs, so its size costs nothing until used.  Needs root and
    the filesystem's mkfs tool.
    """
    base = Path(tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("BENCH_IMAGE_DIR", "/var/tmp")))
    image = base / f"{kind}.img"
    mountpoint = base / "mnt"
    mountpoint.mkdir()
    try:
        with open(image, "wb") as handle:
            handle.truncate(size_mb << 20)
        subprocess.run([*_MKFS[kind], str(image)], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["mount", "-o", "loop", str(image), str(mountpoint)], check=True)
        try:
            yield mountpoint
        finally:
            subprocess.run(["umount", str(mountpoint)], check=False)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def temporary_xfs(size_mb: int, prefix: str = "holoclone-bench-"):
    """A fresh loop-mounted XFS with ``reflink=1`` (see :func:`temporary_fs`)."""
    return temporary_fs("xfs", size_mb, prefix)


def temporary_btrfs(size_mb: int, prefix: str = "holoclone-bench-"):
    """A fresh loop-mounted btrfs (see :func:`temporary_fs`)."""
    return temporary_fs("btrfs", size_mb, prefix)
