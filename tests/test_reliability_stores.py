"""Stores that are not where, or not what, a run expects: other filesystems, read-only, newer, locked."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import fallback_lines, fell_back, isolated_environ, run_in, virtualenv, virtualenv_command
from storecheck import contents, store_problems
from wheels import fake_pip

ARGS = ("--no-setuptools",)

pytestmark = pytest.mark.slow  # every test runs the real virtualenv


def _output(result) -> str:
    return result.stdout + result.stderr


def test_store_on_another_filesystem_falls_back_with_one_line_naming_both(xfs, ext4, unique):
    store_dir = xfs / f"store-{unique}"
    env = ext4 / f"env-{unique}"
    result = virtualenv(env, *ARGS, store=store_dir)
    lines = fallback_lines(result)
    assert lines and all("store on xfs, env on ext4" in line for line in lines), _output(result)
    assert "copied" in _output(result)
    run_in(env, "pip", "--version")


def test_store_on_another_filesystem_gives_exactly_one_fallback_line(xfs, ext4, unique):
    result = virtualenv(ext4 / f"env-{unique}", *ARGS, store=xfs / f"store-{unique}")
    [line] = fallback_lines(result)
    assert fell_back(line, "reflink", "copy") and "Errno 18" in line, line


def test_read_only_store_still_seeds_and_says_what_to_do_for_new_wheels(make_fs, warm_store, tmp_path):
    fs = make_fs("ext4", 64)
    store_dir = warm_store(fs, *ARGS, fresh=True)  # this test remounts it read-only
    subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
    try:
        before = contents(store_dir)
        result = virtualenv(tmp_path / "from-read-only", *ARGS, store=store_dir)
        run_in(tmp_path / "from-read-only", "pip", "--version")
        assert "Traceback" not in _output(result)
        wheel = fake_pip(tmp_path / "wheels", "99.0")
        refused = virtualenv(tmp_path / "new-wheel", *ARGS, "--extra-search-dir", str(wheel.parent), "--pip", "99.0",
                             store=store_dir, check=False)
        out = _output(refused)
        assert refused.returncode != 0 and "Traceback" not in out
        assert f"the store {store_dir} is read-only, so {wheel.name} cannot be imported" in out
        assert "writable --holoclone-store" in out
        assert contents(store_dir) == before
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(fs)], check=True)
    assert store_problems(store_dir) == []


def test_store_of_a_newer_layout_is_refused(tmp_path):
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    (store_dir / "LAYOUT").write_text("holoclone-store 2\n")
    result = virtualenv(tmp_path / "env", *ARGS, store=store_dir, check=False)
    out = _output(result)
    assert result.returncode != 0 and "Traceback" not in out
    assert "has layout 2, newer than this holoclone-venv understands" in out and "Upgrade holoclone-venv" in out
    assert sorted(p.name for p in store_dir.iterdir()) == ["LAYOUT"]


# Holds a store lock until stdin closes.
_HOLD = r"""
import sys
from filelock import FileLock
lock = FileLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
sys.stdin.read()
"""


def _hold(lock_path: Path) -> subprocess.Popen:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(lock_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


@pytest.fixture
def store_dir(warm_store) -> Path:
    """A store that already holds pip: a run needs the store lock only to register its environment."""
    return warm_store(None, *ARGS)


def test_held_lock_times_out_with_a_message(store_dir, tmp_path):
    warm_store = store_dir
    holder = _hold(warm_store / "locks" / "store.lock")
    try:
        result = virtualenv(tmp_path / "env", *ARGS, "--holoclone-lock-timeout", "1", store=warm_store, check=False)
    finally:
        holder.communicate("")
    out = _output(result)
    assert result.returncode != 0 and "Traceback" not in out
    assert "gave up after 1 s waiting for another holoclone process changing the store" in out
    assert "--holoclone-lock-timeout" in out


def test_waiting_run_says_what_it_waits_for_then_proceeds(store_dir, tmp_path):
    warm_store = store_dir
    holder = _hold(warm_store / "locks" / "store.lock")
    log = tmp_path / "log"
    env = tmp_path / "env"
    cmd = virtualenv_command(env, *ARGS, store=warm_store)
    with open(log, "w") as handle:
        waiting = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, env=isolated_environ())
    try:
        deadline = time.monotonic() + 120  # a safety net against hanging, not a timing assertion
        while waiting.poll() is None and "waiting for" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert waiting.poll() is None, log.read_text()
        assert "waiting for another holoclone process changing the store" in log.read_text()
    finally:
        holder.communicate("")
    assert waiting.wait(timeout=300) == 0, log.read_text()
    run_in(env, "pip", "--version")
