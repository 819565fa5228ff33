"""Many environments created at once from one cold store: every one works, the store stays consistent."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import run_in
from storecheck import store_problems, tmp_leftovers

PROCESSES = 16


def _start(env, store) -> subprocess.Popen:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUALENV_", "RCC_HOLOTREE"))}
    cmd = [sys.executable, "-m", "virtualenv", "--seeder", "holoclone", "--holoclone-store", str(store), str(env)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environ)


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


def test_sixteen_virtualenvs_while_gc_runs(xfs, unique):
    maintenance = pytest.importorskip(
        "holoclone_venv.maintenance", reason="depends on 'holoclone store gc' (holoclone_venv.maintenance)"
    )
    if not hasattr(maintenance, "gc"):
        pytest.skip("depends on 'holoclone store gc' (holoclone_venv.maintenance.gc)")
    root = xfs / unique
    store = root / "store"
    collector = subprocess.Popen(
        [sys.executable, "-c", _GC_LOOP, str(store)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        envs, failures = _create_many(root, store, PROCESSES)
    finally:
        collector.terminate()
        output, _ = collector.communicate(timeout=60)
    assert "Traceback" not in output, output
    assert "gc: ok" in output  # gc really ran during the test
    _assert_all_work(envs, store)
    # A run may only fail with the clear message for a catalog gc took away.
    unclear = {env: out for env, out in failures.items() if "were removed while seeding. Run again." not in out}
    assert unclear == {}
    assert failures == {}, "gc must not take a catalog a seeder has just imported"


# Runs gc again and again until terminated; a gc that cannot get the store lock
# quickly simply tries again.
_GC_LOOP = r"""
import sys, time
from holoclone_venv import maintenance
from holoclone_venv.errors import HoloCloneError
from holoclone_venv.store import Store
while True:
    store = Store(sys.argv[1], lock_timeout=5)
    if (store.root / "LAYOUT").exists():
        try:
            maintenance.gc(store)
            print("gc: ok", flush=True)
        except HoloCloneError as error:
            print("gc:", error, flush=True)
    time.sleep(0.2)
"""
