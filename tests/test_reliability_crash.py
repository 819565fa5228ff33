"""A seeding run killed with SIGKILL at any moment loses nothing and leaves nothing that looks complete.

Each trial starts ``virtualenv --seeder holoclone`` on a fresh store, waits
until the import has begun (its staging directory appears), and kills it
after a delay.  The delays are spread evenly over the duration of a cold
import (measured once by a complete run), so kills land in wheel extraction,
bytecode compilation, object adoption, the catalog write and
materialization; a few trials kill before the import starts at all.
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from helpers import isolated_environ, run_in, site_packages, virtualenv, virtualenv_command
from storecheck import assert_not_half_done, store_problems, tmp_leftovers

TRIALS = 30
PARALLEL = 3
EARLY = 3  # trials killed before the import begins (virtualenv start-up, store creation)
ARGS = ("--no-setuptools",)  # one wheel keeps each trial short; pip alone has ~1,000 files


def _start(env: Path, store: Path) -> subprocess.Popen:
    return subprocess.Popen(virtualenv_command(env, *ARGS, store=store), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=isolated_environ())


def _wait_for_import(process: subprocess.Popen, store: Path) -> bool:
    """Wait until the run stages its import; False when it ended first."""
    tmp = store / "tmp"
    while process.poll() is None:
        if tmp.is_dir() and any(p.name.startswith("stage-") for p in tmp.iterdir()):
            return True
        time.sleep(0.005)
    return False


def _trial(env: Path, store: Path, delay: float, early: bool) -> dict:
    """Run one seeding and kill it ``delay`` seconds after the import began (after start when ``early``).

    Then check what the kill left: a consistent store, and an environment with either a whole pip
    (pip runs) or no pip distribution at all, in which case the same command run again completes
    it, reclaims the dead run's staging and leaves the store consistent.
    """
    process = _start(env, store)
    began = True
    if early:
        time.sleep(delay)
    else:
        began = _wait_for_import(process, store)
        time.sleep(delay)
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    code = process.wait()
    assert code in (0, -signal.SIGKILL), f"{env.name}: the run failed by itself ({code})"
    # It may have finished between the poll and the signal; otherwise the kill really landed.
    killed = code == -signal.SIGKILL
    assert began or not killed
    outcome = {"killed": killed, "in_import": killed and not list((store / "catalogs").glob("*.json")),
               "staging_left": False, "state": None}
    problems = store_problems(store) if store.exists() else []
    assert problems == [], f"{env.name}: {problems[:5]}"
    if not killed:
        return outcome
    assert_not_half_done(env)
    outcome["state"] = state = _materialization_state(env)
    if state == "distribution":
        assert str(env) in run_in(env, "python", "-m", "pip", "--version").stdout
        return outcome
    outcome["staging_left"] = store.exists() and bool(tmp_leftovers(store))
    _assert_next_run_heals(env, store)  # the same command again
    return outcome


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
    outcomes = []
    with ThreadPoolExecutor(PARALLEL) as pool:
        for batch in range(0, TRIALS, PARALLEL):
            chunk = plans[batch : batch + PARALLEL]
            futures = {t: pool.submit(_trial, root / f"env-{t}", root / f"store-{t}", d, e) for t, d, e in chunk}
            for trial, future in futures.items():
                outcomes.append(future.result())
                # thirty stores and environments would fill the filesystem
                shutil.rmtree(root / f"store-{trial}", ignore_errors=True)
                shutil.rmtree(root / f"env-{trial}", ignore_errors=True)
    killed = sum(o["killed"] for o in outcomes)
    assert killed >= TRIALS * 2 // 3, f"only {killed} of {TRIALS} runs were really killed"
    # Most kills must have hit the import itself, or this test proves little.
    assert sum(o["in_import"] for o in outcomes) >= TRIALS // 2
    # Some dead runs left staging behind, which the next run reclaimed (checked in each trial).
    assert any(o["staging_left"] for o in outcomes), "no kill left staging behind: the kills missed the import"


def _assert_next_run_heals(env: Path, store: Path) -> None:
    virtualenv(env, *ARGS, store=store)
    assert str(env) in run_in(env, "pip", "--version").stdout
    assert_not_half_done(env)
    assert store_problems(store) == []
    assert tmp_leftovers(store) == [], "staging of killed runs was not reclaimed"


def _materialization_state(env: Path) -> str:
    """What a killed run left of pip in ``env``: nothing, package files only, or a distribution."""
    site = next(env.glob("lib/python*/site-packages"), None)
    if site is None:
        return "nothing"
    if list(site.glob("pip-*.dist-info")):
        return "distribution"
    return "files" if (site / "pip").exists() or list(site.glob(".pip-*")) else "nothing"


def _wait_for_files(process: subprocess.Popen, env: Path) -> float | None:
    """Wait until pip's package directory appears in ``env``; its time, or None when the run ended first."""
    while process.poll() is None:
        if list(env.glob("lib/python*/site-packages/pip")):
            return time.monotonic()
        time.sleep(0)
    return None


KILLS = 12


def test_runs_killed_while_materializing_leave_a_whole_distribution_or_none(warm_store, tmp_path):
    store = warm_store(None, *ARGS, fresh=True)
    # Calibrate: how long from the first package file to the end of a complete run.
    calibration = _start(tmp_path / "calibrate", store)
    began = _wait_for_files(calibration, tmp_path / "calibrate")
    assert began is not None and calibration.wait() == 0
    window = time.monotonic() - began
    rng = random.Random(20261126)
    states = []
    for attempt in range(KILLS):
        env = tmp_path / f"env-{attempt}"
        process = _start(env, store)
        assert _wait_for_files(process, env) is not None, "the run ended before writing pip's files"
        # kills spread from the first package file to past the .dist-info rename
        deadline = time.monotonic() + window * 0.8 * (attempt + rng.random()) / KILLS
        while time.monotonic() < deadline and process.poll() is None:
            time.sleep(0)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        code = process.wait()
        assert code in (0, -signal.SIGKILL), f"attempt {attempt}: the run failed by itself ({code})"
        if code == 0:  # the last slots may end before the kill on a fast run: not a kill, not counted
            continue
        state = _materialization_state(env)
        states.append(state)
        assert_not_half_done(env)  # whatever pip lists is complete
        if state == "distribution":
            site = site_packages(env)
            assert str(site) in run_in(env, "python", "-m", "pip", "--version").stdout
        else:
            # no distribution claimed: the same command run again completes the environment
            _assert_next_run_heals(env, store)
    # The kills really landed (SIGKILL, not a finished run), and some while the package files
    # were being written, not only before or after.
    assert len(states) >= KILLS * 2 // 3, f"only {len(states)} of {KILLS} runs were really killed"
    assert states.count("files") >= 2, states
    assert store_problems(store) == []
