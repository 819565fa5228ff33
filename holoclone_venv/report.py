"""What a run did, for the one-line summary, the fallback explanation and observer plugins."""

from __future__ import annotations

from dataclasses import dataclass, field

from .strategies import Fallback


@dataclass
class Report:
    """Counts per method, bytes, fallbacks with reasons, and time of one seeding run."""

    store: str
    strategy: str
    packages: list[str] = field(default_factory=list)  # "pip 26.3"
    catalogs: list[str] = field(default_factory=list)
    imported: list[str] = field(default_factory=list)  # wheels imported into the store by this run
    counts: dict[str, int] = field(default_factory=lambda: {"reflinked": 0, "hardlinked": 0, "copied": 0})
    generated: int = 0  # files written per environment (scripts, RECORD, INSTALLER, shebang rewrites)
    bytes: int = 0
    seconds: float = 0.0
    fallbacks: list[Fallback] = field(default_factory=list)
    filesystems: dict[str, str] = field(default_factory=dict)  # directory -> filesystem name

    @property
    def files(self) -> int:
        return sum(self.counts.values()) + self.generated

    def summary(self) -> str:
        """One line, e.g. ``holoclone: seeded pip 26.3: 880 files (880 reflinked, ...) in 38 ms from STORE``."""
        parts = ", ".join(f"{n:,} {k}" for k, n in self.counts.items())
        return (
            f"holoclone: seeded {', '.join(self.packages) or 'nothing'}: {self.files:,} files ({parts}, "
            f"{self.generated:,} written per env) in {self.seconds * 1000:.0f} ms from {self.store}"
            + (f" (imported {', '.join(self.imported)})" if self.imported else "")
        )

    def fallback_lines(self) -> list[str]:
        """One line per fallback with the real reason and what to do about it."""
        lines = []
        for fb in self.fallbacks:
            src_fs = self.filesystems.get(fb.source_dir, "?")
            dst_fs = self.filesystems.get(fb.target_dir, "?")
            advice = (
                "the store and the environment are on different filesystems; keep them on one "
                "(--holoclone-store or VIRTUALENV_HOLOCLONE_STORE)"
                if src_fs != dst_fs
                else f"{dst_fs} cannot {fb.method} here; use XFS (reflink=1), btrfs or another cloning filesystem "
                "for the store and environments"
                if fb.method == "reflink"
                else "check the filesystem and permissions"
            )
            lines.append(
                f"holoclone: fell back from {fb.method} to {fb.to} in {fb.target_dir}: {fb.reason} "
                f"(store on {src_fs}, env on {dst_fs}); {advice}"
            )
        return lines
