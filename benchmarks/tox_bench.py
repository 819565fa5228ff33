"""Benchmark: a realistic tox run with four environments, virtualenv's default seeder vs holoclone, on XFS.

The project is ``examples/sample-project`` with a generated tox.ini: envs
``py-a``, ``py-b``, ``py-c`` and ``py-d`` each install the project (built once
in tox's ``.pkg`` env) plus one small dependency from a local wheelhouse, then
run the project's tests.  Pip reads only the wheelhouse (``PIP_NO_INDEX``), so
the network adds no noise; the wheelhouse is filled once with ``pip download``
before timing.

Each seeder gets one untimed warm-up run (it fills virtualenv's app-data image
or holoclone's store, and pip's wheel cache), then ``--repeat`` timed runs,
the two seeders alternating, each run from a fresh ``.tox``.  Reported per
seeder: median wall time of the whole ``tox`` process, the ratio, and the disk
``.tox`` takes: apparent size (``du --apparent-size``), allocated size (``du``,
which counts a reflinked block in every file that shares it) and the real drop
in free space (``os.statvfs`` after ``sync``), which counts shared blocks once.

Usage (``--mount`` makes and loop-mounts an XFS with reflinks, as root)::

    python benchmarks/tox_bench.py --mount
    python benchmarks/tox_bench.py --dir /some/xfs/dir [--repeat 7] [--tox /path/to/tox]

tox and holoclone must be importable by the same Python (``pip install tox
holoclone-venv``); by default tox runs as ``<this python> -m tox``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from xfsmount import temporary_xfs

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "examples" / "sample-project"
ENVS = ("py-a", "py-b", "py-c", "py-d")
DEPENDENCY = "iniconfig"
SEEDERS = ("app-data", "holoclone")

TOX_INI = f"""\
[tox]
env_list = {", ".join(ENVS)}

[testenv]
deps = {DEPENDENCY}
commands =
    python -c "import iniconfig, sample; print(sample.greet('{{env_name}}'))"
    python -m unittest discover -s tests
