"""Many environments created at once from one cold store: every one works, the store stays consistent."""

from __future__ import annotations

import subprocess
import sys

from helpers import REPO, isolated_environ, run_in, virtualenv_command
from storecheck import assert_not_half_done, store_problems, tmp_leftovers

PROCESSES = 16
#: The one sentence a seeder may fail with when gc took what it was about to use.
REMOVED_WHILE_SEEDING = ("were removed while seeding. Run again.", "vanished while writing")


def _start(env, store) -> subprocess.Popen:
    return subprocess.Popen(virtualenv_command(env, store=store), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=isolated_environ())


def _create_many(root, store, count: int) -> tuple[list, dict]:
    """Start ``count`` runs at once; return (environments made, {failed environment: output})."""
    envs = [root / f"env-{i}" for i in range(count)]
    processes = [_start(env, store) for env in envs]
    made, failures = [], {}
    for env, process in zip(envs, processes):
        output, _ = process.communicate(timeout=900)
        assert "Traceback" not in output, output
        if process.returncode:
            failures[env] = output
        else:
            made.append(env)
    return made, failures


def _assert_all_work(envs, store) -> None:
    for env in envs:
        assert str(env) in run_in(env, "pip", "--version").stdout
        assert "holoclone = " in (env / "pyvenv.cfg").read_text()
    assert store_problems(store) == []
    assert tmp_leftovers(store) == []


def test_sixteen_virtualenvs_at_once_on_a_cold_store(xfs, unique):
    root = xfs / unique
    store = root / "store"
    envs, failures = _create_many(root, store, PROCESSES)
    assert failures == {}
    _assert_all_work(envs, store)
    # Each wheel was imported exactly once: one catalog per wheel, nothing duplicated.
    assert len(list((store / "catalogs").glob("*.json"))) == 2
    assert len(list((store / "refs").glob("*.json"))) == PROCESSES


def test_sixteen_virtualenvs_while_gc_without_grace_runs(xfs, unique):
    # gc with older_than=0 spares nothing young: a catalog imported a moment ago and not yet
    # referenced, or an environment still being made, is fair game, so the race between
    # "imported" and "registered" (and materializing) is really run, again and again.
    root = xfs / unique
    store = root / "store"
    collector = subprocess.Popen([sys.executable, "-c", _GC_LOOP, str(store)], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, env=isolated_environ({"PYTHONPATH": str(REPO)}))
    try:
        envs, failures = _create_many(root, store, PROCESSES)
    finally:
        collector.terminate()
        output, _ = collector.communicate(timeout=60)
    assert "Traceback" not in output and "gc: exit" not in output, output
    assert "gc: ok" in output or "gc: removed" in output, output  # gc really ran during the test
    # The race was exercised: some gc removed something while the seeders ran.
    assert "gc: removed" in output, "gc removed nothing: the seeders never raced it\n" + output
    # Every seeder either made a working environment or failed with the one clear sentence
    # (virtualenv prints a seeder's error as "SeedError: <sentence>").
    for env, out in failures.items():
        said = [line for line in out.splitlines() if any(message in line for message in REMOVED_WHILE_SEEDING)]
        assert len(said) == 1, f"{env.name} failed without the one-sentence message:\n{out}"
        assert said[0].startswith(("holoclone: error:", "SeedError:")), said[0]
        assert_not_half_done(env)
    _assert_all_work(envs, store)


# Runs 'holoclone store gc --older-than 0' again and again until SIGTERM (letting the current gc
# finish); says what each run removed.  A gc that cannot get the store lock quickly tries again.
_GC_LOOP = r"""
import json, os, signal, subprocess, sys, time
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
store = sys.argv[1]
cmd = [sys.executable, "-m", "holoclone_venv", "--store", store, "store", "gc", "--older-than", "0", "--json",
       "--lock-timeout", "5"]
while not stop:
    if os.path.exists(os.path.join(store, "LAYOUT")):
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode == 0:
            result = json.loads(done.stdout)
            if result["catalogs_removed"] or result["objects_removed"]:
                print(f"gc: removed {len(result['catalogs_removed'])} catalogs, {result['objects_removed']} objects,"
                      f" {len(result['dead_refs'])} refs", flush=True)
            else:
                print("gc: ok", flush=True)
        else:
            print(f"gc: exit {done.returncode}:", done.stdout, done.stderr, flush=True)
    time.sleep(0.05)
"""
