"""Heavy set (torch 2.13 CPU, numpy, pandas, scipy) on XFS and btrfs: creation, first import, disk (B and C).

Both filesystems are loop-mounted at once; each has its own warm holoclone
store and warm uv cache.  Round-robin over both filesystems, every round
makes one fresh environment per method and filesystem:

* ``virtualenv --no-seed ENV`` (to subtract virtualenv's own cost)
* ``virtualenv --seeder holoclone --holoclone-store S --extra-search-dir WHEELS --holoclone-package SPEC ...``
  (per file, strategy ``smart``)
* the same with ``--holoclone-strategy snapshot`` (btrfs only)
* ``uv venv E && uv pip install --offline --no-index --find-links WHEELS --link-mode MODE SPEC ...``
  for MODE in clone, hardlink, copy
* ``cp -r --reflink=always`` of a holoclone environment's site-packages

For holoclone, snapshot and uv clone it then times, in the fresh environment,
``python -c "import torch, numpy, pandas, scipy"`` twice: the first import
(what a user waits for after creating the env: uv's env compiles bytecode
here, holoclone's ships it, and cloned files have their own page cache), and a
second one (everything warm).  CPU time (user+sys) and block reads of each
import process are recorded too.  No cache is dropped: a warm page cache is the
realistic case.  Removal of environments and ``sync`` are never timed.

Afterwards, once per method and filesystem: the disk cost of one more
environment (drop of free space after ``sync`` vs apparent size), and a
``python -X importtime`` first-vs-second import comparison in a fresh env.

Usage (root; WHEELS made with ``pip download -d WHEELS torch==2.13.0 numpy pandas scipy``)::

    python benchmarks/heavy_e2e.py --wheels WHEELS --rounds 4 [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from xfsmount import temporary_fs

PACKAGES = ["torch==2.13.0", "numpy", "pandas", "scipy"]
IMPORT = "import torch, numpy, pandas, scipy"
IMPORTED = ("holoclone", "snapshot", "uv clone")


def run(cmd: list[str], env: dict, capture: bool = True) -> str:
    result = subprocess.run(cmd, env=env, stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                            stderr=subprocess.STDOUT, text=True)
    if result.returncode:
        sys.exit(f"command failed ({result.returncode}): {' '.join(cmd)}\n{result.stdout}")
    return result.stdout or ""


def clear(path: Path) -> None:
    if os.path.lexists(path):
        subprocess.run(["rm", "-rf", str(path)], check=True)
    os.sync()


def free_bytes(path: Path) -> int:
    os.sync()
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def apparent_size(path: Path) -> int:
    return int(subprocess.run(["du", "-s", "-b", "--apparent-size", str(path)], capture_output=True,
                              text=True, check=True).stdout.split()[0])


def site_packages(env: Path) -> Path:
    return next((env / "lib").glob("python*/site-packages"))


def timed_child(cmd: list[str], env: dict) -> tuple[float, float, int, str]:
    """Wall seconds, child CPU seconds (user+sys), child block input operations, output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode:
        sys.exit(f"command failed ({result.returncode}): {' '.join(cmd)}\n{result.stdout}\n{result.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, after.ru_inblock - before.ru_inblock, result.stderr


class Filesystem:
    def __init__(self, kind: str, root: Path, wheels: Path) -> None:
        self.kind = kind
        self.root = root
        self.wheels = wheels
        self.store = root / "holoclone-store"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUALENV_", "RCC_HOLOTREE"))}
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.env["UV_CACHE_DIR"] = str(root / "uv-cache")
        self.env["UV_PYTHON_DOWNLOADS"] = "never"
        self.reference = root / "reference"
        self.seed_ms: dict[str, list[float]] = defaultdict(list)

    def methods(self) -> list[str]:
        names = ["no-seed", "holoclone", "uv clone", "uv hardlink", "uv copy", "cp --reflink"]
        if self.kind == "btrfs":
            names.insert(2, "snapshot")
        return names

    def make(self, name: str, env: Path) -> None:
        if name == "no-seed":
            run([sys.executable, "-m", "virtualenv", "--no-seed", str(env)], self.env, capture=False)
        elif name in ("holoclone", "snapshot"):
            cmd = [sys.executable, "-m", "virtualenv", "--seeder", "holoclone", "--holoclone-store", str(self.store),
                   "--extra-search-dir", str(self.wheels)]
            if name == "snapshot":
                cmd += ["--holoclone-strategy", "snapshot"]
            for spec in PACKAGES:
                cmd += ["--holoclone-package", spec]
            out = run([*cmd, str(env)], self.env)
            match = re.search(r"files \((.*?)\) in (\d+) ms", out)
            if match:
                self.seed_ms[name].append(float(match.group(2)))
                self.last_counts = match.group(1)
            if name == "snapshot" and "snapshotted" not in out:
                print(f"WARNING: no snapshot on {self.kind}:\n{out}", file=sys.stderr)
        elif name.startswith("uv "):
            mode = name.split()[1]
            run(["uv", "venv", "-q", "--python", sys.executable, str(env)], self.env, capture=False)
            run(["uv", "pip", "install", "-q", "--offline", "--no-index", "--find-links", str(self.wheels),
                 "--link-mode", mode, "--python", str(env / "bin" / "python"), *PACKAGES], self.env, capture=False)
        elif name == "cp --reflink":
            env.mkdir()
            subprocess.run(["cp", "-r", "--reflink=always", str(self.source), str(env / "site-packages")], check=True)
        else:
            raise ValueError(name)

    def warm_up(self) -> None:
        clear(self.reference)
        start = time.perf_counter()
        self.make("holoclone", self.reference)
        print(f"{self.kind}: holoclone first run (resolve + import into an empty store): "
              f"{time.perf_counter() - start:.1f} s", flush=True)
        self.source = site_packages(self.reference)
        self.seed_ms.clear()
        for name in self.methods():
            if name == "holoclone":
                continue
            env = self.root / "warm"
            clear(env)
            start = time.perf_counter()
            self.make(name, env)
            print(f"{self.kind}: warm-up {name}: {time.perf_counter() - start:.1f} s", flush=True)
            if name == "uv clone":
                files = sum(len(f) for _, _, f in os.walk(site_packages(env)))
                print(f"{self.kind}: uv env site-packages {files:,} files", flush=True)
            clear(env)
        files = sum(len(f) for _, _, f in os.walk(self.source))
        print(f"{self.kind}: holoclone env site-packages {files:,} files, {apparent_size(self.source) / 1e6:,.0f} MB",
              flush=True)
        self.seed_ms.clear()


def importtime_summary(stderr: str) -> tuple[float, dict[str, float]]:
    """Total import time (sum of self times, ms) and the self time per top-level package."""
    total = 0.0
    per_top: dict[str, float] = defaultdict(float)
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if not m:
            continue
        self_us = int(m.group(1))
        total += self_us
        per_top[m.group(4).split(".")[0]] += self_us
    return total / 1000, {k: v / 1000 for k, v in per_top.items()}


def btrfs_used(path: Path) -> int | None:
    """Bytes used on a btrfs (data + metadata + system, as ``btrfs filesystem usage -b`` counts them)."""
    os.sync()
    result = subprocess.run(["btrfs", "filesystem", "usage", "-b", str(path)], capture_output=True, text=True)
    match = re.search(r"^\s*Used:\s+(\d+)", result.stdout, re.M)
    return int(match.group(1)) if match else None


def disk_cost(fss: list[Filesystem]) -> dict:
    """The disk cost of one more environment per method: free-space drop (statvfs) and, on btrfs, the growth
    of ``btrfs filesystem usage`` Used (statvfs on btrfs hides metadata written into already allocated chunks)."""
    print("\nB. disk cost of one more environment (free-space drop after sync / apparent size)", flush=True)
    disk = {}
    for fs in fss:
        for name in fs.methods():
            if name == "no-seed":
                continue
            env = fs.root / "cost"
            clear(env)
            before, used_before = free_bytes(fs.root), btrfs_used(fs.root) if fs.kind == "btrfs" else None
            fs.make(name, env)
            after, used_after = free_bytes(fs.root), btrfs_used(fs.root) if fs.kind == "btrfs" else None
            size = apparent_size(env)
            clear(env)
            share = 100.0 * (before - after) / size
            line = f"  {fs.kind + ': ' + name:26} {(before - after) / 1e6:8.1f} MB of {size / 1e6:7.1f} MB = {share:6.3f}%"
            used = share
            if used_before is not None:
                grown = used_after - used_before
                used = 100.0 * grown / size
                line += f";  btrfs Used grew {grown / 1e6:7.1f} MB = {used:6.3f}%"
            if name == "snapshot":
                line += " (target <= 0.5%: " + ("met)" if max(share, used) <= 0.5 else "NOT met)")
            print(line, flush=True)
            disk[f"{fs.kind}: {name}"] = (before - after, size, used_after - used_before if used_before else None)
    return disk


def profile(fss: list[Filesystem]) -> None:
    """cProfile one per-file and one snapshot creation of the heavy set; print holoclone's top functions."""
    import pstats
    for fs in fss:
        for name in ("holoclone", "snapshot"):
            if name not in fs.methods():
                continue
            env, prof = fs.root / "prof", fs.root / f"{name}.prof"
            clear(env)
            cmd = [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "virtualenv", "--seeder", "holoclone",
                   "--holoclone-store", str(fs.store), "--extra-search-dir", str(fs.wheels)]
            if name == "snapshot":
                cmd += ["--holoclone-strategy", "snapshot"]
            for spec in PACKAGES:
                cmd += ["--holoclone-package", spec]
            start = time.perf_counter()
            run([*cmd, str(env)], fs.env)
            print(f"\n{fs.kind}: {name} under cProfile: {time.perf_counter() - start:.2f} s; top by cumulative time",
                  flush=True)
            clear(env)
            stats = pstats.Stats(str(prof))
            stats.sort_stats("cumulative").print_stats(r"holoclone_venv|\{built-in|\{method", 25)
            sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheels", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--fs", nargs="+", default=["xfs", "btrfs"], choices=["xfs", "btrfs"])
    parser.add_argument("--size-gb", type=int, default=16)
    parser.add_argument("--importtime-reps", type=int, default=2)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--disk-only", action="store_true",
                        help="skip the timed rounds and importtime; only disk cost (and --profile)")
    parser.add_argument("--profile", action="store_true",
                        help="also cProfile one holoclone and one snapshot creation (where their time goes)")
    args = parser.parse_args()
    wheels = args.wheels.resolve()
    data: dict = {"create": defaultdict(list), "import1": defaultdict(list), "import2": defaultdict(list),
                  "import1_cpu": defaultdict(list), "import2_cpu": defaultdict(list),
                  "import1_inblock": defaultdict(list), "import2_inblock": defaultdict(list)}
    with contextlib.ExitStack() as stack:
        fss = [Filesystem(k, stack.enter_context(temporary_fs(k, args.size_gb << 10, prefix=f"heavy-{k}-")), wheels)
               for k in args.fs]
        for fs in fss:
            fs.warm_up()
        names = list(dict.fromkeys(n for fs in fss for n in fs.methods()))
        plan = [(fs, n) for n in names for fs in fss if n in fs.methods()]
        for r in range(0 if args.disk_only else args.rounds):
            for fs, name in plan:
                key = f"{fs.kind}: {name}"
                env = fs.root / "env"
                clear(env)
                start = time.perf_counter()
                fs.make(name, env)
                data["create"][key].append(time.perf_counter() - start)
                if name in IMPORTED:
                    py = str(env / "bin" / "python")
                    for i in ("1", "2"):
                        wall, cpu, inblock, _ = timed_child([py, "-c", IMPORT], fs.env)
                        data[f"import{i}"][key].append(wall)
                        data[f"import{i}_cpu"][key].append(cpu)
                        data[f"import{i}_inblock"][key].append(inblock)
                clear(env)
            print(f"round {r + 1}/{args.rounds}: " + ", ".join(
                f"{k} {v[-1]:.2f}s" for k, v in data["create"].items()), flush=True)

        if args.profile:
            profile(fss)
        if args.disk_only:
            disk_cost(fss)
            return 0
        med = {part: {k: statistics.median(v) for k, v in d.items()} for part, d in data.items()}
        out: list[str] = []
        p = out.append
        p(f"\nB. create one fresh environment (medians of {args.rounds} interleaved rounds)")
        p(f"  {'fs: method':26} {'create':>8} {'min':>8} {'max':>8}")
        for k, v in data["create"].items():
            p(f"  {k:26} {statistics.median(v):7.2f}s {min(v):7.2f}s {max(v):7.2f}s")
        for fs in fss:
            for s, v in fs.seed_ms.items():
                p(f"  ({fs.kind}: {s}'s own summary line: median {statistics.median(v):.0f} ms)")
        p(f"\nC. end to end: create + first `{IMPORT}` (medians)")
        p(f"  {'fs: method':26} {'create':>8} {'import1':>8} {'sum':>8} {'import2':>8} "
          f"{'cpu1':>7} {'cpu2':>7} {'inblk1':>8} {'inblk2':>7}")
        e2e = {}
        for k in data["import1"]:
            total = statistics.median([c + i for c, i in zip(data["create"][k], data["import1"][k])])
            e2e[k] = total
            p(f"  {k:26} {med['create'][k]:7.2f}s {med['import1'][k]:7.2f}s {total:7.2f}s {med['import2'][k]:7.2f}s "
              f"{med['import1_cpu'][k]:6.2f}s {med['import2_cpu'][k]:6.2f}s {med['import1_inblock'][k]:8.0f} "
              f"{med['import2_inblock'][k]:7.0f}")
        c = med["create"]
        ratios: dict[str, tuple[float, float | None]] = {}
        for fs in fss:
            k = fs.kind
            ratios[f"{k}: holoclone / cp --reflink"] = (c[f"{k}: holoclone"] / c[f"{k}: cp --reflink"],
                                                        1.1 if k == "xfs" else None)
            ratios[f"{k}: (holoclone - no-seed) / cp --reflink"] = (
                (c[f"{k}: holoclone"] - c[f"{k}: no-seed"]) / c[f"{k}: cp --reflink"], None)
            for mode in ("clone", "hardlink", "copy"):
                ratios[f"{k}: holoclone / uv {mode}"] = (c[f"{k}: holoclone"] / c[f"{k}: uv {mode}"], None)
            ratios[f"{k}: e2e holoclone / uv clone"] = (e2e[f"{k}: holoclone"] / e2e[f"{k}: uv clone"],
                                                        0.6 if k == "xfs" else None)
            if k == "btrfs":
                ratios[f"{k}: snapshot / uv clone"] = (c[f"{k}: snapshot"] / c[f"{k}: uv clone"], 0.1)
                ratios[f"{k}: snapshot / no-seed"] = (c[f"{k}: snapshot"] / c[f"{k}: no-seed"], None)
                ratios[f"{k}: e2e snapshot / uv clone"] = (e2e[f"{k}: snapshot"] / e2e[f"{k}: uv clone"], 0.45)
        p("\nratios (create unless e2e = create + first import)")
        for label, (value, target) in ratios.items():
            verdict = f"  (target <= {target}x: {'met' if value <= target else 'NOT met'})" if target else ""
            p(f"  {label:44} {value:5.2f}x{verdict}")
        print("\n".join(out), flush=True)

        disk = disk_cost(fss)

        print(f"\nC. where the first import's time goes: python -X importtime -c '{IMPORT}', first vs second "
              f"in a fresh env (medians of {args.importtime_reps})", flush=True)
        itime: dict = defaultdict(lambda: defaultdict(list))
        for _ in range(args.importtime_reps):
            for fs, name in plan:
                if name not in IMPORTED:
                    continue
                key = f"{fs.kind}: {name}"
                env = fs.root / "itime"
                clear(env)
                fs.make(name, env)
                for i in ("1", "2"):
                    wall, cpu, inblock, err = timed_child([str(env / "bin" / "python"), "-X", "importtime", "-c", IMPORT],
                                                          fs.env)
                    total, per_top = importtime_summary(err)
                    itime[key][f"wall{i}"].append(wall)
                    itime[key][f"cpu{i}"].append(cpu)
                    itime[key][f"total{i}"].append(total)
                    for top, ms in per_top.items():
                        itime[key][f"{top}{i}"].append(ms)
                clear(env)
        tops = ("torch", "numpy", "pandas", "scipy", "sympy", "other")
        print(f"  {'fs: method':26} {'':7} {'wall':>7} {'cpu':>7} {'imports':>8} " + " ".join(f"{t:>7}" for t in tops))
        summary_itime = {}
        for key, d in itime.items():
            for i in ("1", "2"):
                row = {m: statistics.median(d[f"{m}{i}"]) for m in ("wall", "cpu", "total")}
                known = {t: statistics.median(d[f"{t}{i}"]) if d.get(f"{t}{i}") else 0.0 for t in tops[:-1]}
                known["other"] = row["total"] - sum(known.values())
                summary_itime[f"{key} import{i}"] = {**row, **known}
                print(f"  {key:26} {'first' if i == '1' else 'second':7} {row['wall']:6.2f}s {row['cpu']:6.2f}s "
                      f"{row['total'] / 1000:7.2f}s " + " ".join(f"{known[t] / 1000:6.2f}s" for t in tops), flush=True)

        if args.json:
            args.json.write_text(json.dumps({
                "raw": {part: dict(d) for part, d in data.items()}, "medians": med, "e2e": e2e,
                "ratios": {k: v[0] for k, v in ratios.items()}, "disk": disk, "importtime": summary_itime,
                "seed_ms": {fs.kind: dict(fs.seed_ms) for fs in fss}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
