"""The content-addressed store: every file content once, catalogs that describe wheels.

Layout (version :data:`LAYOUT`)::

    <store>/
      LAYOUT                     "holoclone-store <version>"
      objects/ab/<62 hex>        read-only file whose sha256 is ab<62 hex>
      objects/ab/<62 hex>.x      the same content with executable bits
      catalogs/<wheel sha256>-<tag>.json
      catalogs/<wheel sha256>-<tag>.record-<layout>   the object holding that catalog's RECORD
                                 rows for one environment layout (see materializer.py)
      index/<wheel file name>-<size>-<mtime_ns>   holds that wheel's sha256
      refs/<env id>.json         an environment made from the store, and its catalogs
      wheels/<sha256>/<name>.whl wheels of dependency sets (see dependencies.py)
      resolutions/<key>.json     requirements resolved to those wheels, reused without pip
      tmp/                       staging; anything here is incomplete by definition
      locks/

Invariants:

* An object appears under its final name only complete (staged, then renamed).
* A catalog is renamed into place only after every object it names is in place,
  so a catalog never points at a missing or partial object.
* Objects have mode 0444/0555 and mtime :data:`~holoclone_venv.catalog.SOURCE_MTIME`;
  a different size or mtime means it was changed after import (the cheap check).
"""

from __future__ import annotations

import errno
import json
import os
import stat
import time
from pathlib import Path
from typing import Iterable, Iterator

from .catalog import SOURCE_MTIME, Catalog
from .errors import CorruptObjectError, StoreError, StoreLockTimeout

LAYOUT = 1
_LAYOUT_PREFIX = "holoclone-store "


