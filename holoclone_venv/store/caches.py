"""The store's caches beside objects and catalogs: RECORD objects, wheel digests, kept wheels, resolutions, refs.

Part of :class:`~holoclone_venv.store.Store` (a mixin, so the store stays the
one owner of its folder names); see the layout in ``store/__init__.py``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Iterable, Iterator

from ..catalog import is_sha256
from ..fsutil import hash_file


class Caches:
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
        """Yield ``(index entry, wheel sha256)``; an unreadable entry yields an empty digest."""
        if not self.index.is_dir():
            return
        for path in self.index.iterdir():
            try:
                yield path, path.read_text(encoding="ascii").strip()
            except (OSError, UnicodeError):
                yield path, ""

    def wheel_path(self, name: str, digest: str) -> Path:
        """Where a kept wheel of a dependency set lives (it may not exist)."""
        return self.wheels / digest / name

    def adopt_wheel(self, staged: Path, name: str, digest: str) -> Path:
        """Keep a downloaded wheel (staged under ``tmp/``) read-only under its digest; returns its path."""
        final = self.wheel_path(name, digest)
        if not final.exists():
            os.chmod(staged, 0o444)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, final)  # tmp/ is in the store: same filesystem, atomic
        return final

    def iter_wheels(self) -> Iterator[tuple[str, Path]]:
        """Yield ``(sha256, folder)`` of every kept wheel."""
        if self.wheels.is_dir():
            for path in self.wheels.iterdir():
                yield path.name, path

    # -- resolutions: requirements resolved to kept wheels -----------------------------------
    def load_resolution(self, key: str) -> dict | None:
        """The resolution document stored under ``key``, or None (absent or unreadable)."""
        try:
            document = json.loads((self.resolutions / f"{key}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return document if isinstance(document, dict) else None

    def write_resolution(self, key: str, document: dict) -> None:
        self.write_atomically(self.resolutions / f"{key}.json", json.dumps(document, indent=1).encode("utf-8"))

    def iter_resolutions(self) -> Iterator[tuple[str, Path, dict | None]]:
        """Yield ``(key, path, document or None)`` for every resolution."""
        if self.resolutions.is_dir():
            for path in sorted(self.resolutions.glob("*.json")):
                yield path.stem, path, self.load_resolution(path.stem)

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
        data = self.read_trusted(self.refs / f"{ref_id}.json")  # type: ignore[attr-defined]
        try:
            old = json.loads(data) if data else {}
        except ValueError:
            old = {}
        kept = old.get("catalogs") if isinstance(old, dict) and isinstance(old.get("catalogs"), list) else []
        template = old.get("template") if isinstance(old, dict) and isinstance(old.get("template"), str) else None
        return self.add_ref(env_dir, [*map(str, kept), *catalog_keys], template)

    def iter_refs(self) -> Iterator[tuple[Path, dict]]:
        """Yield ``(ref file, document)``; unreadable refs yield an empty document."""
        if not self.refs.is_dir():
            return
        for path in sorted(self.refs.glob("*.json")):
            try:
                document = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
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
        for path in self.catalogs.glob(f"{key}.record-*"):
            digest = self._stored_digest(path)
            if digest is not None:
                found.add(digest)
        return found

    def _stored_digest(self, path: Path) -> str | None:
        """The digest an index file holds: read as the store owner's regular file (never through a
        link), and a sha256 in hex, since it names a path; None for anything else."""
        data = self.read_trusted(path)  # type: ignore[attr-defined]
        digest = data.decode("ascii", "replace").strip() if data is not None else ""
        return digest if is_sha256(digest) else None
