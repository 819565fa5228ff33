"""Packs: all of one catalog's objects in one remote file, so a cold pull reads one stream, not thousands of files.

Format 1, all integers big-endian::

    pack    = MAGIC record* end
    MAGIC   = b"HCPACK" 0x00 0x01          8 bytes: a name, NUL, the format number
    record  = kind:u8 digest:32 size:u64 body
    kind    = 0 (an object) | 1 (an executable object)
    digest  = the object's sha256, raw (32 bytes)
    body    = the object's ``size`` bytes, as the store holds them
    end     = kind 0xFF, 32 zero bytes, the number of records:u64; nothing may follow it

A 41-byte header before each body, and no compression: the remote serves the
bytes the store holds (the per-object layout is not compressed either), and
on the links a fleet pulls over (a bucket in the same region, a LAN, loopback)
the stream is not what limits a pull; zlib would cost the puller's CPU, which
hashing and writing already use (docs/fleet.md).  The end record makes a pack
cut short at a record boundary detectable.

A pack is untrusted input: :class:`PackReader` checks each record header
against the signed catalog (named object, exact size, once) before it reads
the body, hashes every body, and refuses a pack that runs past what the
catalog's objects can take.  Any problem is one :class:`RemoteError`.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import struct
from typing import BinaryIO, Callable, Iterable, Mapping

from ..errors import RemoteError, os_error

MAGIC = b"HCPACK\x00\x01"
HEADER = struct.Struct(">B32sQ")
OBJECT, EXECUTABLE, END = 0, 1, 0xFF
_ZERO = bytes(32)
#: A RECORD's size is not in its catalog; this bounds it (a RECORD line is ~100 bytes a file: ~600,000 files).
RECORD_MAX = 64 << 20
_CHUNK = 1 << 20

Key = tuple[str, bool]  # (sha256 hex digest, executable)


def pack_size(sizes: Iterable[int]) -> int:
    """The size of a pack holding objects of ``sizes``: what a push uploads."""
    sizes = list(sizes)
    return len(MAGIC) + HEADER.size * (len(sizes) + 1) + sum(sizes)


def size_limit(expected: Mapping[Key, int | None]) -> int:
    """The most bytes a well-formed pack of these objects can have; a reader stops past it."""
    return pack_size(size if size is not None else RECORD_MAX for size in expected.values())


def write_pack(target: BinaryIO, objects: Iterable[tuple[str, bool, str]]) -> int:
    """Write a pack of ``(digest, executable, path)`` objects to ``target``; returns the bytes written.

    Each file is copied as it is (the caller knows it is the intact object);
    a file that changes size while copied raises OSError rather than
    writing a record whose size is wrong.
    """
    written = target.write(MAGIC)
    count = 0
    for digest, executable, path in objects:
        with open(path, "rb") as source:
            size = os.fstat(source.fileno()).st_size
            written += target.write(HEADER.pack(EXECUTABLE if executable else OBJECT, bytes.fromhex(digest), size))
            start = target.tell()
            shutil.copyfileobj(source, target, _CHUNK)
            if target.tell() - start != size:
                raise OSError(f"{path} changed size while it was packed")
        written += size
        count += 1
    return written + target.write(HEADER.pack(END, _ZERO, count))


def write_all(handle: io.FileIO, data: memoryview | bytes) -> None:
    """Write all of ``data`` through an unbuffered file (whose ``write`` may, in principle, write less)."""
    view = memoryview(data)
    while view:
        view = view[handle.write(view):]


class PackReader:
    """Parses a pack fed in chunks of any size (``feed``, then ``finish``), checking it against a signed catalog.

    ``expected`` maps every object the catalog names to its size (None: the
    RECORD, bounded by RECORD_MAX).  For each record, ``want(key)`` returns a
    staging path to write the body to, or None to read it through unwritten
    (already present, or another pack's).  ``done(key, path)`` is called once
    a written body hashed to its digest, after ``seal(fd, executable)`` (when
    given) while the file is still open; ``progress(n)`` with the bytes of
    each written block.  Everything raises :class:`RemoteError` (the
    caller removes its staging); call :meth:`close` in every case.
    """

    def __init__(self, origin: str, expected: Mapping[Key, int | None], want: Callable[[Key], str | None],
                 done: Callable[[Key, str], None], progress: Callable[[int], None], doing: str,
                 seal: Callable[[int, bool], None] | None = None) -> None:
        self.origin, self.expected, self.want, self.done, self.progress = origin, expected, want, done, progress
        self.seal = seal
        self.doing = doing  # completes "while ..." in a local write failure
        self.limit = size_limit(expected)
        self.read = 0
        self.records = 0
        self.seen: set[Key] = set()
        self.buffer = bytearray()
        self.need = len(MAGIC)  # header bytes still to collect; 0 while in a body
        self.started = self.ended = False
        self.key: Key = ("", False)
        self.remaining = 0
        self.sha = hashlib.sha256()
        self.path: str | None = None
        self.handle: io.FileIO | None = None

    def _bad(self, problem: str) -> RemoteError:
        return RemoteError(f"the pack {self.origin} {problem}; nothing was pulled.",
                              "Remove the pack from the remote (pulls then fetch objects one by one) and push again.")

    def feed(self, block: bytes) -> None:
        """Take the next bytes of the stream; raises on the first thing wrong."""
        self.read += len(block)
        if self.read > self.limit:
            raise self._bad(f"is larger than its catalog's objects can be ({self.limit:,} bytes)")
        view = memoryview(block)
        try:
            while view:
                if self.ended:
                    raise self._bad("has bytes after its end record")
                if self.need:
                    take = view[:self.need]
                    self.buffer += take
                    self.need -= len(take)
                    view = view[len(take):]
                    if not self.need:
                        self._header(bytes(self.buffer))
                        self.buffer.clear()
                else:
                    take = view[:self.remaining]
                    self.sha.update(take)
                    if self.handle is not None:
                        write_all(self.handle, take)
                        self.progress(len(take))
                    self.remaining -= len(take)
                    view = view[len(take):]
                    if not self.remaining:
                        self._body_done()
        except OSError as error:
            raise os_error(error, self.doing) from None

    def finish(self) -> None:
        """The stream ended: raise unless it ended exactly after the end record."""
        if not self.ended:
            where = ("inside its header" if not self.started else
                     "before its end record" if self.need and not self.buffer else "inside a record")
            raise self._bad(f"is truncated (it ends at byte {self.read:,}, {where})")

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None

    def _header(self, data: bytes) -> None:
        if not self.started:
            if data != MAGIC:
                raise self._bad("is not a holoclone pack of format 1 (its first bytes are wrong)")
            self.started = True
            self.need = HEADER.size
            return
        kind, raw, size = HEADER.unpack(data)
        where = f"at byte {self.read:,}"
        if kind == END:
            if raw != _ZERO or size != self.records:
                raise self._bad(f"has a malformed end record {where}")
            self.ended = True
            self.need = 0
            return
        if kind not in (OBJECT, EXECUTABLE):
            raise self._bad(f"has a malformed record header {where}")
        key = (raw.hex(), kind == EXECUTABLE)
        name = f"object {key[0][:16]}...{' (executable)' if key[1] else ''}"
        if key not in self.expected:
            raise self._bad(f"holds {name}, which its signed catalog does not name")
        if key in self.seen:
            raise self._bad(f"holds {name} twice")
        expected = self.expected[key]
        if expected is None and size > RECORD_MAX:
            raise self._bad(f"gives {name} {size:,} bytes, more than a RECORD may have ({RECORD_MAX:,})")
        if expected is not None and size != expected:
            raise self._bad(f"gives {name} {size:,} bytes where its signed catalog says {expected:,}")
        self.seen.add(key)
        self.records += 1
        self.key, self.remaining, self.sha = key, size, hashlib.sha256()
        self.path = self.want(key)
        self.handle = io.FileIO(self.path, "xb") if self.path is not None else None  # unbuffered: bodies come in blocks
        self.need = 0
        if not size:
            self._body_done()

    def _body_done(self) -> None:
        if self.sha.hexdigest() != self.key[0]:
            self.close()
            raise self._bad(f"holds object {self.key[0][:16]}... whose bytes do not match its digest")
        if self.handle is not None and self.seal is not None:
            self.seal(self.handle.fileno(), self.key[1])
        self.close()
        if self.path is not None:
            self.done(self.key, self.path)
        self.path = None
        self.need = HEADER.size
