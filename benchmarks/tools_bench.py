"""Benchmark: tox, nox and hatch with their default installers, with holoclone's integrations and with uv, on XFS.

The project is a small hatchling project in the src layout whose three tests
import its dependencies ``--deps`` (default ``pytest, requests, numpy, pandas``),
so the first import after each install is part of the timed run, as it is for
a user (an installer that ships no bytecode pays for compiling it there).
Each command below is one *variant*; every round runs every variant once, in
the same order (interleaved: noise hits all alike), after one untimed warm-up
round that fills every cache.  Each variant works in its own copy of the
project, and its environments are deleted (untimed) before each run, so each
timed run makes them from scratch as ``tox -r`` does.

=================  ==================================================================================
group              variants (tool venv: ``plain`` = tox, nox, hatch, uv; ``holoclone`` = the same
                   plus holoclone-venv, tox-holoclone, hatch-holoclone; ``tox-uv`` = tox, tox-uv)
=================  ==================================================================================
tox -r -e py       plain tox, tox-holoclone, tox-uv; with the test run and with ``--notest``
one more tox env   the same three: ``tox -e extra --notest`` once ``py`` exists (its disk: an extra env's)
nox -s tests       ``nox.session``, ``holoclone_venv.nox.session``, ``nox -db uv``; the tests, and
                   ``--install-only``
hatch env create   ``type = "virtual"``, ``type = "holoclone"``, ``installer = "uv"`` (dev mode)
install -r         ``holoclone install -r`` into a fresh holoclone-seeded env against
                   ``uv pip install -r`` into a fresh ``uv venv`` (the creation is untimed,
                   its disk counted)
cold store         tox-holoclone ``--notest`` on an empty holoclone store each run, against plain tox
=================  ==================================================================================

Everything lives on one filesystem (``--mount`` makes an XFS with reflinks;
``--dir`` uses a directory): the project copies, pip's and uv's caches, the
holoclone store, virtualenv's app-data and hatch's data, so pip, uv and
holoclone can all clone or link.  Packages come from a local wheelhouse
filled once with ``pip download`` (``PIP_NO_INDEX``/``UV_NO_INDEX`` and
find-links), so the network adds no noise; the tool venvs are made once
from the package index (``--tools DIR`` keeps and reuses them).

Reported per variant: median wall time, min, max, the new disk a run leaves
(statvfs drop after ``sync``: shared extents counted once) and ratios against
the group's reference.  ``--rounds 1 --deps pytest`` is a quick check that
every variant works.

Usage (``--mount`` needs root)::

    python benchmarks/tools_bench.py --mount [--rounds 5] [--deps "pytest,requests,numpy,pandas"]
    python benchmarks/tools_bench.py --dir /some/xfs/dir --tools /some/xfs/dir/tools --rounds 1 --deps pytest
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tox_bench import filesystem_type, free_bytes, mib
from xfsmount import temporary_xfs

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DEPS = "pytest,requests,numpy,pandas"
TOOL_VENVS = {
    "plain": ["tox>=4", "nox", "hatch", "uv"],
    "holoclone": ["tox>=4", "nox", "hatch", "-e", str(REPO), str(REPO / "plugins" / "tox-holoclone"),
                  str(REPO / "plugins" / "hatch-holoclone")],
    "tox-uv": ["tox>=4", "tox-uv"],
}
# The caller's settings that would change what a tool does.
_STRIP = ("VIRTUALENV_", "TOX_", "NOX_", "HATCH_", "PIP_", "UV_", "VIRTUAL_ENV", "RCC_HOLOTREE", "PYTHONDONTWRITEBYTECODE")


@dataclass
class Variant:
    """One timed command: ``pre`` and cleaning are untimed, the disk counts what pre + cmd leave."""

    group: str
    name: str
    cmd: list[str]
    cwd: Path
    env: dict[str, str]
    clean: list[Path] = field(default_factory=list)
    pre: list[list[str]] = field(default_factory=list)
    disk_of_pre: bool = True  # False: the disk counts what cmd alone adds
    reference: bool = False
    runs: list[dict[str, float]] = field(default_factory=list)


def check(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if result.returncode:
        sys.exit(f"command failed ({result.returncode}): {' '.join(map(str, cmd))}\n{result.stdout}\n{result.stderr}")
    return result


def make_tools(tools: Path) -> dict[str, Path]:
    """The bin directory of each tool venv, made (from the package index) when missing."""
    bins = {}
    for name, packages in TOOL_VENVS.items():
        venv = tools / name
        if not (venv / "bin" / "python").exists():
            print(f"making the {name} tool venv ...", file=sys.stderr)
            check([sys.executable, "-m", "venv", str(venv)])
            check([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                   *packages], timeout=1800)
        bins[name] = venv / "bin"
    return bins


def fill_wheelhouse(root: Path, deps: list[str]) -> Path:
    house = root / "wheelhouse"
    house.mkdir(exist_ok=True)
    # The build backend too (the .pkg env and editable installs build the project from the wheelhouse).
    check([sys.executable, "-m", "pip", "download", "-q", "--only-binary", ":all:", "--dest", str(house), *deps,
           "hatchling", "editables", "pip"])
    return house


def environ(root: Path, house: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_STRIP)}
    (root / "hatch.toml").touch()
    env.update(VIRTUALENV_CONFIG_FILE=os.devnull, VIRTUALENV_OVERRIDE_APP_DATA=str(root / "app-data"),
               VIRTUALENV_HOLOCLONE_STORE=str(root / "store"),
               PIP_NO_INDEX="1", PIP_FIND_LINKS=str(house), PIP_DISABLE_PIP_VERSION_CHECK="1",
               PIP_CACHE_DIR=str(root / "pip-cache"),
               UV_NO_INDEX="1", UV_FIND_LINKS=str(house), UV_CACHE_DIR=str(root / "uv-cache"),
               HATCH_CONFIG=str(root / "hatch.toml"), HATCH_DATA_DIR=str(root / "hatch-data"),
               HATCH_CACHE_DIR=str(root / "hatch-cache"))
    env.update(extra)
    return env


#: The project's tests: each imports what it uses of the default dependencies (skipped when not installed).
_TESTS = """\
import pytest

