"""Benchmark: a fresh environment with torch, numpy, pandas and scipy, three ways, on one XFS.

Compares, on one filesystem, in one run:

* ``virtualenv --seeder holoclone --holoclone-package ... --extra-search-dir WHEELS``
  (warm store: the set was imported once before timing),
* ``uv venv ENV && uv pip install --offline --no-index --find-links WHEELS --link-mode MODE``
  for MODE in clone, hardlink, copy, from a warm uv cache on the same filesystem,
* ``cp -r --reflink=always`` of the site-packages of an existing environment.

Each is repeated ``--repeat`` times (the environment is removed between runs);
medians and ratios to uv's clone mode are printed, and then the disk cost of
one more environment of each kind: the drop in free space (``os.statvfs``,
after ``sync``) against the environment's apparent size (``du --apparent-size``).

Usage (as root for ``--mount``, which makes and mounts a loop XFS itself)::

    python benchmarks/heavy_sets.py --mount --size-gb 16
    python benchmarks/heavy_sets.py --dir /some/xfs/dir [--wheels WHEELS]

Without ``--wheels`` the wheels are fetched once with ``pip download`` into the
benchmark directory, honouring the user's pip configuration.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from xfsmount import temporary_xfs

PACKAGES = ["torch==2.13.0", "numpy", "pandas", "scipy"]
UV_MODES = ("clone", "hardlink", "copy")
#: uv writes no bytecode by default; holoclone's envs ship it.  "clone+pyc" is uv
#: with --compile-bytecode: an env that, like holoclone's, imports without compiling.
UV_VARIANTS = {f"uv {mode}": (mode, False) for mode in UV_MODES} | {"uv clone+pyc": ("clone", True)}


def run(cmd: list[str], env: dict | None = None, quiet: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=quiet, text=True, env=env)
    if result.returncode:
        sys.exit(f"command failed ({result.returncode}): {' '.join(cmd)}\n{result.stdout}\n{result.stderr}")
    return result


def remove(path: Path) -> None:
    if path.exists():
        run(["rm", "-rf", str(path)])


def site_packages(env: Path) -> Path:
    return next((env / "lib").glob("python*/site-packages"))


def count_files(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


def apparent_size(path: Path) -> int:
    out = run(["du", "-s", "-b", "--apparent-size", str(path)]).stdout
    return int(out.split()[0])


def free_bytes(path: Path) -> int:
    os.sync()
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


class Bench:
    def __init__(self, root: Path, wheels: Path, repeat: int) -> None:
        self.root = root
        self.wheels = wheels
        self.repeat = repeat
        self.store = root / "holoclone-store"
        self.uv_cache = root / "uv-cache"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUALENV_", "RCC_HOLOTREE"))}
        self.env["UV_CACHE_DIR"] = str(self.uv_cache)
        self.seed_ms: list[float] = []

    # -- the ways to make an environment ----------------------------------------------------
    def holoclone(self, env: Path) -> None:
        cmd = [sys.executable, "-m", "virtualenv", "--seeder", "holoclone", "--holoclone-store", str(self.store),
               "--extra-search-dir", str(self.wheels)]
        for spec in PACKAGES:
            cmd += ["--holoclone-package", spec]
        out = run([*cmd, str(env)], env=self.env)
        match = re.search(r"files \(.*?\) in (\d+) ms", out.stdout + out.stderr)
        if match:
            self.seed_ms.append(float(match.group(1)))

    def uv(self, mode: str, bytecode: bool = False) -> Callable[[Path], None]:
        def make(env: Path) -> None:
            run(["uv", "venv", "-q", "--python", sys.executable, str(env)], env=self.env)
            run(["uv", "pip", "install", "-q", "--offline", "--no-index", "--find-links", str(self.wheels),
                 "--link-mode", mode, *(["--compile-bytecode"] if bytecode else []),
                 "--python", str(env / "bin" / "python"), *PACKAGES], env=self.env)
        return make

    def reflink_copy(self, reference: Path) -> Callable[[Path], None]:
        source = site_packages(reference)

        def make(env: Path) -> None:
            env.mkdir()
            run(["cp", "-r", "--reflink=always", str(source), str(env / "site-packages")])
        return make

    # -- measuring --------------------------------------------------------------------------
    def timed(self, name: str, make: Callable[[Path], None]) -> list[float]:
        times = []
        for i in range(self.repeat):
            env = self.root / f"env-{name}-{i}"
            remove(env)
            start = time.perf_counter()
            make(env)
            times.append(time.perf_counter() - start)
            remove(env)
        print(f"  {name:<14} median {statistics.median(times):7.3f} s   runs {' '.join(f'{t:.3f}' for t in times)}",
              flush=True)
        return times

    def disk_cost(self, name: str, make: Callable[[Path], None]) -> tuple[int, int]:
        env = self.root / f"cost-{name}"
        remove(env)
        before = free_bytes(self.root)
        make(env)
        after = free_bytes(self.root)
        size = apparent_size(env)
        remove(env)
        return before - after, size


def fetch_wheels(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    run([sys.executable, "-m", "pip", "download", "-q", "--only-binary", ":all:", "--dest", str(dest), *PACKAGES],
        quiet=False)



def measure(root: Path, args: argparse.Namespace) -> None:
    """Run every comparison under ``root`` and print the figures."""
    wheels = args.wheels.resolve() if args.wheels else root / "wheels"
    if not args.wheels:
        print(f"fetching wheels for {' '.join(PACKAGES)} into {wheels}", flush=True)
        fetch_wheels(wheels)
    bench = Bench(root, wheels, args.repeat)
    fs = run(["stat", "-f", "-c", "%T", str(root)]).stdout.strip()
    print(f"filesystem {fs} at {root}; {len(list(wheels.glob('*.whl')))} wheels; repeat {args.repeat}", flush=True)

    # Warm-up: the first holoclone run imports the set into the store, the first uv run fills its cache.
    reference = root / "reference"
    remove(reference)
    start = time.perf_counter()
    bench.holoclone(reference)
    print(f"holoclone first run (resolve + import into an empty store): {time.perf_counter() - start:.1f} s",
          flush=True)
    bench.seed_ms.clear()
    warm = root / "uv-warm"
    remove(warm)
    start = time.perf_counter()
    bench.uv("clone")(warm)
    print(f"uv first run (fill the cache): {time.perf_counter() - start:.1f} s", flush=True)
    for name, where in (("holoclone", reference), ("uv", warm)):
        site = site_packages(where)
        print(f"site-packages of one {name} environment: {count_files(site):,} files, "
              f"{apparent_size(site) / 1e6:,.0f} MB", flush=True)
    remove(warm)

    print("time to create one environment:", flush=True)
    results = {"holoclone": bench.timed("holoclone", bench.holoclone)}
    for name, (mode, bytecode) in UV_VARIANTS.items():
        results[name] = bench.timed(name, bench.uv(mode, bytecode))
    results["cp --reflink"] = bench.timed("cp --reflink", bench.reflink_copy(reference))
    if bench.seed_ms:
        print(f"  (holoclone's own seeding step, from its summary line: median {statistics.median(bench.seed_ms):.0f} ms)")

    base_time = statistics.median(results["uv clone"])
    print("medians and ratio to uv clone:")
    for name, times in results.items():
        print(f"  {name:<14} {statistics.median(times):7.3f} s   {statistics.median(times) / base_time:5.2f}x")
    ratio = statistics.median(results["holoclone"]) / base_time
    print(f"holoclone / uv clone = {ratio:.2f} (target <= 0.8): {'met' if ratio <= 0.8 else 'NOT met'}")
    with_pyc = statistics.median(results["holoclone"]) / statistics.median(results["uv clone+pyc"])
    print(f"holoclone / uv clone+pyc = {with_pyc:.2f} (both envs ship bytecode)")

    print("disk cost of one more environment (free-space drop / apparent size):")
    makers = {"holoclone": bench.holoclone, **{n: bench.uv(*v) for n, v in UV_VARIANTS.items()},
              "cp --reflink": bench.reflink_copy(reference)}
    for name, make in makers.items():
        used, size = bench.disk_cost(name, make)
        share = 100.0 * used / size if size else 0.0
        verdict = f"   (target <= 2%: {'met' if share <= 2 else 'NOT met'})" if name == "holoclone" else ""
        print(f"  {name:<14} {used / 1e6:9.1f} MB of {size / 1e6:8.1f} MB = {share:6.3f}%{verdict}", flush=True)

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--mount", action="store_true", help="make and loop-mount an XFS (root)")
    where.add_argument("--dir", type=Path, help="a directory on a reflink filesystem")
    parser.add_argument("--size-gb", type=int, default=16, help="size of the XFS made by --mount")
    parser.add_argument("--wheels", type=Path, help="folder with the wheels (default: pip download them)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    if args.mount:
        with temporary_xfs(args.size_gb << 10, prefix="heavy-sets-") as root:
            measure(root, args)
    else:
        root = args.dir.resolve()
        root.mkdir(parents=True, exist_ok=True)
        measure(root, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
