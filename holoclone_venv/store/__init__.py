"""The content-addressed store: every file content once, catalogs that describe wheels.

This module is the only code that knows the store's folder names, file
formats and locks; everything else asks a :class:`Store`.

Layout (version :data:`LAYOUT`)::

    <store>/
      LAYOUT                     "holoclone-store <version>"
      objects/ab/<62 hex>        read-only file whose sha256 is ab<62 hex>
      objects/ab/<62 hex>.x      the same content with executable bits
      catalogs/<wheel sha256>-<tag>.json
      catalogs/<key>.record-<id> names the object holding catalog <key>'s RECORD rows
                                 for one set of install-scheme paths (see record.py)
      index/<wheel file name>-<size>-<mtime_ns>   holds that wheel's sha256
      refs/<env id>.json         an environment made from the store, and its catalogs
      wheels/<sha256>/<name>.whl wheels of dependency sets (see dependencies.py)
      resolutions/<key>.json     requirements resolved to those wheels, reused without pip
      install-plans/<key>.json   'holoclone install' plans: pip's answer for one set of inputs (plans.py)
      templates/<id>/            a sealed install root per set of catalogs (see templates.py)
      tmp/                       staging; anything here is incomplete by definition
      locks/

Invariants:

* An object appears under its final name only complete (staged, then renamed).
* A catalog is renamed into place only after every object it names is in place,
  so a catalog never points at a missing or partial object.
* Objects have mode 0444/0555 and mtime :data:`~holoclone_venv.store.catalog.FIXED_MTIME`;
  a different size or mtime means it was changed after import (the cheap check).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterator

from .catalog import EXECUTABLE, FIXED_MTIME, Catalog, OutdatedCatalogError, catalog_key
from ..errors import StoreError
from ..fsutil import write_atomic
from .locks import StoreLock
from . import folders
from .caches import Caches
from .folders import Folders
from .ingest import Ingest, StagedObject  # noqa: F401  (StagedObject: what commit takes)
from .objects import ObjectFiles
from .plans import Plans
from .staging import Staging
from .templates import Templates

LAYOUT = 1
_LAYOUT_PREFIX = "holoclone-store "


class Store(Folders, Staging, ObjectFiles, Ingest, Caches, Templates, Plans):
    """A store directory.  Opening one never writes; writes create what they need."""

    def __init__(self, root: str | os.PathLike[str], lock_timeout: float = 300.0) -> None:
        self.root = Path(os.path.abspath(root))
        self.objects = self.root / "objects"
        self.catalogs = self.root / "catalogs"
        self.index = self.root / "index"
        self.refs = self.root / "refs"
        self.wheels = self.root / "wheels"
        self.resolutions = self.root / "resolutions"
        self.templates = self.root / "templates"
        self.tmp = self.root / "tmp"
        self.locks = self.root / "locks"
        self.lock_timeout = lock_timeout
        self._owner: int | None = None
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
                write_atomic(marker, f"{_LAYOUT_PREFIX}{LAYOUT}\n".encode(), mode=0o644)
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

    def reseed_object(self, path: str) -> bool:
        """Replace the saturated object at ``path`` by a fresh copy of itself, staged under ``tmp/``
        (:mod:`holoclone_venv.platforms.reseed`).  False, and nothing changed, when ``path`` is not one of
        this store's objects, the store is read-only, or the copy fails: the caller then falls back."""
        if not path.startswith(f"{self.objects}/") or not self.writable:
            return False
        from ..platforms.reseed import reseed

        try:
            reseed(path, self.tmp_file("reseed"))
        except OSError:
            return False
        return True

    @property
    def owner(self) -> int | None:
        """The account that owns the store (None where the platform has no owners)."""
        if self._owner is None and hasattr(os, "getuid"):
            try:
                self._owner = os.stat(self.root).st_uid
            except OSError:
                return None
        return self._owner

    def trusted(self, st: os.stat_result) -> bool:
        """Whether a store file's owner may have written it: the store's owner, or root."""
        return self.owner is None or st.st_uid in (self.owner, 0)

    def intact(self, st: os.stat_result, size: int) -> bool:
        """The cheap check of an object's ``stat``: a regular file (not a link) of a trusted owner with
        ``size`` bytes, read-only, with the fixed mtime.  Anything else is damaged: it is imported
        again, never linked.  (Runs once per file of every seeding: kept to attribute tests.)"""
        owner = self.owner
        return (st.st_size == size and int(st.st_mtime) == FIXED_MTIME and not st.st_mode & 0o222
                and stat.S_ISREG(st.st_mode) and (owner is None or st.st_uid == owner or st.st_uid == 0))

    def has_object(self, digest: str, size: int, executable: bool = False) -> bool:
        """Whether the object is in place and passes the cheap check (:meth:`intact`)."""
        try:
            return self.intact(os.lstat(self.object_path(digest, executable)), size)
        except OSError:
            return False

    def check_objects(self, catalog: Catalog) -> list[str]:
        """Cheap check of every object a catalog needs (:meth:`has_object`); returns the paths that fail it."""
        return [entry.path for entry in catalog.entries
                if not self.has_object(entry.digest, entry.size, bool(entry.flags & EXECUTABLE))]

    #: Whether :meth:`seal_object` works here: a mode and an mtime set through a descriptor
    #: (not on Windows, where objects are adopted unsealed and get both by path).
    seals_by_fd = os.chmod in os.supports_fd and os.utime in os.supports_fd

    @staticmethod
    def seal_object(fd: int, executable: bool) -> None:
        """Give a staged file, still open as ``fd`` after its last write, an object's mode and fixed mtime."""
        os.chmod(fd, 0o555 if executable else 0o444)
        os.utime(fd, (FIXED_MTIME, FIXED_MTIME))

    def adopt_object(self, staged: str, digest: str, executable: bool, sealed: bool = False) -> None:
        """Move a complete, verified staged file into place as an object.

        The staged file gets the object's mode and mtime first (unless it was
        ``sealed`` by :meth:`seal_object`), then is renamed: the rename is
        atomic, so the object is either absent or complete.  An object already
        in place is replaced by the same bytes, which is harmless: objects are
        never written in place, and an environment or reader holding the old
        file keeps it.
        """
        final = self.object_path(digest, executable)
        if not sealed:
            os.chmod(staged, 0o555 if executable else 0o444)
            os.utime(staged, (FIXED_MTIME, FIXED_MTIME))
        if folders.AT:  # into objects/ab/ as opened without following a link, never where a link points
            folder = folders.open_folder(self.root, Path(os.path.dirname(final)), create=True)
            try:
                os.replace(staged, os.path.basename(final), dst_dir_fd=folder)
            finally:
                os.close(folder)
            return
        from ..platforms.reseed import replace  # over a damaged but read-only object too (Windows)

        try:
            replace(staged, final)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(final), exist_ok=True)
            replace(staged, final)

    def put_bytes(self, data: bytes) -> str:
        """Store ``data`` as an object (if it is not there yet); return its digest."""
        import hashlib

        digest = hashlib.sha256(data).hexdigest()
        if not self.has_object(digest, len(data)):
            staged = self.tmp_file("object")
            with open(staged, "xb") as handle:
                handle.write(data)
            self.adopt_object(staged, digest, False)
        return digest

    # -- catalogs ----------------------------------------------------------------------------
    def catalog_path(self, key: str) -> Path:
        return self.catalogs / f"{key}.json"

    def load_catalog(self, key: str) -> Catalog | None:
        """The catalog stored under ``key``, or None when there is none, or only one of an older format
        or one another account wrote (a regular file of the store's owner or root is trusted; anything
        else is imported again and replaced).

        Raises :class:`StoreError` for a malformed catalog.
        """
        path = self.catalog_path(key)
        data = self.read_trusted(path)
        if data is None:
            return None
        try:
            catalog = Catalog.from_json(data, str(path))
        except OutdatedCatalogError:
            return None
        if catalog.key != key:
            # The owner's file, renamed or swapped by someone who can write into catalogs/: its
            # signature-free content decides what gets installed, so it must be the one its name promises.
            raise StoreError(
                f"the catalog {path} describes {catalog.name} {catalog.version} ({catalog.key}), not the wheel its "
                "name stands for.",
                "Run 'holoclone store verify --repair' to remove it (the next seeding imports the wheel again), "
                "and check who else can write into the store.",
            )
        return catalog

    def require_catalog(self, key: str) -> Catalog:
        """The catalog ``key``, which a seeding in progress relies on; :class:`StoreError` when it is gone."""
        catalog = self.load_catalog(key)
        if catalog is None:
            raise StoreError(f"catalog {key} was removed from the store while seeding.", "Run again.")
        return catalog

    def read_trusted(self, path: str | os.PathLike[str]) -> bytes | None:
        """The bytes of a store document (catalog, resolution, ref, plan, index entry) when it is a regular
        file of a trusted owner, opened without following a link, neither it nor a folder on its way;
        None when it is absent, a link, unreadable or another account's.  Raises :class:`StoreError` when a
        folder on its way is a link."""
        found = folders.read_file(self.root, Path(path))
        if found is None or not self.trusted(found[1]):
            return None
        return found[0]

    def stored_catalog(self, wheel: Path, tag: str) -> Catalog | None:
        """The stored catalog of ``wheel`` for interpreter ``tag``, or None when the wheel must be imported.

        Its objects are not looked at here: the materializer checks each as it
        links it (:meth:`intact`).  Raises :class:`StoreError` for a malformed catalog.
        """
        self.reclaim_tmp_once()
        return self.load_catalog(catalog_key(self.wheel_digest(wheel), tag))

    def write_catalog(self, catalog: Catalog) -> None:
        """Write a catalog atomically.  Call only once all its objects are in place."""
        self.write_atomically(self.catalog_path(catalog.key), catalog.to_json())

    def iter_catalogs(self) -> Iterator[tuple[str, Path]]:
        """Yield ``(key, path)`` of every catalog file."""
        for name in sorted(self.list_folder(self.catalogs)):
            if name.endswith(".json"):
                yield name[: -len(".json")], self.catalogs / name

    def remove_catalog(self, key: str) -> None:
        """Remove a catalog and the RECORD objects' index files that belong to it."""
        self.remove(self.catalog_path(key))
        for name in self.list_folder(self.catalogs):
            if name.startswith(f"{key}.record-"):
                self.remove(self.catalogs / name)

    # -- locks ---------------------------------------------------------------------------------
    def lock(self) -> StoreLock:
        """The store lock: held briefly by imports and seeders, by gc, verify and bundle import throughout.

        Whoever holds it may add or remove objects and catalogs; so an object
        found present under it cannot vanish before the catalog naming it is written.
        """
        return self._lock("store", "another holoclone process changing the store (seeding, gc, verify or import)")

    def import_lock(self, digest: str, wheel_name: str) -> StoreLock:
        """Serializes imports of one wheel, so the loser of a race finds the winner's catalog."""
        return self._lock(f"import-{digest[:24]}", f"another process importing {wheel_name}")

    def resolve_lock(self, key: str) -> StoreLock:
        """Serializes resolving one set of requirements."""
        return self._lock(f"resolve-{key[:24]}", "another process resolving the same requirements")

    def _lock(self, name: str, what: str) -> StoreLock:
        self.make_folder(self.locks)
        return StoreLock(str(self.locks / f"{name}.lock"), what, self.lock_timeout, self.open_lock_file)


def _foreign(st: os.stat_result) -> bool:
    """True when a store path is owned by someone other than this user or root."""
    getuid = getattr(os, "getuid", None)
    return getuid is not None and st.st_uid not in (getuid(), 0)
