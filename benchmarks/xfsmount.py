"""A temporary loop-mounted XFS (reflink=1) for the benchmarks; needs root and xfsprogs."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def temporary_xfs(size_mb: int, prefix: str = "holoclone-bench-") -> Iterator[Path]:
    """Yield the mountpoint of a fresh XFS with reflinks; unmount and delete it afterwards.

    The sparse image lives under ``$BENCH_IMAGE_DIR`` (default ``/var/tmp``): on
    disk, not in a tmpfs, so its size costs nothing until used.
    """
    base = Path(tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("BENCH_IMAGE_DIR", "/var/tmp")))
    image = base / "xfs.img"
    mountpoint = base / "mnt"
    mountpoint.mkdir()
    try:
        with open(image, "wb") as handle:
            handle.truncate(size_mb << 20)
        subprocess.run(["mkfs.xfs", "-q", "-m", "reflink=1", str(image)], check=True)
        subprocess.run(["mount", "-o", "loop", str(image), str(mountpoint)], check=True)
        try:
            yield mountpoint
        finally:
            subprocess.run(["umount", str(mountpoint)], check=False)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def temporary_btrfs(size_mb: int, prefix: str = "holoclone-bench-") -> Iterator[Path]:
    """Yield the mountpoint of a fresh loop-mounted btrfs; unmount and delete it afterwards.

    Same image location as :func:`temporary_xfs` (``$BENCH_IMAGE_DIR``, default ``/var/tmp``);
    single device, ``-m single`` so metadata is not duplicated (as a one-disk user would
    typically have on an SSD).  Needs root and btrfs-progs.
    """
    base = Path(tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("BENCH_IMAGE_DIR", "/var/tmp")))
    image = base / "btrfs.img"
    mountpoint = base / "mnt"
    mountpoint.mkdir()
    try:
        with open(image, "wb") as handle:
            handle.truncate(size_mb << 20)
        subprocess.run(["mkfs.btrfs", "-q", "-f", "-m", "single", "-d", "single", str(image)], check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run(["mount", "-o", "loop", str(image), str(mountpoint)], check=True)
        try:
            yield mountpoint
        finally:
            subprocess.run(["umount", str(mountpoint)], check=False)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def temporary_fs(kind: str, size_mb: int, prefix: str = "holoclone-bench-") -> Iterator[Path]:
    """``temporary_xfs`` or ``temporary_btrfs`` by name (``"xfs"`` or ``"btrfs"``)."""
    maker = {"xfs": temporary_xfs, "btrfs": temporary_btrfs}[kind]
    with maker(size_mb, prefix=prefix) as mountpoint:
        yield mountpoint