class Store:
    """A store directory.  Opening one never writes; writes create what they need."""

    def __init__(self, root: str | os.PathLike[str], lock_timeout: float = 300.0) -> None:
        self.root = Path(os.path.abspath(root))
        self.objects = self.root / "objects"
        self.catalogs = self.root / "catalogs"
        self.index = self.root / "index"
        self.refs = self.root / "refs"
        self.tmp = self.root / "tmp"
        self.locks = self.root / "locks"
        self.lock_timeout = lock_timeout
        self._checked = False
        self._reclaimed = False

    # -- opening -----------------------------------------------------------------------------
    def check(self, create: bool) -> None:
        """Make sure the store is one this version can use; create it when asked.

        Raises :class:`StoreError` for a store of a newer layout, a path that is
        not a directory, a store owned by another user, or one that cannot be
        created.
        """
        if self._checked:
            return
        root = self.root
        try:
            st = os.lstat(root)
        except FileNotFoundError:
            if not create:
                raise StoreError(f"no holoclone store at {root}.", "Create an environment with it first, or name another store.")
            self._create()
            st = os.lstat(root)
        if stat.S_ISLNK(st.st_mode):
            target = os.stat(root)
            if _foreign(target) or _foreign(st):
                raise StoreError(
                    f"the store path {root} is a symlink owned by another user.",
                    "Remove it or choose another --holoclone-store.",
                )
            st = target
        if not stat.S_ISDIR(st.st_mode):
            raise StoreError(f"the store path {root} is not a directory.", "Choose another --holoclone-store.")
        if _foreign(st):
            raise StoreError(
                f"the store {root} belongs to another user (uid {st.st_uid}).",
                "Use a store of your own with --holoclone-store.",
            )
        layout_file = root / "LAYOUT"
        try:
            text = layout_file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            # Another process may be creating this store right now: its only
            # trace is its staged marker, so that does not make the directory foreign.
            if any(not entry.name.startswith(".LAYOUT.") for entry in root.iterdir()):
                raise StoreError(
                    f"{root} is not empty and is not a holoclone store (no LAYOUT file).",
                    "Choose an empty or new directory for --holoclone-store.",
                ) from None
            self._create()
            text = f"{_LAYOUT_PREFIX}{LAYOUT}"
        if not text.startswith(_LAYOUT_PREFIX) or not text[len(_LAYOUT_PREFIX) :].isdigit():
            raise StoreError(f"{layout_file} is not a holoclone layout marker.", "Choose another --holoclone-store.")
        version = int(text[len(_LAYOUT_PREFIX) :])
        if version > LAYOUT:
            raise StoreError(
                f"the store {root} has layout {version}, newer than this holoclone-venv understands ({LAYOUT}).",
                "Upgrade holoclone-venv, or use another --holoclone-store.",
            )
        self._checked = True

    def _create(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            marker = self.root / "LAYOUT"
            if not marker.exists():
                tmp = self.root / f".LAYOUT.{os.getpid()}"
                tmp.write_text(f"{_LAYOUT_PREFIX}{LAYOUT}\n", encoding="utf-8")
                os.replace(tmp, marker)
        except OSError as error:
            raise StoreError(
                f"cannot create the store at {self.root}: {error.strerror}.",
                "Pass a writable --holoclone-store.",
            ) from None

    @property
    def writable(self) -> bool:
        """Whether this process may add to the store."""
        return os.access(self.root, os.W_OK)

    def require_writable(self, why: str) -> None:
        """Raise a clear :class:`StoreError` when the store is read-only."""
        if not self.writable:
            raise StoreError(
                f"the store {self.root} is read-only, so {why} cannot be imported into it.",
                "Import it where the store is writable, or pass a writable --holoclone-store.",
            )

    # -- objects -----------------------------------------------------------------------------
    def object_path(self, digest: str, executable: bool = False) -> str:
        """Path of an object; it may not exist."""
        return f"{self.objects}/{digest[:2]}/{digest[2:]}{'.x' if executable else ''}"

    def has_object(self, digest: str, size: int, executable: bool = False) -> bool:
        """Cheap check: the object exists with the right size, mode and mtime."""
        try:
            st = os.stat(self.object_path(digest, executable))
        except OSError:
            return False
        return st.st_size == size and int(st.st_mtime) == SOURCE_MTIME and not st.st_mode & 0o222

    def check_objects(self, catalog: Catalog) -> list[str]:
        """Cheap check of every object a catalog needs; returns the paths that fail it."""
        from .catalog import EXECUTABLE

        bad = []
        for entry in catalog.entries:
            if not self.has_object(entry.digest, entry.size, bool(entry.flags & EXECUTABLE)):
                bad.append(entry.path)
        return bad

    def adopt_object(self, staged: str, digest: str, executable: bool) -> None:
        """Move a complete, verified staged file into place as an object.

        The staged file gets the object's mode and mtime first, then is renamed:
        the rename is atomic, so the object is either absent or complete.
        """
        final = self.object_path(digest, executable)
        os.chmod(staged, 0o555 if executable else 0o444)
        os.utime(staged, (SOURCE_MTIME, SOURCE_MTIME))
        try:
            os.replace(staged, final)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(final), exist_ok=True)
            os.replace(staged, final)

    def iter_objects(self) -> Iterator[tuple[str, bool, Path]]:
        """Yield ``(digest, executable, path)`` for every object file."""
        if not self.objects.is_dir():
            return
        for sub in sorted(self.objects.iterdir()):
            if not sub.is_dir():
                continue
            for path in sorted(sub.iterdir()):
                name = path.name
                executable = name.endswith(".x")
                yield sub.name + (name[:-2] if executable else name), executable, path

    # -- catalogs ----------------------------------------------------------------------------
    def catalog_path(self, key: str) -> Path:
        return self.catalogs / f"{key}.json"

    def load_catalog(self, key: str) -> Catalog | None:
        """The catalog stored under ``key``, or None when there is none."""
        path = self.catalog_path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        return Catalog.from_json(data, str(path))

    def write_catalog(self, catalog: Catalog) -> None:
        """Write a catalog atomically.  Call only once all its objects are in place."""
        self.write_atomically(self.catalog_path(catalog.key), catalog.to_json())

    def iter_catalogs(self) -> Iterator[tuple[str, Path]]:
        """Yield ``(key, path)`` of every catalog file."""
        if not self.catalogs.is_dir():
            return
        for path in sorted(self.catalogs.glob("*.json")):
            yield path.stem, path

    def remove_catalog(self, key: str) -> None:
        """Remove a catalog and the RECORD objects' index files that belong to it."""
        for path in [self.catalog_path(key), *self.catalogs.glob(f"{key}.record-*")]:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def record_digests(self, key: str) -> set[str]:
        """Digests of the RECORD objects kept for catalog ``key`` (one per environment layout)."""
        found = set()
        for path in self.catalogs.glob(f"{key}.record-*"):
            try:
                digest = path.read_text(encoding="ascii").strip()
            except OSError:
                continue
            if len(digest) == 64:
                found.add(digest)
        return found

    def put_bytes(self, data: bytes) -> str:
        """Store ``data`` as an object (if it is not there yet); return its digest."""
        import hashlib

        digest = hashlib.sha256(data).hexdigest()
        if not self.has_object(digest, len(data)):
            staged = self.tmp_file("object")
            with open(staged, "wb") as handle:
                handle.write(data)
            self.adopt_object(staged, digest, False)
        return digest

    # -- wheel index -------------------------------------------------------------------------
    def wheel_digest(self, wheel: Path) -> str:
        """sha256 of a wheel file, remembered by (name, size, mtime) to avoid rehashing."""
        st = os.stat(wheel)
        name = f"{wheel.name}-{st.st_size}-{st.st_mtime_ns}"
        cached = self.index / name
        try:
            digest = cached.read_text(encoding="ascii").strip()
            if len(digest) == 64:
                return digest
        except OSError:
            pass
        digest, _ = hash_file(wheel)
        if self.writable:
            try:
                self.write_atomically(cached, digest.encode("ascii"))
            except OSError:
                pass  # only a cache: the next run hashes again
        return digest

    # -- environments that use the store -----------------------------------------------------
    def add_ref(self, env_dir: str, catalog_keys: Iterable[str]) -> str:
        """Record that ``env_dir`` was made from these catalogs; returns the ref id."""
        import hashlib

        env_dir = os.path.abspath(env_dir)
        ref_id = hashlib.sha256(os.fsencode(env_dir)).hexdigest()[:32]
        document = {"env": env_dir, "catalogs": sorted(set(catalog_keys)), "created": time.time()}
        self.write_atomically(self.refs / f"{ref_id}.json", json.dumps(document).encode("utf-8"))
        return ref_id

    def iter_refs(self) -> Iterator[tuple[Path, dict]]:
        """Yield ``(ref file, document)``; unreadable refs yield an empty document."""
        if not self.refs.is_dir():
            return
        for path in sorted(self.refs.glob("*.json")):
            try:
                yield path, json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                yield path, {}

    # -- staging and locks -------------------------------------------------------------------
    def write_atomically(self, final: str | os.PathLike[str], data: bytes) -> None:
        """Put a small file in the store whole or not at all: staged under ``tmp/``, then renamed."""
        os.makedirs(os.path.dirname(final), exist_ok=True)
        staged = self.tmp_file(os.path.basename(final)[:40])
        with open(staged, "wb") as handle:
            handle.write(data)
        os.replace(staged, final)

    def tmp_file(self, label: str) -> str:
        """A fresh path under ``tmp/`` that no other process uses."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        return f"{self.tmp}/{label}.{os.getpid()}.{time.monotonic_ns()}"

    def staging_dir(self, label: str) -> Path:
        """A fresh staging directory, named so stale ones can be reclaimed."""
        path = Path(self.tmp_file(f"stage-{label}"))
        path.mkdir()
        return path

    def reclaim_tmp(self, older_than: float = 3600.0) -> int:
        """Remove staging leftovers of dead processes (or very old ones); returns how many."""
        import shutil

        removed = 0
        if not self.tmp.is_dir():
            return 0
        now = time.time()
        for path in self.tmp.iterdir():
            parts = path.name.rsplit(".", 2)
            pid = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None
            try:
                age = now - path.lstat().st_mtime
            except FileNotFoundError:
                continue
            if (pid is not None and pid != os.getpid() and not _alive(pid)) or age > older_than:
                if path.is_dir() and not path.is_symlink():
                    _make_writable(path)
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    try:
                        path.unlink()
                    except FileNotFoundError:
                        pass
                removed += 1
        return removed

    def reclaim_tmp_once(self) -> None:
        """Reclaim dead runs' staging the first time this store is used for seeding.

        A run killed while importing leaves its staging directory behind; the
        next run that opens the store removes it.  Costs one directory listing.
        """
        if self._reclaimed:
            return
        self._reclaimed = True
        if self.writable:
            try:
                self.reclaim_tmp()
            except OSError:
                pass  # only housekeeping: a later run tries again

    def lock(self, name: str, what: str) -> "_Lock":
        """An exclusive inter-process lock on ``locks/<name>.lock``.

        ``what`` says, in a message, what the lock protects.  Waiting longer than
        ``lock_timeout`` raises :class:`StoreLockTimeout` instead of hanging.
        """
        self.locks.mkdir(parents=True, exist_ok=True)
        return _Lock(str(self.locks / f"{name}.lock"), what, self.lock_timeout)


class _Lock:
    """A filelock that reports waits and turns timeouts into a clear error."""

    def __init__(self, path: str, what: str, timeout: float) -> None:
        from filelock import FileLock

        self._lock = FileLock(path)
        self.path = path
        self.what = what
        self.timeout = timeout

    def __enter__(self) -> _Lock:
        from filelock import Timeout

        try:
            try:
                self._lock.acquire(timeout=0)
                return self
            except Timeout:
                pass
            import logging

            # A warning, not info: virtualenv hides info by default, and a silent
            # wait of minutes looks like a hang.
            logging.getLogger("holoclone").warning("holoclone: waiting for %s (lock %s)", self.what, self.path)
            self._lock.acquire(timeout=self.timeout)
        except Timeout:
            raise StoreLockTimeout(
                f"gave up after {self.timeout:g} s waiting for {self.what} (lock {self.path}).",
                "Another holoclone process holds it; if none runs, the filesystem may not support locks: "
                "raise --holoclone-lock-timeout or move the store to a local disk.",
            ) from None
        except OSError as error:
            if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise StoreError(
                    f"cannot take the lock {self.path}: {error.strerror}.",
                    "The store is read-only here; pass a writable --holoclone-store.",
                ) from None
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def hash_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    """``(sha256 hex, size)`` of a file, read in 1 MiB blocks: the store's content address."""
    import hashlib

    sha = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
            size += len(block)
    return sha.hexdigest(), size


def _foreign(st: os.stat_result) -> bool:
    """True when a store path is owned by someone other than this user or root."""
    getuid = getattr(os, "getuid", None)
    return getuid is not None and st.st_uid not in (getuid(), 0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _make_writable(path: Path) -> None:
    for dirpath, dirnames, _ in os.walk(path):
        for name in dirnames:
            try:
                os.chmod(os.path.join(dirpath, name), 0o755)
            except OSError:
                pass


def corrupt(path: str, why: str) -> CorruptObjectError:
    """The error for an object that failed a check."""
    return CorruptObjectError(
        f"store object {path} was changed after import ({why}).",
        "Run 'holoclone store verify --repair'; the next run re-imports what it needs.",
    )