from sample import greet


def test_greet():
    assert greet("env") == "hello, env"


def test_frames():
    np = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")
    assert pd.DataFrame({"a": np.arange(3)})["a"].sum() == 3


def test_requests():
    requests = pytest.importorskip("requests")
    assert requests.Request("GET", "https://example.org/").prepare().method == "GET"
"""


def project(root: Path, name: str, deps: list[str]) -> Path:
    """The project for one variant (hatchling, src layout, three tests), configured for every tool."""
    where = root / "projects" / name
    if where.exists():
        shutil.rmtree(where)
    (where / "src" / "sample").mkdir(parents=True)
    (where / "tests").mkdir()
    (where / "src" / "sample" / "__init__.py").write_text('def greet(name):\n    return f"hello, {name}"\n')
    (where / "tests" / "test_sample.py").write_text(_TESTS)
    (where / "pyproject.toml").write_text('[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
                                          '[project]\nname = "sample"\nversion = "0.1.0"\nrequires-python = ">=3.9"\n\n'
                                          '[tool.hatch.build.targets.wheel]\npackages = ["src/sample"]\n')
    (where / "tox.ini").write_text(f"[tox]\nenv_list = py\n\n[testenv]\ndeps =\n"
                                   + "".join(f"    {d}\n" for d in deps) + "commands = python -m pytest -q tests\n"
                                   "\n[testenv:extra]\n")
    (where / "requirements.txt").write_text("".join(f"{d}\n" for d in deps))
    nox_import = "from holoclone_venv.nox import session" if "holoclone" in name else "from nox import session"
    (where / "noxfile.py").write_text(f"{nox_import}\n\n\n@session\ndef tests(session):\n"
                                      f"    session.install(*{deps!r}, '.')\n"
                                      "    session.run('python', '-m', 'pytest', '-q', 'tests')\n")
    env_type = {"hatch-holoclone": 'type = "holoclone"\n', "hatch-uv": 'installer = "uv"\n'}.get(name, "")
    with open(where / "pyproject.toml", "a") as toml:
        toml.write(f"\n[tool.hatch.envs.default]\n{env_type}dependencies = {json.dumps(deps)}\n")
    return where


def variants(root: Path, bins: dict[str, Path], house: Path, deps: list[str]) -> list[Variant]:
    env = environ(root, house)
    plain, holo, toxuv = bins["plain"], bins["holoclone"], bins["tox-uv"]
    found: list[Variant] = []
    for notest in (False, True):
        group = "tox -r -e py" + (" --notest" if notest else "")
        flags = ["--notest"] if notest else []
        for name, bin_dir, ref in (("plain tox", plain, False), ("tox-holoclone", holo, False),
                                   ("tox-uv", toxuv, True)):
            where = project(root, f"tox-{bin_dir.parent.name}{'-notest' if notest else ''}", deps)
            found.append(Variant(group, name, [str(bin_dir / "tox"), "run", "-r", "-e", "py", *flags], where, env,
                                 clean=[where / ".tox"], reference=ref))
    for name, bin_dir, ref in (("plain tox", plain, False), ("tox-holoclone", holo, False), ("tox-uv", toxuv, True)):
        # The disk of one more env once the first exists (its .pkg and the caches are already there).
        where = project(root, f"tox-extra-{bin_dir.parent.name}", deps)
        tox = str(bin_dir / "tox")
        found.append(Variant("tox: one more env (-e extra --notest)", name, [tox, "run", "-e", "extra", "--notest"],
                             where, env, clean=[where / ".tox"], pre=[[tox, "run", "-e", "py", "--notest"]],
                             disk_of_pre=False, reference=ref))
    for install_only in (False, True):
        group = "nox -s tests" + (" --install-only" if install_only else "")
        flags = ["--install-only"] if install_only else []
        for name, bin_dir, extra, ref in (("nox.session", plain, [], False),
                                          ("holoclone_venv.nox", holo, [], False),
                                          ("nox -db uv", plain, ["-db", "uv"], True)):
            key = "nox-holoclone" if bin_dir == holo else f"nox-plain{'-uv' if extra else ''}"
            where = project(root, f"{key}{'-io' if install_only else ''}", deps)
            found.append(Variant(group, name, [str(bin_dir / "nox"), *extra, "-s", "tests", *flags], where, env,
                                 clean=[where / ".nox"], reference=ref))
    for name, key, bin_dir, ref in (('type = "virtual"', "hatch-plain", plain, False),
                                    ('type = "holoclone"', "hatch-holoclone", holo, False),
                                    ('installer = "uv"', "hatch-uv", plain, True)):
        where = project(root, key, deps)
        data = root / f"hatch-data-{key}"
        found.append(Variant("hatch env create", name, [str(bin_dir / "hatch"), "env", "create"], where,
                             {**env, "HATCH_DATA_DIR": str(data)}, clean=[data], reference=ref))
    reqs = project(root, "install", deps) / "requirements.txt"
    holo_env, uv_env = root / "envs" / "holoclone", root / "envs" / "uv"
    found.append(Variant("install -r (fresh env)", "holoclone install -r",
                         [str(holo / "python"), "-m", "holoclone_venv", "install", "--python", str(holo_env), "-q",
                          "-r", str(reqs)], root, env, clean=[holo_env],
                         pre=[[str(holo / "python"), "-m", "virtualenv", "--seeder", "holoclone", str(holo_env)]]))
    found.append(Variant("install -r (fresh env)", "uv pip install -r",
                         [str(plain / "uv"), "pip", "install", "-q", "--python", str(uv_env), "-r", str(reqs)], root,
                         env, clean=[uv_env], pre=[[str(plain / "uv"), "venv", "-q", str(uv_env)]], reference=True))
    cold = project(root, "cold-holoclone", deps)
    found.append(Variant("cold store: tox -r -e py --notest", "tox-holoclone, empty store",
                         [str(holo / "tox"), "run", "-r", "-e", "py", "--notest"], cold,
                         {**env, "VIRTUALENV_HOLOCLONE_STORE": str(root / "cold-store")},
                         clean=[cold / ".tox", root / "cold-store"]))
    plain_cold = project(root, "cold-plain", deps)
    found.append(Variant("cold store: tox -r -e py --notest", "plain tox",
                         [str(plain / "tox"), "run", "-r", "-e", "py", "--notest"], plain_cold, env,
                         clean=[plain_cold / ".tox"], reference=True))
    return found


def one_run(variant: Variant) -> dict[str, float]:
    for path in variant.clean:
        shutil.rmtree(path, ignore_errors=True)
    before = free_bytes(variant.cwd)
    for cmd in variant.pre:
        check(cmd, cwd=variant.cwd, env=variant.env, timeout=1800)
    if not variant.disk_of_pre:
        before = free_bytes(variant.cwd)
    start = time.perf_counter()
    check(variant.cmd, cwd=variant.cwd, env=variant.env, timeout=1800)
    wall = time.perf_counter() - start
    return {"wall": wall, "disk": before - free_bytes(variant.cwd)}


def report(found: list[Variant], rounds: int) -> None:
    print(f"medians of {rounds} interleaved round(s), warm caches unless the group says otherwise:")
    for group in dict.fromkeys(v.group for v in found):
        members = [v for v in found if v.group == group]
        ref = next((v for v in members if v.reference), members[0])
        ref_wall = statistics.median(r["wall"] for r in ref.runs)
        ref_disk = statistics.median(r["disk"] for r in ref.runs)
        print(f"\n{group}  (ratios against {ref.name})")
        print(f"  {'variant':<26} {'median':>8} {'min':>8} {'max':>8} {'ratio':>6} {'disk':>12} {'disk ratio':>10}")
        for v in members:
            walls = [r["wall"] for r in v.runs]
            disk = statistics.median(r["disk"] for r in v.runs)
            wall = statistics.median(walls)
            disk_ratio = f"{disk / ref_disk:.2f}" if ref_disk > 0 else "-"
            print(f"  {v.name:<26} {wall:>7.2f}s {min(walls):>7.2f}s {max(walls):>7.2f}s {wall / ref_wall:>6.2f} "
                  f"{mib(disk):>12} {disk_ratio:>10}")


def measure(root: Path, args: argparse.Namespace) -> None:
    fs = filesystem_type(root)
    if fs != "xfs":
        print(f"warning: {root} is on {fs}, not xfs: nothing can be reflinked", file=sys.stderr)
    deps = [d.strip() for d in args.deps.split(",") if d.strip()]
    bins = make_tools(args.tools.resolve() if args.tools else root / "tools")
    house = fill_wheelhouse(root, deps)
    found = variants(root, bins, house, deps)
    print(f"warm-up round ({len(found)} variants) ...", file=sys.stderr)
    for variant in found:  # fills pip's, uv's, virtualenv's and holoclone's caches; the cold store is emptied
        one_run(variant)
    for number in range(args.rounds):
        print(f"round {number + 1}/{args.rounds} ...", file=sys.stderr)
        for variant in found:
            variant.runs.append(one_run(variant))
    print(f"{fs}; deps: {', '.join(deps)}; Python {sys.version.split()[0]}")
    report(found, args.rounds)
    if args.json:
        args.json.write_text(json.dumps([{"group": v.group, "name": v.name, "runs": v.runs} for v in found],
                                        indent=1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--dir", type=Path, help="a directory on XFS (reflink=1) to work in")
    where.add_argument("--mount", action="store_true", help="make and loop-mount an XFS (root)")
    parser.add_argument("--size-mb", type=int, default=8192, help="size of the --mount image")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds after the warm-up (default 5)")
    parser.add_argument("--deps", default=DEFAULT_DEPS, help=f"comma-separated dependencies (default {DEFAULT_DEPS})")
    parser.add_argument("--tools", type=Path, help="where the tool venvs are kept (default: made inside the run)")
    parser.add_argument("--json", type=Path, help="also write every run's figures to this file")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.mount:
        with temporary_xfs(args.size_mb, prefix="tools-bench-") as root:
            measure(root, args)
    else:
        root = args.dir.resolve()
        root.mkdir(parents=True, exist_ok=True)
        measure(root, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
