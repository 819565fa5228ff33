"""Deadlines for http(s) requests: a stalled or dripping server is cut off, a slow but steady one is not.

A socket timeout bounds each read, not a request: a server that sends one
byte every few seconds never trips it and holds a pull (or a seeding) for
ever.  So each request is also given a deadline that grows with what it
received: ``GRACE`` seconds for the connection, the headers and the first
bytes, plus one second per ``MIN_RATE`` bytes of body.  A transfer at least
that fast never meets its deadline, however long it is; a server that
drips, or stalls between reads, is cut off about ``GRACE`` seconds after
it fell below the rate.  One daemon thread per process watches every
request in flight and shuts down the socket of one past its deadline; the
blocked read then returns, and the request fails in one sentence.
"""

from __future__ import annotations

import socket
import threading
import time

#: Seconds a request has before its body must keep up with MIN_RATE.
GRACE = 30.0
#: Bytes a second a request's body must average, counted from the request's start.
MIN_RATE = 16 << 10
_TICK = 0.2


class Request:
    """One request in flight: ``got(n)`` after each block read; ``expired`` once the watchdog cut it off."""

    def __init__(self, sock: socket.socket, grace: float, rate: float) -> None:
        self.sock, self.grace, self.rate = sock, grace, rate
        self.started = time.monotonic()
        self.received = 0
        self.expired = False

    def got(self, count: int) -> None:
        self.received += count

    def deadline(self) -> float:
        return self.started + self.grace + self.received / self.rate

    def describe(self) -> str:
        """Why it was cut off, for the sentence the caller raises."""
        seconds = time.monotonic() - self.started
        return (f"it sent {self.received:,} bytes in {seconds:.0f} s, slower than the {self.rate / 1024:,.0f} KiB/s "
                f"a transfer must keep up after its first {self.grace:.0f} s")


class _Watchdog:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active: set[Request] = set()
        self.thread: threading.Thread | None = None

    def start(self, sock: socket.socket) -> Request:
        request = Request(sock, GRACE, MIN_RATE)  # read at each start: tests and callers may lower them
        with self.lock:
            self.active.add(request)
            if self.thread is None:  # runs only while requests are in flight
                self.thread = threading.Thread(target=self._run, name="holoclone-deadlines", daemon=True)
                self.thread.start()
        return request

    def stop(self, request: Request) -> None:
        with self.lock:
            self.active.discard(request)

    def _run(self) -> None:
        while True:
            time.sleep(_TICK)
            now = time.monotonic()
            with self.lock:
                if not self.active:
                    self.thread = None
                    return
                late = [request for request in self.active if not request.expired and now > request.deadline()]
                for request in late:
                    request.expired = True
            for request in late:
                try:  # the blocked read returns (EOF or an error); the socket is not used again
                    request.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


WATCHDOG = _Watchdog()
