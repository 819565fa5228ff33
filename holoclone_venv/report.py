"""What a run did, for the one-line summary, the fallback explanation and observer plugins."""

from __future__ import annotations

import errno


class Fallback:
    """Why a method was given up for a (store, target) pair, and for how many files.

    A plain class, not a dataclass: generating one costs every seeding import time (docs/benchmarks.md).
    """

    __slots__ = ("method", "to", "reason", "errno", "source_dir", "target_dir", "files")

    def __init__(self, method: str, to: str, reason: str, errno: int | None, source_dir: str, target_dir: str,
                 files: int = 0) -> None:
        self.method, self.to, self.reason, self.errno = method, to, reason, errno
        self.source_dir, self.target_dir, self.files = source_dir, target_dir, files

    def fields(self) -> tuple:
        """The constructor's arguments, in order."""
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return self.fields() == other.fields() if isinstance(other, Fallback) else NotImplemented

    def __repr__(self) -> str:
        return "Fallback(" + ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__) + ")"


class Report:
    """Counts per method, bytes, fallbacks with reasons, and time of one seeding run.

    ``packages`` ("pip 26.3"), ``catalogs``, ``imported`` (wheels this run
    imported into the store), ``counts`` per method, ``generated`` (files written
    per environment: scripts, RECORD, INSTALLER, shebang rewrites), ``bytes``,
    ``seconds``, ``fallbacks``, ``filesystems`` (directory -> filesystem name) and
    ``remote`` (why a configured remote store was not used, '' when it was or none is set).
    A plain class, not a dataclass: generating one costs every seeding import time (docs/benchmarks.md).
    """

    def __init__(self, store: str, strategy: str, packages: list[str] | None = None,
                 catalogs: list[str] | None = None, imported: list[str] | None = None,
                 counts: dict[str, int] | None = None, generated: int = 0, bytes: int = 0, seconds: float = 0.0,
                 fallbacks: list[Fallback] | None = None, filesystems: dict[str, str] | None = None,
                 remote: str = "") -> None:
        self.store = store
        self.strategy = strategy
        self.packages = [] if packages is None else packages
        self.catalogs = [] if catalogs is None else catalogs
        self.imported = [] if imported is None else imported
        self.counts = {"reflinked": 0, "hardlinked": 0, "copied": 0} if counts is None else counts
        self.generated = generated
        self.bytes = bytes
        self.seconds = seconds
        self.fallbacks = [] if fallbacks is None else fallbacks
        self.filesystems = {} if filesystems is None else filesystems
        self.remote = remote

    def __repr__(self) -> str:
        return f"Report({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"

    @property
    def files(self) -> int:
        return sum(self.counts.values()) + self.generated

    def summary(self) -> str:
        """One line, e.g. ``seeded pip 26.3: 880 files (880 reflinked, ...) in 38 ms from STORE``."""
        parts = ", ".join(f"{n:,} {k}" for k, n in self.counts.items())
        cannot = sorted({self.filesystems.get(fb.target_dir, "?") for fb in self.fallbacks if not _actionable(fb)})
        return (
            f"seeded {', '.join(self.packages) or 'nothing'}: {self.files:,} files ({parts}, "
            f"{self.generated:,} written per env) in {self.seconds * 1000:.0f} ms from {self.store}"
            + (f" (imported {wheels_in_brief(self.imported)})" if self.imported else "")
            # Why nothing was reflinked, in a few words at default verbosity; -v prints the whole line.
            + (f"; {' and '.join(cannot)} cannot clone files, so none were reflinked" if cannot else "")
            + (f"; {self.remote}" if self.remote else "")
        )

    def fallback_lines(self) -> list[tuple[bool, str]]:
        """``(actionable, line)`` per fallback: the real reason, what was used instead, what to do.

        The words depend only on the method, the filesystems and the reason,
        never on which file met the fallback first, so every run on the same
        pair of filesystems says the same.  ``actionable`` is True when the
        user can change something for this environment (the store sits on
        another filesystem, a permission); a filesystem that cannot clone at
        all is not news on every run.
        """
        lines = []
        for fb in self.fallbacks:
            src_fs = self.filesystems.get(fb.source_dir, "?")
            dst_fs = self.filesystems.get(fb.target_dir, "?")
            instead = {"hardlink": "hardlinked (bytecode and excluded files copied)", "reflink": "reflinked",
                       "copy": "copied", "per-file": "placed file by file"}.get(fb.to, f"placed with {fb.to}")
            actionable = _actionable(fb)
            if fb.method == "snapshot":
                advice = ("snapshots need the store and the environment on one btrfs filesystem, and a new "
                          "environment; 'holoclone doctor DIR' says what this one can do")
            elif fb.errno == errno.EXDEV:
                advice = _across_mounts(fb.source_dir, fb.target_dir)
            elif not actionable:
                advice = f"{dst_fs} cannot clone files; for reflinks keep the store and environments on XFS (reflink=1) or btrfs"
            else:
                advice = "check the filesystem and the permissions of the store and the environment"
            lines.append((actionable,
                          f"holoclone: {fb.method} is not available for {fb.target_dir} ({fb.reason}; store on {src_fs}, "
                          f"env on {dst_fs}), so files were {instead}; {advice}"))
        return lines


#: The filesystem itself cannot clone (not a property of this one file or of permissions).
_CANNOT_CLONE = frozenset(
    getattr(errno, name) for name in ("EOPNOTSUPP", "ENOTSUP", "ENOTTY", "ENOSYS", "EINVAL") if hasattr(errno, name)
) | {None}


def _actionable(fb: Fallback) -> bool:
    """False only for a filesystem that cannot clone at all: nothing the user changes for this environment."""
    return not (fb.method == "reflink" and fb.errno in _CANNOT_CLONE)


def wheels_in_brief(names: list[str]) -> str:
    """``pip 26.3, setuptools 80.9.0`` for a few wheel file names, a count for many."""
    if len(names) > 3:
        return f"{len(names)} wheels"
    return ", ".join(" ".join(name.split("-")[:2]) for name in names)


def _across_mounts(store_dir: str, env_dir: str) -> str:
    """Why links cannot cross from the store to the environment (EXDEV), and what to do.

    Linux refuses links between two mounts even of one filesystem, so a bind mount (often a
    read-only one, of a shared store) is named as such, not as another filesystem.
    """
    import os

    keep = "(--holoclone-store or VIRTUALENV_HOLOCLONE_STORE)"
    try:
        same_device = os.stat(store_dir).st_dev == os.stat(env_dir).st_dev
        statvfs = getattr(os, "statvfs", None)  # POSIX only; elsewhere a mount's flags are not asked
        read_only = bool(statvfs and statvfs(store_dir).f_flag & getattr(os, "ST_RDONLY", 1))
    except OSError:
        same_device, read_only = False, False
    if read_only:
        return (f"the store is on a read-only mount, and links cannot cross mounts; for links, use a writable store "
                f"under the environments' mount {keep}")
    if same_device:
        return ("the store and the environment are on different mounts of one filesystem (a bind mount); "
                f"keep them under one {keep}")
    return f"the store and the environment are on different filesystems; keep them on one {keep}"
