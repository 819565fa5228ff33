"""The store's caches beside objects and catalogs: RECORD objects, wheel digests, kept wheels, resolutions, refs.

Part of :class:`~holoclone_venv.store.Store` (a mixin, so the store stays the
one owner of its folder names); see the layout in ``store/__init__.py``.
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path
from typing import Iterable, Iterator

from .catalog import is_sha256
from .parts import StoreParts
from ..fsutil import hash_file


class Caches(StoreParts):
    """RECORD objects, wheel index, kept wheels, resolutions and refs of a store (needs the store's folders)."""

    # Set by Store, with ``writable``, ``write_atomically``, ``put_bytes`` and ``object_path``.
    root: Path
    catalogs: Path
    index: Path
    refs: Path
    wheels: Path
    resolutions: Path

    # -- wheels: the digest index, and wheels kept for dependency sets -----------------------
    def wheel_digest(self, wheel: Path) -> str:
        """sha256 of a wheel file, remembered by (name, size, mtime) to avoid rehashing."""
        st = os.stat(wheel)
        cached = self.index / f"{wheel.name}-{st.st_size}-{st.st_mtime_ns}"
        digest = self._stored_digest(cached)
        if digest is not None:
            return digest
        digest, _ = hash_file(wheel)
        if self.writable:
            try:
                self.write_atomically(cached, digest.encode("ascii"))
            except OSError:
                pass  # only a cache: the next run hashes again
        return digest

    def iter_wheel_index(self) -> Iterator[tuple[Path, str]]:
        """Yield ``(index entry, wheel sha256)``; an entry that is not the owner's sha256 yields an empty digest."""
        for name in self.list_folder(self.index):
            path = self.index / name
            yield path, self._stored_digest(path) or ""

    def wheel_path(self, name: str, digest: str) -> Path:
        """Where a kept wheel of a dependency set lives (it may not exist)."""
        return self.wheels / digest / name

    def adopt_wheel(self, staged: Path, name: str, digest: str) -> Path:
        """Keep a downloaded wheel (staged under ``tmp/``) read-only under its digest; returns its path."""
        final = self.wheel_path(name, digest)
        if self.kept_wheel(name, digest) is None:
            os.chmod(staged, 0o444)
            self.make_folder(final.parent)
            os.replace(staged, final)  # tmp/ is in the store: same filesystem, atomic
        return final

    def kept_wheel(self, name: str, digest: str) -> Path | None:
        """The kept wheel ``name`` of sha256 ``digest`` when it is a regular file of the store's owner (or root)
        in a real folder, never reached through a link; None otherwise (resolve again, which replaces it).
        Its content is checked by the caller against ``digest``."""
        path = self.wheel_path(name, digest)
        try:
            if not self.is_folder(path.parent):
                return None
            st = os.lstat(path)
        except OSError:
            return None
        return path if stat.S_ISREG(st.st_mode) and self.trusted(st) else None

    def iter_wheels(self) -> Iterator[tuple[str, Path]]:
        """Yield ``(sha256, folder)`` of every kept wheel."""
        for name in self.list_folder(self.wheels):
            yield name, self.wheels / name

    # -- resolutions: requirements resolved to kept wheels -----------------------------------
    def load_resolution(self, key: str) -> dict | None:
        """The resolution document stored under ``key``, or None: absent, unreadable, or not the store owner's
        regular file (it decides which wheels are installed, so it is read like a catalog)."""
        data = self.read_trusted(self.resolutions / f"{key}.json")
        try:
            document = json.loads(data) if data is not None else None
        except (ValueError, RecursionError):
            return None
        return document if isinstance(document, dict) else None

    def write_resolution(self, key: str, document: dict) -> None:
        self.write_atomically(self.resolutions / f"{key}.json", json.dumps(document, indent=1).encode("utf-8"))

    def iter_resolutions(self) -> Iterator[tuple[str, Path, dict | None]]:
        """Yield ``(key, path, document or None)`` for every resolution."""
        for name in sorted(self.list_folder(self.resolutions)):
            if name.endswith(".json"):
                key = name[: -len(".json")]
                yield key, self.resolutions / name, self.load_resolution(key)

    # -- environments that use the store -----------------------------------------------------
    def add_ref(self, env_dir: str, catalog_keys: Iterable[str], template: str | None = None) -> str:
        """Record that ``env_dir`` was made from these catalogs (and template); returns the ref id."""
        import hashlib

        env_dir = os.path.abspath(env_dir)
        ref_id = hashlib.sha256(os.fsencode(env_dir)).hexdigest()[:32]
        document = {"env": env_dir, "catalogs": sorted(set(catalog_keys)), "created": time.time()}
        if template:
            document["template"] = template
        self.write_atomically(self.refs / f"{ref_id}.json", json.dumps(document).encode("utf-8"))
        return ref_id

    def extend_ref(self, env_dir: str, catalog_keys: Iterable[str]) -> str:
        """Add catalogs to ``env_dir``'s ref (keeping those it has, and its template); returns the ref id."""
        import hashlib

        ref_id = hashlib.sha256(os.fsencode(os.path.abspath(env_dir))).hexdigest()[:32]
        old: dict = {}
        data = self.read_trusted(self.refs / f"{ref_id}.json")
        try:
            old = json.loads(data) if data else {}
        except (ValueError, RecursionError):
            old = {}
        listed = old.get("catalogs") if isinstance(old, dict) else None
        kept = listed if isinstance(listed, list) else []
        template = old.get("template") if isinstance(old, dict) and isinstance(old.get("template"), str) else None
        return self.add_ref(env_dir, [*map(str, kept), *catalog_keys], template)

    def iter_refs(self) -> Iterator[tuple[Path, dict]]:
        """Yield ``(ref file, document)``; unreadable refs yield an empty document."""
        for name in sorted(self.list_folder(self.refs)):
            if not name.endswith(".json"):
                continue
            path = self.refs / name
            data = self.read_trusted(path)
            try:
                document = json.loads(data) if data is not None else {}
            except (ValueError, RecursionError):
                document = {}
            yield path, document if isinstance(document, dict) else {}

    # -- RECORD objects: the shared part of a catalog's RECORD, per set of scheme paths -----
    def record_object(self, key: str, paths_id: str) -> str | None:
        """Path of the object holding catalog ``key``'s RECORD rows for ``paths_id``, if stored."""
        digest = self._stored_digest(self.catalogs / f"{key}.record-{paths_id}")
        if digest is not None and os.path.exists(self.object_path(digest)):
            return self.object_path(digest)
        return None

    def put_record_object(self, key: str, paths_id: str, data: bytes) -> str:
        """Store RECORD rows for catalog ``key`` and ``paths_id``; returns the object's path."""
        digest = self.put_bytes(data)
        self.write_atomically(self.catalogs / f"{key}.record-{paths_id}", digest.encode("ascii"))
        return self.object_path(digest)

    def record_digests(self, key: str) -> set[str]:
        """Digests of the RECORD objects kept for catalog ``key``."""
        found = set()
        for name in self.list_folder(self.catalogs):
            if not name.startswith(f"{key}.record-"):
                continue
            digest = self._stored_digest(self.catalogs / name)
            if digest is not None:
                found.add(digest)
        return found

    def _stored_digest(self, path: Path) -> str | None:
        """The digest an index file holds: read as the store owner's regular file (never through a
        link), and a sha256 in hex, since it names a path; None for anything else."""
        data = self.read_trusted(path)
        digest = data.decode("ascii", "replace").strip() if data is not None else ""
        return digest if is_sha256(digest) else None
