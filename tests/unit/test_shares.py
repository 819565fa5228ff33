"""Work done in shares at once (``shares.py``): forked workers on Linux, threads elsewhere, same contract."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from holoclone_venv import shares
from holoclone_venv.errors import DamagedObject, MaterializeError
from holoclone_venv.platforms import current

forking = pytest.mark.skipif(not current().forks_workers, reason="linking forks workers on Linux only")


def _pid_and_items(share, forked):
    return os.getpid(), forked, list(share)


@forking
def test_shares_run_in_forked_workers_and_come_back_in_order():
    results = shares.run_shares([[1, 2], [3], [4, 5, 6]], _pid_and_items)
    assert [items for _, _, items in results] == [[1, 2], [3], [4, 5, 6]]
    (first_pid, first_forked, _), *others = results
    assert first_pid == os.getpid() and first_forked is False
    assert all(forked for _, forked, _ in others)
    assert len({pid for pid, _, _ in others} | {os.getpid()}) == 3


def test_with_another_thread_running_the_shares_run_in_threads_of_this_process():
    # A forked child gets every lock as it was: with a second thread alive, no fork.
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        results = shares.run_shares([[1], [2], [3]], _pid_and_items)
    finally:
        stop.set()
        other.join()
    assert [(pid, forked) for pid, forked, _ in results] == [(os.getpid(), False)] * 3
    assert [items for _, _, items in results] == [[1], [2], [3]]


def test_one_share_runs_here():
    assert shares.run_shares([[7]], _pid_and_items) == [(os.getpid(), False, [7])]


def _damaged_in_the_second(share, forked):
    items = list(share)
    if items == ["bad"]:
        raise DamagedObject("/store/objects/ab/cd", "catalog-key")
    return items


def test_an_error_in_a_worker_is_raised_here_with_its_details():
    with pytest.raises(DamagedObject) as caught:
        shares.run_shares([["good"], ["bad"]], _damaged_in_the_second)
    assert caught.value.path == "/store/objects/ab/cd" and caught.value.catalog_key == "catalog-key"
    assert "store object /store/objects/ab/cd is missing or was changed." in str(caught.value)


class _Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("not picklable")


def _raise_unpicklable(share, forked):
    if forked:
        raise _Unpicklable("odd failure")
    return list(share)


@forking
def test_an_error_that_cannot_travel_arrives_as_its_text():
    with pytest.raises(MaterializeError, match="a linking process failed: _Unpicklable"):
        shares.run_shares([[1], [2]], _raise_unpicklable)


def _killed_when_forked(share, forked):
    if forked:
        os.kill(os.getpid(), signal.SIGKILL)
    return list(share)


@forking
def test_a_worker_killed_by_a_signal_is_one_clear_error():
    with pytest.raises(MaterializeError, match="a linking process ended by signal 9 before it finished"):
        shares.run_shares([[1], [2]], _killed_when_forked)


@forking
def test_when_this_process_fails_its_workers_are_stopped_before_the_error_is_raised(tmp_path):
    pid_file = tmp_path / "worker.pid"

    def work(share, forked):
        if forked:
            pid_file.write_text(str(os.getpid()))
            time.sleep(120)  # would outlive the test if it were not killed
            return []
        while not pid_file.exists() or not pid_file.read_text():
            time.sleep(0.01)
        raise KeyboardInterrupt("stopped")

    with pytest.raises(KeyboardInterrupt):
        shares.run_shares([[1], [2]], work)
    with pytest.raises(ProcessLookupError):  # killed and reaped: no such process any more
        os.kill(int(pid_file.read_text()), 0)


@forking
def test_a_worker_whose_parent_was_killed_stops_writing(tmp_path):
    """A seeding killed with SIGKILL cannot stop its workers: each stops by itself, before its next item."""
    out = tmp_path / "out"
    out.mkdir()
    script = textwrap.dedent(f"""
        import os, signal, time
        from holoclone_venv import shares
        out = {str(out)!r}

        def work(share, forked):
            for item in share:
                if not forked:  # the parent: killed as soon as its worker has begun
                    while len(os.listdir(out)) < 2:
                        time.sleep(0.01)
                    os.kill(os.getpid(), signal.SIGKILL)
                open(os.path.join(out, str(item)), "w").write(str(os.getpid()))
                time.sleep(0.05)
            return None

        shares.run_shares([[-1], list(range(200))], work)
    """)
    parent = subprocess.run([sys.executable, "-c", script], check=False)
    assert parent.returncode == -signal.SIGKILL
    worker = int((out / "0").read_text())
    deadline = time.monotonic() + 30
    while _running(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(worker), "the worker outlived its killed parent"
    assert len(os.listdir(out)) < 200


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, finished but not reaped by its new parent, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False
