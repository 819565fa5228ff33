"""Work shared out at once: in forked processes where the platform allows it, else in threads.

Creating and cloning files is kernel work that releases the GIL, but a
thread retakes the GIL after every system call, five or more per file: two
linking threads on two cores spend much of their time handing it to each
other.  A forked process has its own interpreter and hands nothing over,
and is measurably faster (docs/benchmarks.md, "Where the time of a decision
went").

Forking is used only where the platform says it is safe (Linux: see
:mod:`holoclone_venv.platforms`) and only while this process runs no other
thread, since a forked child gets a copy of every lock as it was, held or
not.  Elsewhere the shares run in threads, with the same contract.  Either
way the workers pull items from one queue, so they finish together.
"""

from __future__ import annotations

import marshal
import os
import threading
from typing import Any, Callable, Generic, Iterable, Iterator, Sequence, TypeVar

from ..errors import MaterializeError

T = TypeVar("T")
R = TypeVar("R")

#: ``work(share, forked)``: ``forked`` is True in a forked child, whose changes to memory stay
#: there: what the parent must learn has to be in the result, made of plain values (those
#: :mod:`marshal` writes: no pickle import on the way of every seeding).  A forked
#: child gets its share as an iterator that ends the child when its parent is gone.
Work = Callable[[Iterable[T], bool], R]


def run_pulled(items: Sequence[T], workers: int, work: Work) -> list[R]:
    """``work(share, forked)`` in up to ``workers`` shares at once, each share pulling the next of
    ``items`` whenever it is ready for one; one result per share, in no particular order.

    Each item goes to exactly one share.  Static shares end unequal when
    items differ in cost (one directory of torch holds 7,048 of its 28,595
    files); pulled ones end within an item of each other, closer still when
    the caller puts the largest items first.  One share runs in this thread.
    An exception raised by any share is raised here (this thread's first),
    once every share has stopped: a failure never leaves a worker writing
    behind the caller's cleanup.  A forked worker that dies without a result
    raises :class:`MaterializeError`.
    """
    workers = min(workers, len(items))
    if workers < 2:
        return [work(items, False)]
    if _may_fork():
        queue = _Queue(items)
        try:
            return _in_processes([queue] * workers, work)
        finally:
            queue.close()
    pulled = _Locked(items)
    return _in_threads([pulled] * workers, work)


def _in_threads(shares: Sequence[Iterable[T]], work: Work) -> list[R]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(shares) - 1) as pool:
        others = [pool.submit(work, share, False) for share in shares[1:]]
        first = work(shares[0], False)
        return [first, *(future.result() for future in others)]


class _Queue(Generic[T]):
    """Items handed out across forked processes: the index of each batch is queued in a pipe, written
    whole before any fork, and each reader takes one 4-byte index at a time (a pipe read is atomic
    across readers).  At most 1,024 batches, so the queue fits the one page every pipe holds."""

    _BATCHES = 1024

    def __init__(self, items: Sequence[T]) -> None:
        self.items = items
        self.per = -(-len(items) // self._BATCHES)
        batches = -(-len(items) // self.per)
        self.fd, write = os.pipe()
        try:
            data = b"".join(index.to_bytes(4, "little") for index in range(batches))
            if os.write(write, data) != len(data):  # cannot happen below a page; never a short queue
                raise OSError("the work queue did not fit its pipe")
        except BaseException:
            os.close(self.fd)
            raise
        finally:
            os.close(write)  # no writer left: a reader of the empty pipe gets end of file

    def __iter__(self) -> Iterator[T]:
        while True:
            raw = os.read(self.fd, 4)
            if not raw:
                return
            start = int.from_bytes(raw, "little") * self.per
            yield from self.items[start:start + self.per]

    def close(self) -> None:
        os.close(self.fd)


class _Locked:
    """Items handed out across threads of this process."""

    def __init__(self, items: Sequence[T]) -> None:
        self._items = iter(items)
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[T]:
        end = object()
        while True:
            with self._lock:
                item = next(self._items, end)
            if item is end:
                return
            yield item  # type: ignore[misc]


def _may_fork() -> bool:
    from ..platforms import current

    return current().forks_workers and threading.active_count() == 1


def _in_processes(shares: Sequence[Iterable[T]], work: Work) -> list[R]:
    pending: dict[int, int] = {}  # child pid -> read end of its result pipe
    try:
        for share in shares[1:]:
            pid, fd = _fork(share, work)
            pending[pid] = fd
        results = [work(shares[0], False)]
        for pid in list(pending):
            results.append(_collect(pid, pending.pop(pid)))
        return results
    except BaseException:
        for pid in pending:  # the caller is about to clean up: no child may still be writing
            _kill(pid)
        for pid, fd in pending.items():
            os.close(fd)
            os.waitpid(pid, 0)
        raise


def _fork(share: Iterable[T], work: Work) -> tuple[int, int]:
    """Start a child doing ``work(share, True)``; return (pid, read end of its result pipe)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write)
        return pid, read
    # The child: never returns into the parent's code, never runs its exit handlers or flushes its buffers.
    status = 1
    try:
        os.close(read)
        try:
            payload = b"r" + marshal.dumps(work(_while_parent_lives(share, os.getppid()), True))
        except BaseException as error:
            payload = b"e" + _pickled_error(error)
        view = memoryview(payload)
        while view:
            view = view[os.write(write, view):]
        status = 0
    finally:
        os._exit(status)


def _while_parent_lives(share: Iterable[T], parent: int) -> Iterator[T]:
    """The items of ``share``, each only while ``parent`` still runs: a worker of a killed seeding
    stops at once (its parent's cleanup, or the next run's, removes what it wrote)."""
    for item in share:
        if os.getppid() != parent:
            os._exit(1)
        yield item


def _pickled_error(error: BaseException) -> bytes:
    import pickle  # only when failing: exceptions are not plain values

    try:
        return pickle.dumps(error)
    except Exception:  # an exception that cannot travel: its text does
        return pickle.dumps(MaterializeError(f"a linking process failed: {error!r}."))


def _collect(pid: int, fd: int) -> Any:
    """The result of the child ``pid`` (re-raising its exception); the child is reaped either way,
    and killed first if this process is interrupted while waiting for it."""
    chunks = []
    try:
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    except BaseException:
        _kill(pid)
        raise
    finally:
        os.close(fd)
        status = os.waitpid(pid, 0)[1]
    if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):  # it wrote its result whole, or nothing
        how = (f"by signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
               else f"with status {os.WEXITSTATUS(status)}")
        raise MaterializeError(f"a linking process ended {how} before it finished.",
                               "What it wrote is removed; run again.")
    payload = b"".join(chunks)
    if payload[:1] == b"r":
        return marshal.loads(payload[1:])
    import pickle

    raise pickle.loads(payload[1:])


def _kill(pid: int) -> None:
    import signal

    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
