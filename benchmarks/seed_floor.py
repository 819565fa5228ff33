"""Seeding pip + setuptools on XFS and btrfs, against the floors (A of "whole trees in one call").

Both filesystems are loop-mounted at once (XFS ``reflink=1`` and btrfs) and
every command below runs round-robin over both, so machine noise hits every
command alike; medians are printed.  Each run starts from a removed
environment and a ``sync``; neither is timed.  One untimed warm-up of every
command fills the holoclone store (one per filesystem), virtualenv's app-data
and the snapshot template.

Whole processes, per filesystem:

* ``virtualenv --no-seed ENV``
* ``virtualenv --seeder holoclone ENV`` (per file, strategy ``smart``)
* ``virtualenv --seeder holoclone --holoclone-strategy snapshot ENV`` (btrfs only; on XFS it falls back to smart)
* ``virtualenv ENV`` (default app-data seeder, copy) and ``virtualenv --symlink-app-data ENV``
* the seeded ones again followed by ``ENV/bin/pip --version``
* ``cp -r --reflink=always`` of a holoclone environment's site-packages (the same
  files, in one C process: the floor for the per-file path)

and in this process, a pure-Python floor: one thread, directory fds, and per file
``open``, ``open(O_CREAT|O_EXCL)``, ``ioctl(FICLONE)``, ``close``, ``close`` (plus the
``mkdir`` of every directory), over the same site-packages; a second variant also
sets the mtime of each ``.py`` (``os.utime`` on the fd), which holoclone must do so
that its shipped bytecode stays valid.

``PYTHONDONTWRITEBYTECODE`` is removed from the measured commands' environment
(as on most users' machines).

Usage (root)::

    python benchmarks/seed_floor.py --runs 9 [--json out.json] [--fs xfs btrfs]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from xfsmount import temporary_fs

FICLONE = 0x40049409

VENV = [sys.executable, "-m", "virtualenv"]
SEEDERS = {
    "no-seed": ["--no-seed"],
    "holoclone": ["--seeder", "holoclone"],
    "snapshot": ["--seeder", "holoclone", "--holoclone-strategy", "snapshot"],
    "default": [],
    "symlink-app-data": ["--symlink-app-data"],
}
WITH_PIP = ("holoclone", "snapshot", "default", "symlink-app-data")


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUALENV_", "RCC_HOLOTREE"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def clear(path: Path) -> None:
    if os.path.lexists(path):
        subprocess.run(["rm", "-rf", str(path)], check=True)
    os.sync()


def walk_tree(root: Path) -> tuple[list[str], list[str]]:
    """Directories (parents first) and files of ``root``, relative to it."""
    dirs, files = [], []
    for here, subdirs, names in os.walk(root):
        rel = os.path.relpath(here, root)
        subdirs.sort()
        for d in subdirs:
            dirs.append(os.path.normpath(os.path.join(rel, d)))
        for n in sorted(names):
            files.append(os.path.normpath(os.path.join(rel, n)))
    return dirs, files


def python_floor(src: Path, dst: Path, dirs: list[str], files: list[str], utime_py: bool) -> None:
    """Clone ``files`` from ``src`` into a new ``dst`` with one thread: the cost Python can reach."""
    os.mkdir(dst)
    src_fds = {".": os.open(src, os.O_RDONLY | os.O_DIRECTORY)}
    dst_fds = {".": os.open(dst, os.O_RDONLY | os.O_DIRECTORY)}
    try:
        for d in dirs:
            parent, name = os.path.split(d)
            parent = parent or "."
            os.mkdir(name, 0o755, dir_fd=dst_fds[parent])
            dst_fds[d] = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=dst_fds[parent])
            src_fds[d] = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=src_fds[parent])
        stamp = (1_000_000_000, 1_000_000_000)
        for f in files:
            parent, name = os.path.split(f)
            parent = parent or "."
            s = os.open(name, os.O_RDONLY, dir_fd=src_fds[parent])
            try:
                t = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=dst_fds[parent])
                try:
                    fcntl.ioctl(t, FICLONE, s)
                    if utime_py and name.endswith(".py"):
                        os.utime(t, stamp)
                finally:
                    os.close(t)
            finally:
                os.close(s)
    finally:
        for fd in (*src_fds.values(), *dst_fds.values()):
            os.close(fd)


class Filesystem:
    def __init__(self, kind: str, root: Path) -> None:
        self.kind = kind
        self.root = root
        self.env = base_env()
        self.env["VIRTUALENV_HOLOCLONE_STORE"] = str(root / "store")
        self.target = root / "env"
        self.reference = root / "reference"
        self.seed_ms: dict[str, list[float]] = {"holoclone": [], "snapshot": []}
        self.tree: tuple[list[str], list[str]] | None = None

    def commands(self) -> list[str]:
        names = ["no-seed", "holoclone", "default", "symlink-app-data"]
        if self.kind == "btrfs":
            names.insert(2, "snapshot")
        names += [f"{n} + pip" for n in WITH_PIP if n in names]
        return names + ["cp --reflink", "python loop", "python loop + utime"]

    def prepare(self) -> None:
        clear(self.reference)
        subprocess.run([*VENV, "-q", "--seeder", "holoclone", str(self.reference)], check=True, env=self.env)
        self.source = next((self.reference / "lib").glob("python*/site-packages"))
        self.tree = walk_tree(self.source)

    def one(self, name: str, record: bool = True) -> float:
        clear(self.target)
        seeder, _, pip = name.partition(" + ")
        if name == "cp --reflink":
            self.target.mkdir()
            start = time.perf_counter()
            subprocess.run(["cp", "-r", "--reflink=always", str(self.source), str(self.target / "sp")], check=True)
            return time.perf_counter() - start
        if name.startswith("python loop"):
            self.target.mkdir()
            start = time.perf_counter()
            python_floor(self.source, self.target / "sp", *self.tree, utime_py=name.endswith("utime"))
            return time.perf_counter() - start
        start = time.perf_counter()
        out = subprocess.run([*VENV, *SEEDERS[seeder], str(self.target)], check=True, env=self.env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout
        if pip:
            subprocess.run([str(self.target / "bin" / "pip"), "--version"], check=True, env=self.env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        elapsed = time.perf_counter() - start
        if seeder in self.seed_ms and not pip and record:
            match = re.search(r"in (\d+) ms from", out)
            if match:
                self.seed_ms[seeder].append(float(match.group(1)))
            if seeder == "snapshot" and "snapshotted" not in out:
                print(f"WARNING: snapshot did not snapshot on {self.kind}:\n{out}", file=sys.stderr)
        return elapsed


def report(fss: list[Filesystem], results: dict[tuple[str, str], list[float]], runs: int) -> dict:
    med = {k: statistics.median(v) for k, v in results.items()}
    summary: dict = {"medians_ms": {f"{fs}: {name}": v * 1000 for (fs, name), v in med.items()}, "ratios": {}}
    for fs in fss:
        k = fs.kind
        print(f"\n{k}: {len(fs.tree[1]):,} files, {len(fs.tree[0]):,} directories in a holoclone env's site-packages;"
              f" medians of {runs} interleaved runs")
        print(f"  {'command':38} {'median':>8} {'min':>8} {'max':>8}")
        for name in fs.commands():
            v = results[(k, name)]
            label = name if name in ("cp --reflink", "python loop", "python loop + utime") else f"virtualenv {name}"
            print(f"  {label:38} {statistics.median(v)*1000:6.0f}ms {min(v)*1000:6.0f}ms {max(v)*1000:6.0f}ms")
        for s, v in fs.seed_ms.items():
            if v:
                print(f"  (holoclone's own summary line, {s}: median {statistics.median(v):.0f} ms)")
        extra = med[(k, "holoclone")] - med[(k, "no-seed")]
        ratios = {
            "(holoclone - no-seed) / cp --reflink": (extra / med[(k, "cp --reflink")], 1.3 if k == "xfs" else None),
            "(holoclone - no-seed) / python loop": (extra / med[(k, "python loop")], None),
            "(holoclone - no-seed) / python loop + utime": (extra / med[(k, "python loop + utime")], None),
            "python loop / cp --reflink": (med[(k, "python loop")] / med[(k, "cp --reflink")], None),
            "holoclone + pip / default + pip": (med[(k, "holoclone + pip")] / med[(k, "default + pip")], 0.7),
            "holoclone / no-seed": (med[(k, "holoclone")] / med[(k, "no-seed")], None),
            "holoclone / default": (med[(k, "holoclone")] / med[(k, "default")], None),
            "holoclone / symlink-app-data": (med[(k, "holoclone")] / med[(k, "symlink-app-data")], None),
        }
        if k == "btrfs":
            ratios["snapshot / no-seed"] = (med[(k, "snapshot")] / med[(k, "no-seed")], 1.1)
            ratios["snapshot + pip / default + pip"] = (med[(k, "snapshot + pip")] / med[(k, "default + pip")], 0.7)
        for label, (value, target) in ratios.items():
            verdict = f"  (target <= {target}x: {'met' if value <= target else 'NOT met'})" if target else ""
            print(f"  {label:46} {value:5.2f}x{verdict}")
            summary["ratios"][f"{k}: {label}"] = value
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--fs", nargs="+", default=["xfs", "btrfs"], choices=["xfs", "btrfs"])
    parser.add_argument("--size-mb", type=int, default=2048)
    parser.add_argument("--json", type=Path, help="also write raw timings and medians here")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        fss = [Filesystem(k, stack.enter_context(temporary_fs(k, args.size_mb, prefix=f"seed-{k}-"))) for k in args.fs]
        for fs in fss:
            fs.prepare()
        plan = [(fs, name) for name in dict.fromkeys(n for fs in fss for n in fs.commands())
                for fs in fss if name in fs.commands()]
        for fs, name in plan:  # warm-up
            fs.one(name, record=False)
        results: dict[tuple[str, str], list[float]] = {(fs.kind, n): [] for fs, n in plan}
        for r in range(args.runs):
            for fs, name in plan:
                results[(fs.kind, name)].append(fs.one(name))
            print(f"round {r + 1}/{args.runs} done", file=sys.stderr, flush=True)
        for fs in fss:
            clear(fs.target)
        summary = report(fss, results, args.runs)
        if args.json:
            raw = {f"{k}: {n}": v for (k, n), v in results.items()}
            args.json.write_text(json.dumps({"runs": raw, **summary,
                                             "seed_ms": {fs.kind: fs.seed_ms for fs in fss}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