"""


def run(cmd: list[str], env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    if result.returncode:
        sys.exit(f"command failed ({result.returncode}): {' '.join(cmd)}\n{result.stdout}\n{result.stderr}")
    return result


def filesystem_type(path: Path) -> str:
    return run(["stat", "-f", "-c", "%T", str(path)]).stdout.strip()


def du(path: Path, apparent: bool) -> int:
    cmd = ["du", "-s", "-B1", *(["--apparent-size"] if apparent else []), str(path)]
    return int(run(cmd).stdout.split()[0])


def free_bytes(path: Path) -> int:
    os.sync()
    stat = os.statvfs(path)
    return stat.f_bfree * stat.f_frsize


def prepare(root: Path) -> tuple[Path, Path]:
    """Copy the sample project with a 4-env tox.ini and fill the wheelhouse; returns (project, wheelhouse)."""
    project = root / "project"
    if project.exists():
        shutil.rmtree(project)
    shutil.copytree(SAMPLE, project, ignore=shutil.ignore_patterns(".tox", ".nox", "*.egg-info", "__pycache__"))
    (project / "tox.ini").write_text(TOX_INI)
    wheelhouse = root / "wheelhouse"
    wheelhouse.mkdir(exist_ok=True)
    # The build backend as well: the .pkg env installs it from the wheelhouse too.
    run([sys.executable, "-m", "pip", "download", "-q", "--only-binary", ":all:", "--dest", str(wheelhouse),
         DEPENDENCY, "setuptools>=61"])
    return project, wheelhouse


def tox_environ(seeder: str, store: Path, wheelhouse: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUALENV_", "TOX_", "PIP_", "RCC_HOLOTREE"))}
    env.update(VIRTUALENV_SEEDER=seeder, VIRTUALENV_HOLOCLONE_STORE=str(store),
               PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheelhouse), PIP_DISABLE_PIP_VERSION_CHECK="1")
    # The user's virtualenv.ini must not change what either seeder does.
    env["VIRTUALENV_CONFIG_FILE"] = os.devnull
    return env


def check_seeded_by(project: Path, seeder: str) -> None:
    """Stop unless every env of the run was (or was not) seeded by holoclone, as the seeder says."""
    for env in (*ENVS, ".pkg"):
        cfg = (project / ".tox" / env / "pyvenv.cfg").read_text()
        seeded = any(line.split("=")[0].strip() == "holoclone" for line in cfg.splitlines())
        if seeded != (seeder == "holoclone"):
            sys.exit(f"{env} was {'' if seeded else 'not '}seeded by holoclone in a {seeder} run")


def one_run(tox: list[str], project: Path, env: dict[str, str]) -> dict[str, float]:
    shutil.rmtree(project / ".tox", ignore_errors=True)
    before = free_bytes(project)
    start = time.perf_counter()
    run([*tox, "run", "-q"], env=env, cwd=project)
    wall = time.perf_counter() - start
    return {"wall": wall, "apparent": du(project / ".tox", True), "allocated": du(project / ".tox", False),
            "statvfs": before - free_bytes(project)}


def mib(value: float) -> str:
    return f"{value / (1 << 20):.1f} MiB"



def measure(root: Path, args: argparse.Namespace, tox: list[str]) -> None:
    """Time the tox runs under ``root`` and print the figures."""
    fs = filesystem_type(root)
    if fs != "xfs":
        print(f"warning: {root} is on {fs}, not xfs: holoclone falls back from reflinks", file=sys.stderr)
    project, wheelhouse = prepare(root)
    store = root / "holoclone-store"
    environs = {seeder: tox_environ(seeder, store, wheelhouse) for seeder in SEEDERS}
    for seeder in SEEDERS:  # warm-up, untimed
        one_run(tox, project, environs[seeder])
        check_seeded_by(project, seeder)
    results: dict[str, list[dict[str, float]]] = {seeder: [] for seeder in SEEDERS}
    for _ in range(args.repeat):
        for seeder in SEEDERS:
            results[seeder].append(one_run(tox, project, environs[seeder]))
            check_seeded_by(project, seeder)
    shutil.rmtree(project / ".tox", ignore_errors=True)

    print(f"tox run of {len(ENVS)} envs + .pkg on {fs} ({root}), {args.repeat} runs per seeder, medians:")
    print(f"{'seeder':<10} {'wall':>8} {'min':>8} {'max':>8} {'du --apparent':>14} {'du':>12} {'statvfs':>12}")
    medians = {}
    for seeder, runs in results.items():
        walls = [r["wall"] for r in runs]
        medians[seeder] = statistics.median(walls)
        print(f"{seeder:<10} {medians[seeder]:>7.2f}s {min(walls):>7.2f}s {max(walls):>7.2f}s "
              f"{mib(statistics.median(r['apparent'] for r in runs)):>14} "
              f"{mib(statistics.median(r['allocated'] for r in runs)):>12} "
              f"{mib(statistics.median(r['statvfs'] for r in runs)):>12}")
    print(f"holoclone / default wall: {medians['holoclone'] / medians['app-data']:.2f} "
          f"({medians['app-data'] - medians['holoclone']:+.2f} s per tox run)")
    default_disk = statistics.median(r["statvfs"] for r in results["app-data"])
    holo_disk = statistics.median(r["statvfs"] for r in results["holoclone"])
    print(f"holoclone / default new disk (statvfs): {holo_disk / default_disk:.2f}")

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--dir", type=Path, help="a directory on XFS (reflink=1) to work in")
    where.add_argument("--mount", action="store_true", help="make and loop-mount an XFS (root)")
    parser.add_argument("--size-mb", type=int, default=2048, help="size of the --mount image")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per seeder (at least 5)")
    parser.add_argument("--tox", help="tox executable (default: this Python's -m tox)")
    args = parser.parse_args()
    if args.repeat < 5:
        parser.error("--repeat must be at least 5")
    tox = [args.tox] if args.tox else [sys.executable, "-m", "tox"]

    if args.mount:
        with temporary_xfs(args.size_mb, prefix="tox-bench-") as root:
            measure(root, args, tox)
    else:
        root = args.dir.resolve()
        root.mkdir(parents=True, exist_ok=True)
        measure(root, args, tox)
    return 0


if __name__ == "__main__":
    sys.exit(main())
