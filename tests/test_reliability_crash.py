"""A seeding run killed with SIGKILL at any moment loses nothing and leaves nothing that looks complete.

Each trial starts ``virtualenv --seeder holoclone`` on a fresh store, waits
until the import has begun (its staging directory appears), and kills it
after a delay.  The delays are spread evenly over the duration of a cold
import (measured once by a complete run), so kills land in wheel extraction,
bytecode compilation, object adoption, the catalog write and
materialization; a few trials kill before the import starts at all.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from conftest import run_in, virtualenv
from storecheck import assert_not_half_done, store_problems, tmp_leftovers

TRIALS = 30
PARALLEL = 3
EARLY = 3  # trials killed before the import begins (virtualenv start-up, store creation)
ARGS = ("--no-setuptools",)  # one wheel keeps each trial short; pip alone has ~1,000 files


def _start(env: Path, store: Path) -> subprocess.Popen:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUALENV_", "RCC_HOLOTREE"))}
    cmd = [sys.executable, "-m", "virtualenv", "--seeder", "holoclone", "--holoclone-store", str(store), *ARGS, str(env)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environ)


def _wait_for_import(process: subprocess.Popen, store: Path) -> bool:
    """Wait until the run stages its import; False when it ended first."""
    tmp = store / "tmp"
    while process.poll() is None:
        if tmp.is_dir() and any(p.name.startswith("stage-") for p in tmp.iterdir()):
            return True
        time.sleep(0.005)
    return False


def _trial(env: Path, store: Path, delay: float, early: bool) -> tuple[bool, bool]:
    """Run one seeding and kill it ``delay`` seconds after the import began (after start when ``early``).

    Returns ``(finished, killed_during_import)``.
    """
    process = _start(env, store)
    began = True
    if early:
        time.sleep(delay)
    else:
        began = _wait_for_import(process, store)
        time.sleep(delay)
    finished = process.poll() is not None
    if not finished:
        process.send_signal(signal.SIGKILL)
    code = process.wait()
    assert code in (0, -signal.SIGKILL), f"{env.name}: the run failed by itself ({code})"
    assert began or finished
    in_import = not finished and not list((store / "catalogs").glob("*.json"))
    return finished, in_import


def test_killed_runs_keep_the_store_consistent_and_the_next_run_succeeds(xfs, unique):
    root = xfs / unique
    # Trials run PARALLEL at a time (own store each): the calibration runs under the same load.
    calibrations = [(_start(root / f"calibrate-{i}", root / f"calibration-{i}"), root / f"calibration-{i}")
                    for i in range(PARALLEL)]
    for process, store in calibrations:
        assert _wait_for_import(process, store)
    started = time.monotonic()
    assert [process.wait() for process, _ in calibrations] == [0] * PARALLEL
    window = time.monotonic() - started  # import plus materialization
    for process, store in calibrations:
        shutil.rmtree(store)
    rng = random.Random(20261125)
    plans = []
    for trial in range(TRIALS):
        if trial < EARLY:
            plans.append((trial, 0.2 * (trial + rng.random()), True))
        else:
            slot = trial - EARLY
            plans.append((trial, window * 1.05 * (slot + rng.random()) / (TRIALS - EARLY), False))
    rng.shuffle(plans)  # mix short and long delays in each batch
    killed_in_import = 0
    kept: list[Path] = []
    with ThreadPoolExecutor(PARALLEL) as pool:
        for batch in range(0, TRIALS, PARALLEL):
            chunk = plans[batch : batch + PARALLEL]
            futures = {t: pool.submit(_trial, root / f"env-{t}", root / f"store-{t}", d, e) for t, d, e in chunk}
            for trial, future in futures.items():
                finished, in_import = future.result()
                store = root / f"store-{trial}"
                problems = store_problems(store) if store.exists() else []
                assert problems == [], f"trial {trial}: {problems[:5]}"
                if not finished:
                    assert_not_half_done(root / f"env-{trial}")
                killed_in_import += in_import
                # Keep two stores with a dead run's staging in them for the next-run check; the
                # rest go, so thirty stores do not fill the filesystem.
                if len(kept) < 2 and store.exists() and tmp_leftovers(store):
                    kept.append(store)
                else:
                    shutil.rmtree(store, ignore_errors=True)
                shutil.rmtree(root / f"env-{trial}", ignore_errors=True)
    # Most kills must have hit the import itself, or this test proves little.
    assert killed_in_import >= TRIALS // 2
    # The next run in a killed store reclaims the dead run's staging and succeeds.
    assert kept, "no kill left staging behind: the kills missed the import"
    for store in kept:
        _assert_next_run_heals(root / f"next-{store.name}", store)


def _assert_next_run_heals(env: Path, store: Path) -> None:
    virtualenv(env, *ARGS, store=store)
    assert str(env) in run_in(env, "pip", "--version").stdout
    assert store_problems(store) == []
    assert tmp_leftovers(store) == [], "staging of killed runs was not reclaimed"


def test_run_killed_while_writing_dist_info_leaves_no_listed_distribution(tmp_path):
    store = tmp_path / "store"
    virtualenv(tmp_path / "warm", *ARGS, store=store)
    for attempt in range(3):
        env = tmp_path / f"env-{attempt}"
        process = _start(env, store)
        # Kill the moment pip's metadata appears: the .dist-info is being written.
        while process.poll() is None and not list(env.glob("lib/python*/site-packages/pip-*.dist-info/METADATA")):
            time.sleep(0)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert_not_half_done(env)
