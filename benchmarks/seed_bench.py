"""Seeding benchmark: holoclone against virtualenv's own seeders, in one run, on one filesystem.

Compares whole ``virtualenv`` processes, each alone and followed by the new
environment's first ``pip --version``:

* ``virtualenv --seeder holoclone ENV``
* ``virtualenv ENV`` (default app-data seeder, copy mode)
* ``virtualenv --symlink-app-data ENV``
* ``virtualenv --no-seed ENV`` (the floor: no seeding at all)

Runs are interleaved round-robin so machine noise hits every command alike;
each run starts from a removed environment (removal is not timed), with warm
caches (one untimed warm-up per command). Prints medians and ratios.

Usage (as root, to let it make an XFS loop mount)::

    python benchmarks/seed_bench.py --mount --runs 15

or on a directory that is already on XFS (reflink=1)::

    python benchmarks/seed_bench.py --dir /path/on/xfs --runs 15

``PYTHONDONTWRITEBYTECODE`` is removed from the environment by default, as on
most users' machines (so an environment without shipped bytecode compiles and
writes it on its first run); ``--keep-env`` keeps the caller's environment.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from xfsmount import temporary_xfs

COMMANDS = {
    "holoclone": ["--seeder", "holoclone"],
    "default": [],
    "symlink-app-data": ["--symlink-app-data"],
    "no-seed": ["--no-seed"],
}


def measure(base: Path, args: argparse.Namespace) -> None:
    """Time every command in ``base`` (a directory on the filesystem under test) and print the figures."""
    env = dict(os.environ)
    if not args.keep_env:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["VIRTUALENV_HOLOCLONE_STORE"] = str(base / "store")
    env.pop("VIRTUALENV_SEEDER", None)
    venv = [sys.executable, "-m", "virtualenv", "-q"]
    results: dict[str, list[float]] = {f"{n}{s}": [] for n in COMMANDS for s in ("", " + pip")}
    target = base / "env"

    def one(name: str, with_pip: bool) -> float:
        shutil.rmtree(target, ignore_errors=True)
        subprocess.run(["sync"], check=False)
        start = time.perf_counter()
        subprocess.run([*venv, *COMMANDS[name], str(target)], check=True, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if with_pip:
            subprocess.run([str(target / "bin" / "pip"), "--version"], check=True, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - start

    plan = [(n, p) for n in COMMANDS for p in (False, True) if not (p and n == "no-seed")]
    for name, with_pip in plan:  # warm-up: fills the store and virtualenv's app-data
        one(name, with_pip)
    for _ in range(args.runs):
        for name, with_pip in plan:
            results[f"{name}{' + pip' if with_pip else ''}"].append(one(name, with_pip))
    shutil.rmtree(target, ignore_errors=True)

    medians = {k: statistics.median(v) for k, v in results.items() if v}
    print(f"{'command':34} {'median':>9} {'min':>9} {'max':>9}   ({args.runs} runs each, interleaved)")
    for key, values in results.items():
        if values:
            print(f"virtualenv {key:23} {medians[key]*1000:8.0f}ms {min(values)*1000:8.0f}ms {max(values)*1000:8.0f}ms")
    print()
    print(f"holoclone + pip / default + pip : {medians['holoclone + pip'] / medians['default + pip']:.2f}x   (target <= 0.70x)")
    print(f"holoclone / no-seed             : {medians['holoclone'] / medians['no-seed']:.2f}x   (target <= 1.15x)")
    print(f"holoclone / default             : {medians['holoclone'] / medians['default']:.2f}x")
    print(f"holoclone / symlink-app-data    : {medians['holoclone'] / medians['symlink-app-data']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"runs": results, "medians": medians}, indent=2))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--dir", type=Path, help="a directory on a reflink-capable filesystem")
    where.add_argument("--mount", action="store_true", help="make and mount a temporary XFS (root)")
    parser.add_argument("--runs", type=int, default=15, help="timed runs per command (default 15)")
    parser.add_argument("--keep-env", action="store_true", help="keep PYTHONDONTWRITEBYTECODE if set")
    parser.add_argument("--json", type=Path, help="also write the raw timings here")
    args = parser.parse_args()
    if args.mount:
        with temporary_xfs(1024) as base:
            measure(base, args)
        return 0
    base = Path(tempfile.mkdtemp(prefix="holoclone-bench-", dir=args.dir))
    try:
        measure(base, args)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
