"""The environment being seeded, as plain values: what a seeding run needs from virtualenv.

The seeder (the only module that talks to virtualenv's creator) fills these
in; everything below it works on them alone.
"""

from __future__ import annotations

import os
import sys
from typing import NamedTuple
from pathlib import Path


class Interpreter(NamedTuple):
    """The interpreter an environment runs, as far as bytecode, scripts and resolving care."""

    executable: str
    implementation: str  # "CPython", "PyPy"
    version: tuple[int, int]
    #: What decides a dependency resolution besides the requirements (see dependencies.py).
    release: tuple[int, ...] = ()
    platform: str = ""
    architecture: int = 0
    markers: tuple[tuple[str, str], ...] = ()

    @property
    def tag(self) -> str:
        """Catalog tag: bytecode differs per implementation and minor version."""
        return f"{self.implementation.lower()}-{self.version[0]}{self.version[1]}"

    @property
    def is_running(self) -> bool:
        """True when this process can compile for it (same magic number)."""
        return (self.implementation.lower(), self.version) == (sys.implementation.name, sys.version_info[:2])


class Layout(NamedTuple):
    """Where an environment keeps each install scheme."""

    purelib: str
    platlib: str
    scripts: str
    data: str
    include: str  # headers go to <include>/<distribution name>
    executable: str

    def scheme_dirs(self, distribution: str) -> dict[str, str]:
        """Directory of each install scheme for ``distribution`` (headers are per distribution)."""
        return {
            "purelib": self.purelib,
            "platlib": self.platlib,
            "scripts": self.scripts,
            "data": self.data,
            "headers": os.path.join(self.include, distribution),
        }


class WheelRef(NamedTuple):
    """A wheel a seeding installs: its file name, its sha256 when known, and its file when it is on disk.

    A wheel of a resolution pulled from a remote store may be known by name and digest only: its
    catalog is in the store, its file never was.
    """

    name: str
    digest: str | None = None
    path: Path | None = None

    @classmethod
    def on_disk(cls, path: Path) -> WheelRef:
        """A wheel file (its digest is the store's to tell, from its index)."""
        return cls(path.name, None, path)


class SeedRequest(NamedTuple):
    """One seeding: which environment, which wheels, and how virtualenv finds more."""

    env_dir: str
    interpreter: Interpreter
    layout: Layout
    seed_wheels: tuple[Path, ...]
    #: Distributions the seed installs itself (pip, setuptools): never taken from a resolution.
    seed_distributions: tuple[str, ...] = ()
    search_dirs: tuple[Path, ...] = ()
    download: bool = False
    #: virtualenv's embedded pip wheel, run by the target interpreter to resolve requirements
    #: (looked up only for a seeding that resolves some).
    pip_wheel: Path | None = None
    #: ``(name, value, distribution)`` of holoclone's plugins as virtualenv found them; None: not known.
    plugin_entry_points: tuple[tuple[str, str, str], ...] | None = None
