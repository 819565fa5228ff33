"""A pull's downloads into the store's staging: each catalog's pack where it pays, else object by object.

Only downloading: every object is hashed while it is written into staging
and must match its digest and the size its signed catalog gives.  Adopting
the objects (and everything after) is the caller's, :func:`.sync.pull`.
"""

from __future__ import annotations

import hashlib
import io
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Container, Iterable, Mapping

from ..store.catalog import EXECUTABLE, Catalog
from ..errors import RemoteError
from . import layout
from .pack import RECORD_MAX, Key, PackReader, write_all
from .transport import Transport

#: Transfers at once.  Measured on thousands of small objects (docs/fleet.md): more
#: buys little against one server, fewer leaves the link idle between requests.
PARALLEL = 16
Progress = Callable[[int, int], None]


def object_sizes(catalog: Catalog) -> dict[Key, int | None]:
    """Every object ``catalog`` needs and its size; the RECORD's is None (the catalog does not give it)."""
    sizes: dict[Key, int | None] = {(catalog.record, False): None}
    sizes.update({(e.digest, bool(e.flags & EXECUTABLE)): e.size for e in catalog.entries})
    return sizes


def use_pack(sizes: Mapping[Key, int | None], missing: Container[Key]) -> bool:
    """Whether to stream a catalog's pack: when the store lacks more than half of its bytes.

    The pack reads every byte of the catalog once, in one request; object by
    object reads only what is missing, one request each (~900 a second
    against a server on loopback, docs/fleet.md).  Past half, the pack at
    most doubles the bytes read (a stream is cheap) and saves the requests;
    below it, the usual case is a new version sharing most files with one the
    store has, where fetching only the few changed objects is less work.
    """
    total = sum(size or 0 for size in sizes.values())
    lacking = sum(size or 0 for key, size in sizes.items() if key in missing)
    return lacking * 2 > total


def parallel(jobs: list, work: Callable) -> None:
    """Run ``work(job)`` for every job, PARALLEL at a time; the first failure stops the rest and is raised."""
    if not jobs:
        return
    with ThreadPoolExecutor(min(PARALLEL, len(jobs))) as pool:
        futures = [pool.submit(work, job) for job in jobs]
        try:
            for future in futures:
                future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


class Fetcher:
    """Downloads ``missing`` objects (``{key: size}``) into ``stage``; ``staged`` maps each to its file there,
    each given its object's mode and mtime by ``seal(fd, executable)`` (when given) after its last write.

    Thread-safe: packs of different catalogs stream at once, and an object
    two packs hold is written by whichever reaches it first (the other reads
    it through).
    """

    def __init__(self, remote: Transport, missing: Mapping[Key, int | None], stage: Path,
                 bar: Progress | None, doing: str, seal: Callable[[int, bool], None] | None) -> None:
        self.remote, self.missing, self.stage, self.bar, self.doing = remote, dict(missing), stage, bar, doing
        self.seal = seal
        self.total = sum(size or 0 for size in self.missing.values())
        self.staged: dict[Key, str] = {}
        self.claimed: set[Key] = set()
        self.lock = threading.Lock()
        self.done = 0
        self.packs = 0  # packs streamed
        self.pack_bytes = 0  # bytes read from them

    def run(self, catalogs: Iterable[Catalog]) -> dict[Key, str]:
        """Fetch every missing object: packs (where :func:`use_pack`) and single objects at once, then what the packs lacked."""
        packed = [(catalog, sizes) for catalog in catalogs
                  if use_pack(sizes := object_sizes(catalog), self.missing)]
        in_packs = {key for _, sizes in packed for key in sizes if key in self.missing}
        packed.sort(key=lambda item: -sum(size or 0 for size in item[1].values()))  # the longest stream starts first
        jobs: list = packed + [(key, size) for key, size in self.missing.items() if key not in in_packs]
        parallel(jobs, lambda job: self.pack(*job) if isinstance(job[0], Catalog) else self.object(job))
        # A pack may lack objects (or be absent: pushed by an older version); fetch those one by one.
        parallel([(key, size) for key, size in self.missing.items() if key not in self.staged], self.object)
        if self.bar:
            self.bar(self.total, self.total)
        return self.staged

    def _path(self, key: Key) -> str:
        return str(self.stage / f"{key[0]}{'.x' if key[1] else ''}")

    def _advance(self, count: int) -> None:
        with self.lock:
            self.done += count
            done = self.done
        if self.bar:
            self.bar(min(done, self.total), self.total)

    def _claim(self, key: Key) -> str | None:
        with self.lock:
            if key not in self.missing or key in self.claimed:
                return None
            self.claimed.add(key)
        return self._path(key)

    def staged_paths(self) -> list[str]:
        """The files staged so far, each complete: hashed, sealed and closed."""
        with self.lock:
            return list(self.staged.values())

    def _staged(self, key: Key, path: str) -> None:
        with self.lock:
            self.staged[key] = path

    def pack(self, catalog: Catalog, sizes: dict[Key, int | None]) -> None:
        """Stream ``catalog``'s pack, writing the objects still unclaimed; an absent pack is not an error."""
        name = layout.pack_name(catalog.key)
        reader = PackReader(f"{name} from {self.remote.url}", sizes, self._claim, self._staged, self._advance,
                            self.doing, self.seal)
        try:
            if self.remote.fetch(name, reader.feed):
                reader.finish()
                with self.lock:
                    self.packs += 1
                    self.pack_bytes += reader.read
        finally:
            reader.close()

    def object(self, job: tuple[Key, int | None]) -> None:
        """Stream one object into staging while hashing it; raise when it is absent or wrong."""
        (digest, executable), size = job
        name = layout.object_name(digest, executable)
        target = self._path((digest, executable))
        sha = hashlib.sha256()
        most = RECORD_MAX if size is None else size
        with io.FileIO(target, "xb") as handle:
            def write(block: bytes) -> None:
                if handle.tell() + len(block) > most:  # stopped at its signed size: nothing past it is read
                    raise RemoteError(f"object {name} from {self.remote.url} is larger than the {most:,} bytes "
                                         f"{'a RECORD may have' if size is None else 'its signed catalog gives'}; "
                                         "nothing was pulled.", "The remote copy is damaged or was altered: "
                                         "remove it there and push again.")
                sha.update(block)
                write_all(handle, block)
                self._advance(len(block))

            if not self.remote.fetch(name, write):
                raise RemoteError(f"the remote {self.remote.url} lacks object {name} that a signed catalog names; "
                                     "nothing was pulled.", "Push the catalog again from a complete store.")
            written = handle.tell()
            good = sha.hexdigest() == digest and (size is None or written == size)
            if good and self.seal is not None:
                self.seal(handle.fileno(), executable)
        if not good:
            raise RemoteError(f"object {name} from {self.remote.url} does not match its digest (it hashes to "
                                 f"{sha.hexdigest()[:16]}..., {written:,} bytes); nothing was pulled.",
                                 "The remote copy is damaged or was altered: remove it there and push again.")
        self._staged((digest, executable), target)
