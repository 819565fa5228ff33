"""A disk that fills up mid-run: one clear error, exit non-zero, nothing partial kept, the store consistent."""

from __future__ import annotations

import os
from pathlib import Path

from helpers import run_in, virtualenv
from storecheck import assert_not_half_done, store_problems, tmp_leftovers

ARGS = ("--no-setuptools",)


def _fill(fs: Path, leave_mb: float) -> None:
    """Fill ``fs`` with one file until only about ``leave_mb`` are free (root may use reserved blocks too)."""
    st = os.statvfs(fs)
    free = st.f_bfree * st.f_frsize
    size = max(0, free - int(leave_mb * (1 << 20)))
    fd = os.open(fs / "ballast", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.posix_fallocate(fd, 0, size)
    finally:
        os.close(fd)


def _assert_one_clear_error(result, *needles: str) -> str:
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "Traceback" not in out, out
    errors = [line for line in out.splitlines() if "Error" in line]
    assert len(errors) == 1, out
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def test_store_disk_full_during_import(make_fs, tmp_path):
    fs = make_fs("ext4", 40)
    store = fs / "store"
    _fill(fs, 3)
    result = virtualenv(tmp_path / "env", *ARGS, store=store, check=False)
    _assert_one_clear_error(result, f"the disk holding the store {store} is full", "Free some space")
    assert store_problems(store) == []
    assert tmp_leftovers(store) == []
    assert list((store / "catalogs").glob("*.json")) == []
    assert_not_half_done(tmp_path / "env")
    # Once there is room again, the next run imports and works.
    os.unlink(fs / "ballast")
    virtualenv(tmp_path / "again", *ARGS, store=store)
    run_in(tmp_path / "again", "pip", "--version")
    assert store_problems(store) == [] and tmp_leftovers(store) == []


def test_environment_disk_full_during_materialization(make_fs, warm_store, tmp_path):
    store = warm_store(None, *ARGS, fresh=True)
    fs = make_fs("ext4", 40)
    _fill(fs, 4)
    env = fs / "env"
    result = virtualenv(env, *ARGS, store=store, check=False)
    _assert_one_clear_error(result, "the disk is full while writing", str(env), "Free some space")
    assert_not_half_done(env)
    # The run's distributions are linked in one pass: a failure removes every file of every one of them.
    site = next(env.glob("lib/*/site-packages"))
    assert {p.name for p in site.iterdir()} - {"_virtualenv.pth", "_virtualenv.py"} == set()  # virtualenv's own
    assert store_problems(store) == []
    assert tmp_leftovers(store) == []
