"""Work shared out at once (``shares.py``): forked workers on Linux, threads elsewhere, same contract;
the workers pull their items from one queue."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from holoclone_venv.materialize import workers as shares
from holoclone_venv.errors import DamagedObject, MaterializeError
from holoclone_venv.platforms import current

forking = pytest.mark.skipif(not current().forks_workers, reason="linking forks workers on Linux only")


def _pid_and_items(share, forked):
    return os.getpid(), forked, list(share)


@forking
def test_items_are_pulled_by_forked_workers_each_item_once():
    results = shares.run_pulled(list(range(40)), 3, _pid_and_items)
    assert sorted(item for _, _, items in results for item in items) == list(range(40))
    assert [forked for pid, forked, _ in results if pid == os.getpid()] == [False]
    assert len({pid for pid, _, _ in results}) == 3 and sum(forked for _, forked, _ in results) == 2


@forking
def test_more_items_than_the_queue_has_places_are_each_pulled_once():
    results = shares.run_pulled(list(range(5000)), 2, _pid_and_items)
    assert sorted(item for _, _, items in results for item in items) == list(range(5000))


def _slow_first(share, forked):
    items = []
    for item in share:
        if item == "slow":
            time.sleep(2)
        items.append(item)
    return items


@pytest.mark.parametrize("threads", [False, True], ids=["processes", "threads"])
def test_a_worker_busy_with_a_slow_item_leaves_the_others_to_the_rest(threads):
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    if threads:
        other.start()  # with a second thread alive the workers are threads
    try:
        results = shares.run_pulled(["slow", *range(60)], 2, _slow_first)
    finally:
        stop.set()
        if threads:
            other.join()
    slow, = (items for items in results if "slow" in items)
    (rest,) = (items for items in results if "slow" not in items)
    assert len(slow) < len(rest), "a static half would give both workers 30 items"


def test_with_another_thread_running_the_shares_run_in_threads_of_this_process():
    # A forked child gets every lock as it was: with a second thread alive, no fork.
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        results = shares.run_pulled([1, 2, 3], 3, _pid_and_items)
    finally:
        stop.set()
        other.join()
    assert [(pid, forked) for pid, forked, _ in results] == [(os.getpid(), False)] * 3
    assert sorted(item for _, _, items in results for item in items) == [1, 2, 3]


def test_one_item_runs_here():
    assert shares.run_pulled([7], 2, _pid_and_items) == [(os.getpid(), False, [7])]


def _damaged_in_the_second(share, forked):
    items = list(share)
    if "bad" in items:
        raise DamagedObject("/store/objects/ab/cd", "catalog-key")
    return items


def test_an_error_in_a_worker_is_raised_here_with_its_details():
    with pytest.raises(DamagedObject) as caught:
        shares.run_pulled(["good", "bad"], 2, _damaged_in_the_second)
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
        shares.run_pulled([1, 2], 2, _raise_unpicklable)


def _killed_when_forked(share, forked):
    if forked:
        os.kill(os.getpid(), signal.SIGKILL)
    return list(share)


@forking
def test_a_worker_killed_by_a_signal_is_one_clear_error():
    with pytest.raises(MaterializeError, match="a linking process ended by signal 9 before it finished"):
        shares.run_pulled([1, 2], 2, _killed_when_forked)


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
        shares.run_pulled([1, 2], 2, work)
    with pytest.raises(ProcessLookupError):  # killed and reaped: no such process any more
        os.kill(int(pid_file.read_text()), 0)


@forking
def test_a_worker_whose_parent_was_killed_stops_writing(tmp_path):
    """A seeding killed with SIGKILL cannot stop its workers: each stops by itself, before its next item."""
    out = tmp_path / "out"
    out.mkdir()
    script = textwrap.dedent(f"""
        import os, signal, time
        from holoclone_venv.materialize import workers as shares
        out = {str(out)!r}

        def work(share, forked):
            for item in share:
                if not forked:  # the parent: killed as soon as its worker has begun
                    while len(os.listdir(out)) < 2:
                        time.sleep(0.01)
                    os.kill(os.getpid(), signal.SIGKILL)
                with open(os.path.join(out, str(item)), "w") as handle:  # closed now on PyPy too (no refcounting)
                    handle.write(str(os.getpid()))
                time.sleep(0.05)
            return None

        shares.run_pulled(list(range(200)), 2, work)
    """)
    parent = subprocess.run([sys.executable, "-c", script], check=False)
    assert parent.returncode == -signal.SIGKILL
    worker = int(next(out.iterdir()).read_text())  # only the worker wrote: its parent was killed first
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
