"""Store maintenance behind ``holoclone store``: info, verify, gc, manifest, export, import.

Every function here takes an opened :class:`~holoclone_venv.store.Store` and
returns a plain result object; the CLI turns results into text or JSON.
Functions that change the store hold its ``store`` lock for their whole run
(seeders take it briefly to write a ref), so nothing a seeder has just
registered is removed under it.

Which environments keep things alive (gc, info): a ref
``refs/<id>.json`` is *live* when its environment directory exists and

* its ``pyvenv.cfg`` has a ``holoclone`` key (written at the end of seeding)
  and, when it names a ``holoclone_store``, that store is this one; or
* the ref is younger than :data:`REF_GRACE` seconds: seeding writes the ref
  before it materializes and ``pyvenv.cfg`` gets its ``holoclone`` key only
  at the end, so an environment being created right now is kept.

An environment deleted, or re-created by another seeder or from another
store, no longer keeps anything.  Link counts are never consulted: a reflinked
or copied environment does not raise them.

Bundles (``export``/``import``) are tar files (gzip when the name ends in
``.gz``/``.tgz``, xz for ``.xz``) holding, in this order::

    holoclone-bundle.json        {"format": 1, "catalogs": [keys]}
    objects/ab/<62 hex>[.x]      objects, each checked against its digest on import
    catalogs/<key>.json          catalogs, written last
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import os
import re
import shutil
import stat
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .catalog import EXECUTABLE, SOURCE_MTIME, Catalog
from .errors import HoloCloneError, StoreError
from .store import Store, hash_file

Progress = Callable[[int, int], None]
#: Seconds during which a ref counts as live although its pyvenv.cfg has no ``holoclone`` key yet.
REF_GRACE = 3600.0
BUNDLE_FORMAT = 1
BUNDLE_HEADER = "holoclone-bundle.json"
MANIFEST_KIND = "holoclone-manifest"
_CHUNK = 1 << 20
_MAX_CATALOG = 64 << 20
_OBJECT_NAME = re.compile(r"^([0-9a-f]{62})(\.x)?$")
_OBJECT_MEMBER = re.compile(r"^objects/([0-9a-f]{2})/([0-9a-f]{62})(\.x)?$")
_CATALOG_MEMBER = re.compile(r"^catalogs/([0-9a-f]{64}-[A-Za-z0-9._-]+)\.json$")
# FIEMAP extent flags whose physical offset is not a real, shareable disk location.
_NOT_LOCATED = 0x2 | 0x200 | 0x400  # UNKNOWN, DATA_INLINE, DATA_TAIL
_SHARED = 0x2000


def open_store(path: str, lock_timeout: float) -> Store:
    """Open an existing store for maintenance; raise :class:`StoreError` when there is none."""
    store = Store(path, lock_timeout)
    if not os.path.lexists(store.root):
        raise StoreError(f"no holoclone store at {store.root}.",
                         "Pass the right --store DIR (or set VIRTUALENV_HOLOCLONE_STORE); seeding creates it.")
    store.check(create=False)
    return store


def _maintenance_lock(store: Store):
    return store.lock("store", "store maintenance or a seeder writing a ref")


def object_name(digest: str, executable: bool) -> str:
    """How manifests and bundles name an object: its digest, plus ``.x`` when executable."""
    return digest + (".x" if executable else "")


# -- space -------------------------------------------------------------------------------------
def _extents_function():
    """The platform module's FIEMAP-style ``extents(path)``, or None where there is none."""
    from .platforms import platform_module_name

    name = platform_module_name()
    if not name:
        return None
    try:
        return getattr(importlib.import_module(name), "extents", None)
    except ImportError:
        return None


@dataclass
class Space:
    """Bytes on disk.  ``method`` says how they were counted: ``extents`` (shared data once) or ``blocks``."""

    apparent: int = 0
    physical: int = 0
    method: str = "extents"

    def as_dict(self) -> dict:
        return {"apparent": self.apparent, "physical": self.physical, "method": self.method}


def measure(paths: Iterable[str], exclusive: bool = False, progress: Progress | None = None,
            total: int = 0) -> Space:
    """Apparent and physical size of ``paths``, data shared between them counted once.

    Physical size comes from the files' extents (FIEMAP on Linux): extents at
    the same physical place are counted once.  Where extents are unavailable
    (tmpfs, other platforms) it falls back to allocated blocks, which count
    shared data once per file, and ``method`` says ``blocks``.

    With ``exclusive``, only what removing the files would free is counted:
    extents shared with anything (a reflinked environment) and files with more
    than one hardlink are left out.
    """
    extents = _extents_function()
    space = Space()
    ranges: list[tuple[int, int]] = []
    unlocated = 0
    done = 0
    for path in paths:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        space.apparent += st.st_size
        done += st.st_size
        if progress:
            progress(done, total)
        if exclusive and st.st_nlink > 1:
            continue
        found = None
        if extents is not None and st.st_size:
            try:
                found = extents(path)
            except OSError:
                found = None
        if found is None:
            if st.st_size:
                space.method = "blocks"
            unlocated += getattr(st, "st_blocks", (st.st_size + 4095) // 4096 * 8) * 512
            continue
        for _, physical, length, flags in found:
            if exclusive and flags & _SHARED:
                continue
            if flags & _NOT_LOCATED:
                unlocated += length
            else:
                ranges.append((physical, physical + length))
    ranges.sort()
    end = -1
    for start, stop in ranges:
        if start >= end:
            space.physical += stop - start
            end = stop
        elif stop > end:
            space.physical += stop - end
            end = stop
    space.physical += unlocated
    return space


# -- environments ------------------------------------------------------------------------------
@dataclass
class Ref:
    """One ``refs/*.json``: the environment, its catalogs, and whether it still counts."""

    path: Path
    env: str
    catalogs: list[str]
    live: bool
    why: str

    def as_dict(self) -> dict:
        return {"ref": self.path.name, "env": self.env, "catalogs": self.catalogs, "live": self.live, "why": self.why}


def _pyvenv_cfg(env: str) -> dict[str, str] | None:
    try:
        text = Path(env, "pyvenv.cfg").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip().lower()] = value.strip()
    return values


def classify_refs(store: Store, now: float | None = None) -> list[Ref]:
    """Every ref with its liveness decided by the rule in this module's docstring."""
    now = time.time() if now is None else now
    refs = []
    for path, document in store.iter_refs():
        env = str(document.get("env") or "")
        catalogs = [str(c) for c in document.get("catalogs", []) if isinstance(c, str)]
        young = now - float(document.get("created") or 0) < REF_GRACE
        if not env:
            live, why = False, "unreadable ref"
        elif not os.path.isdir(env):
            live, why = False, "environment is gone"
        else:
            cfg = _pyvenv_cfg(env) or {}
            named = cfg.get("holoclone_store")
            if "holoclone" in cfg and named and os.path.realpath(named) != os.path.realpath(store.root):
                live, why = False, f"environment now uses the store {named}"
            elif "holoclone" in cfg:
                live, why = True, "holoclone environment"
            elif young:
                live, why = True, "being created (ref is recent)"
            else:
                live, why = False, "no longer a holoclone environment (no holoclone key in pyvenv.cfg)"
        refs.append(Ref(path, env, catalogs, live, why))
    return refs


# -- info --------------------------------------------------------------------------------------
@dataclass
class CatalogInfo:
    key: str
    name: str = ""
    version: str = ""
    tag: str = ""
    files: int = 0
    error: str = ""

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v != "" or k in ("key", "name")}


def _catalogs(store: Store) -> Iterator[tuple[str, Catalog | None, str]]:
    """``(key, catalog or None, error)`` for every catalog file."""
    for key, path in store.iter_catalogs():
        try:
            catalog = Catalog.from_json(path.read_bytes(), str(path))
        except (StoreError, OSError) as error:
            yield key, None, str(getattr(error, "message", error))
            continue
        if catalog.key != key:
            yield key, None, f"catalog {path} describes {catalog.key}, not {key}"
            continue
        yield key, catalog, ""


@dataclass
class StoreInfo:
    root: str
    objects: int
    space: Space
    catalogs: list[CatalogInfo]
    environments: list[Ref]

    def as_dict(self) -> dict:
        return {
            "store": self.root,
            "objects": self.objects,
            "size": self.space.as_dict(),
            "catalogs": [c.as_dict() for c in self.catalogs],
            "environments": [r.as_dict() for r in self.environments if r.live],
            "dead_refs": [r.as_dict() for r in self.environments if not r.live],
        }


def info(store: Store, progress: Progress | None = None) -> StoreInfo:
    """Objects, catalogs, size (apparent and physical) and the environments using the store."""
    paths = [str(path) for _, _, path in store.iter_objects()]
    total = sum(_size(p) for p in paths) if progress else 0
    space = measure(paths, progress=progress, total=total)
    catalogs = []
    for key, catalog, error in _catalogs(store):
        if catalog is None:
            catalogs.append(CatalogInfo(key, error=error))
        else:
            catalogs.append(CatalogInfo(key, catalog.name, catalog.version, catalog.tag, len(catalog.entries)))
    return StoreInfo(str(store.root), len(paths), space, catalogs, classify_refs(store))


def _size(path: str) -> int:
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0


# -- verify ------------------------------------------------------------------------------------
@dataclass
class Problem:
    """Something wrong in the store; ``repaired`` says whether ``--repair`` dealt with it."""

    kind: str  # corrupt, mode, stray, malformed, incomplete
    path: str
    detail: str
    repaired: bool = False

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class VerifyResult:
    objects: int = 0
    bytes: int = 0
    catalogs: int = 0
    problems: list[Problem] = field(default_factory=list)
    tmp_reclaimed: int = 0

    @property
    def unrepaired(self) -> list[Problem]:
        return [p for p in self.problems if not p.repaired]

    def as_dict(self) -> dict:
        return {
            "objects": self.objects,
            "bytes": self.bytes,
            "catalogs": self.catalogs,
            "problems": [p.as_dict() for p in self.problems],
            "tmp_reclaimed": self.tmp_reclaimed,
            "ok": not self.unrepaired,
        }


def verify(store: Store, repair: bool = False, progress: Progress | None = None) -> VerifyResult:
    """Re-hash every object, check modes, mtimes and catalogs; with ``repair`` remove what is broken.

    Checks: each object's content hashes to its name; it is read-only, has
    executable bits exactly when named ``.x``, and has mtime
    :data:`SOURCE_MTIME`; each catalog parses, is stored under its own key, and
    every object it names exists intact with the right size.  Repair removes
    corrupt objects, stray files and every catalog that is malformed or needs a
    missing or corrupt object (the next seeding re-imports its wheel), restores
    the mode and mtime of intact objects, and reclaims stale ``tmp/`` entries.
    """
    result = VerifyResult()
    with _maintenance_lock(store):
        intact: dict[tuple[str, bool], int] = {}
        files = []
        if store.objects.is_dir():
            for sub in sorted(store.objects.iterdir()):
                entries = sorted(sub.iterdir()) if sub.is_dir() and not sub.is_symlink() else [sub]
                for path in entries:
                    files.append((sub.name, path))
        total = sum(_size(str(p)) for _, p in files)
        for prefix, path in files:
            match = _OBJECT_NAME.match(path.name)
            st = path.lstat()
            if not (re.fullmatch("[0-9a-f]{2}", prefix) and match and stat.S_ISREG(st.st_mode) and path.parent != store.objects):
                problem = Problem("stray", str(path), "not a store object")
                if repair:
                    _remove(path)
                    problem.repaired = True
                result.problems.append(problem)
                continue
            digest, executable = prefix + match.group(1), bool(match.group(2))
            try:
                actual, _ = hash_file(path)
            except OSError as error:
                actual = f"unreadable ({error.strerror})"
            result.objects += 1
            result.bytes += st.st_size
            if progress:
                progress(result.bytes, total)
            if actual != digest:
                problem = Problem("corrupt", str(path), f"content hashes to {actual[:16]}..., not its name")
                if repair:
                    _remove(path)
                    problem.repaired = True
                result.problems.append(problem)
                continue
            intact[(digest, executable)] = st.st_size
            wanted = 0o555 if executable else 0o444
            if stat.S_IMODE(st.st_mode) != wanted or int(st.st_mtime) != SOURCE_MTIME:
                problem = Problem(
                    "mode", str(path),
                    f"mode {stat.S_IMODE(st.st_mode):o} mtime {int(st.st_mtime)}, expected {wanted:o} and {SOURCE_MTIME}",
                )
                if repair:
                    os.chmod(path, wanted)
                    os.utime(path, (SOURCE_MTIME, SOURCE_MTIME))
                    problem.repaired = True
                result.problems.append(problem)
        for key, catalog, error in _catalogs(store):
            result.catalogs += 1
            path = str(store.catalog_path(key))
            if catalog is None:
                problem = Problem("malformed", path, error)
            else:
                lacking = [
                    e.path for e in catalog.entries
                    if intact.get((e.digest, bool(e.flags & EXECUTABLE))) != e.size
                ]
                if not lacking:
                    continue
                problem = Problem(
                    "incomplete", path,
                    f"{catalog.name} {catalog.version}: {len(lacking)} objects missing or corrupt (e.g. {lacking[0]})",
                )
            if repair:
                store.remove_catalog(key)
                problem.repaired = True
            result.problems.append(problem)
        if repair:
            result.tmp_reclaimed = store.reclaim_tmp()
    return result


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        pass


# -- gc ----------------------------------------------------------------------------------------
@dataclass
class GcResult:
    dry_run: bool
    live: list[Ref]
    dead: list[Ref]
    catalogs: list[str]
    objects: int
    index: int
    tmp_reclaimed: int
    frees: Space

    def as_dict(self) -> dict:
        return {
            "dry_run": self.dry_run,
            "live_environments": [r.as_dict() for r in self.live],
            "dead_refs": [r.as_dict() for r in self.dead],
            "catalogs_removed": self.catalogs,
            "objects_removed": self.objects,
            "index_removed": self.index,
            "tmp_reclaimed": self.tmp_reclaimed,
            "frees": self.frees.as_dict(),
        }


def gc(store: Store, dry_run: bool = False, progress: Progress | None = None) -> GcResult:
    """Remove everything no live environment needs; with ``dry_run`` only say what would go.

    Keeps the catalogs named by live refs (and catalogs that cannot be read,
    which are ``verify --repair``'s business) and the objects they name.
    Removes dead refs, every other catalog, objects no kept catalog names,
    wheel-index entries and cached wheels (``wheels/``) of removed catalogs,
    and stale ``tmp/`` entries.  ``frees`` estimates the space returned: physical extents of the
    removed objects that nothing else shares.  Catalogs imported but not yet
    used by any environment (``store import``) are removed too, once they
    are older than :data:`REF_GRACE` (a seeder may be about to reference them).
    """
    with _maintenance_lock(store):
        refs = classify_refs(store)
        live = [r for r in refs if r.live]
        dead = [r for r in refs if not r.live]
        wanted = {key for ref in live for key in ref.catalogs}
        keep_objects: set[tuple[str, bool]] = set()
        keep_wheels: set[str] = set()
        drop_catalogs = []
        now = time.time()
        for key, catalog, _ in _catalogs(store):
            if catalog is None:
                continue
            # A young catalog may have just been imported by a seeder that has not written
            # its ref yet; like young refs, it is kept until REF_GRACE has passed.
            if key in wanted or now - _mtime(store.catalog_path(key)) < REF_GRACE:
                keep_objects |= catalog.objects()
                keep_objects |= {(digest, False) for digest in store.record_digests(key)}
                keep_wheels.add(catalog.wheel_sha256)
            else:
                drop_catalogs.append(key)
        drop_objects = [path for digest, exe, path in store.iter_objects() if (digest, exe) not in keep_objects]
        drop_index = []
        if store.index.is_dir():
            for path in store.index.iterdir():
                try:
                    digest = path.read_text(encoding="ascii").strip()
                except (OSError, UnicodeError):
                    digest = ""
                if digest not in keep_wheels:
                    drop_index.append(path)
        # Wheels kept for dependency sets (wheels/<sha256>/): a young one may belong to a
        # seeder that resolved but has not written its ref yet, as with refs.
        wheels = store.root / "wheels"
        if wheels.is_dir():
            for path in wheels.iterdir():
                if path.name not in keep_wheels and now - path.stat().st_mtime > REF_GRACE:
                    drop_index.append(path)
        paths = [str(p) for p in drop_objects]
        total = sum(_size(p) for p in paths) if progress else 0
        frees = measure(paths, exclusive=True, progress=progress, total=total)
        reclaimed = 0
        if not dry_run:
            for ref in dead:
                _remove(ref.path)
            # Catalogs first, objects after: a catalog never names a missing object.
            for key in drop_catalogs:
                store.remove_catalog(key)
            for path in drop_objects + drop_index:
                _remove(path)
            if store.objects.is_dir():
                for sub in store.objects.iterdir():
                    try:
                        sub.rmdir()  # only succeeds when empty
                    except OSError:
                        pass
            reclaimed = store.reclaim_tmp()
    return GcResult(dry_run, live, dead, drop_catalogs, len(drop_objects), len(drop_index), reclaimed, frees)


# -- manifest, export, import ------------------------------------------------------------------
def write_manifest(store: Store, output: str) -> int:
    """Write the names of every object the store holds (for ``export --have``); returns how many."""
    names = sorted(object_name(d, x) for d, x, _ in store.iter_objects())
    document = {"kind": MANIFEST_KIND, "format": BUNDLE_FORMAT, "store": str(store.root), "objects": names}
    _write_atomic(output, json.dumps(document, indent=0).encode())
    return len(names)


def read_manifest(path: str) -> set[str]:
    """Object names listed in a manifest written by :func:`write_manifest`."""
    try:
        document = json.loads(Path(path).read_bytes())
        if document.get("kind") != MANIFEST_KIND:
            raise ValueError("not a holoclone manifest")
        return {str(n) for n in document["objects"]}
    except FileNotFoundError:
        raise HoloCloneError(f"the manifest {path} does not exist.", "Write one with 'holoclone store manifest -o FILE'.") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise HoloCloneError(f"{path} is not a holoclone manifest ({error}).",
                             "Write one with 'holoclone store manifest -o FILE'.") from None


def select_catalogs(store: Store, selectors: list[str], everything: bool) -> list[Catalog]:
    """Catalogs by key, ``name`` or ``name==version`` (every tag of them); all with ``everything``.

    Raises :class:`HoloCloneError` for a selector that matches nothing.
    """
    found = {key: catalog for key, catalog, _ in _catalogs(store) if catalog is not None}
    if everything:
        return list(found.values())
    chosen: dict[str, Catalog] = {}
    for selector in selectors:
        name, _, version = selector.partition("==")
        wanted = _normalize(name)
        matches = [
            c for key, c in found.items()
            if key == selector or (_normalize(c.name) == wanted and (not version or c.version == version.strip()))
        ]
        if not matches:
            raise HoloCloneError(f"no catalog in {store.root} matches {selector!r}.",
                                 "'holoclone store info' lists the catalogs.")
        for catalog in matches:
            chosen[catalog.key] = catalog
    return list(chosen.values())


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


@dataclass
class ExportResult:
    output: str
    catalogs: list[str]
    objects: int
    omitted: int
    bytes: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _tar_mode(path: str, write: bool) -> str:
    if not write:
        return "r:*"
    if path.endswith((".gz", ".tgz")):
        return "w:gz"
    if path.endswith(".xz"):
        return "w:xz"
    return "w"


class _HashingReader(io.RawIOBase):
    """A file wrapper that hashes what is read through it."""

    def __init__(self, handle) -> None:
        self.handle = handle
        self.sha = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.sha.update(data)
        return data


def export(store: Store, catalogs: list[Catalog], output: str, have: set[str] | None = None,
           progress: Progress | None = None) -> ExportResult:
    """Write a bundle with ``catalogs`` and their objects, except those named in ``have``.

    Objects are re-hashed while written; a changed one stops the export
    (nothing is left at ``output``).  Raises :class:`HoloCloneError`.
    """
    have = have or set()
    needed: dict[tuple[str, bool], int] = {}
    for catalog in catalogs:
        for entry in catalog.entries:
            needed[(entry.digest, bool(entry.flags & EXECUTABLE))] = entry.size
    sending = sorted((k, s) for k, s in needed.items() if object_name(*k) not in have)
    total = sum(s for _, s in sending)
    staged = f"{output}.partial.{os.getpid()}"
    done = 0
    try:
        with tarfile.open(staged, _tar_mode(output, True), format=tarfile.PAX_FORMAT) as bundle:
            header = json.dumps({"format": BUNDLE_FORMAT, "catalogs": sorted(c.key for c in catalogs)}).encode()
            _add_bytes(bundle, BUNDLE_HEADER, header)
            for (digest, executable), size in sending:
                path = store.object_path(digest, executable)
                if not store.has_object(digest, size, executable):
                    raise StoreError(f"store object {path} is missing or was changed, so it cannot be exported.",
                                     "Run 'holoclone store verify --repair', then seed once to re-import it.")
                member = tarfile.TarInfo(f"objects/{digest[:2]}/{object_name(digest, executable)[2:]}")
                member.size = size
                member.mode = 0o555 if executable else 0o444
                member.mtime = SOURCE_MTIME
                with open(path, "rb") as handle:
                    reader = _HashingReader(handle)
                    bundle.addfile(member, reader)
                if reader.sha.hexdigest() != digest:
                    raise StoreError(f"store object {path} does not match its digest; nothing was exported.",
                                     "Run 'holoclone store verify --repair'.")
                done += size
                if progress:
                    progress(done, total)
            for catalog in catalogs:
                _add_bytes(bundle, f"catalogs/{catalog.key}.json", catalog.to_json())
        os.replace(staged, output)
    except OSError as error:
        raise HoloCloneError(f"cannot write the bundle {output}: {error.strerror or error}.") from None
    finally:
        try:
            os.unlink(staged)
        except FileNotFoundError:
            pass
    return ExportResult(output, [c.key for c in catalogs], len(sending), len(needed) - len(sending), total)


def _add_bytes(bundle: tarfile.TarFile, name: str, data: bytes) -> None:
    member = tarfile.TarInfo(name)
    member.size = len(data)
    member.mode = 0o644
    member.mtime = int(time.time())
    bundle.addfile(member, io.BytesIO(data))


@dataclass
class ImportResult:
    bundle: str
    catalogs: list[str]
    objects: int
    present: int
    bytes: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def import_bundle(store: Store, bundle_path: str, progress: Progress | None = None) -> ImportResult:
    """Add a bundle's objects and catalogs to ``store``: all of them, or nothing.

    Every member name is checked before anything is read from it (only the
    bundle header, ``objects/ab/<62 hex>[.x]`` and ``catalogs/<key>.json``
    regular files are accepted).  Objects the store already has are skipped;
    the others are streamed into a staging directory while hashed.  Only when
    every object matched its digest and every catalog parsed and has all its
    objects (in the bundle or the store) are objects adopted and, last,
    catalogs written.  Raises :class:`HoloCloneError` naming the failing member.
    """
    store.check(create=True)
    store.require_writable(f"the bundle {bundle_path}")
    try:
        archive = tarfile.open(bundle_path, _tar_mode(bundle_path, False))
    except FileNotFoundError:
        raise HoloCloneError(f"the bundle {bundle_path} does not exist.") from None
    except (tarfile.TarError, OSError, EOFError) as error:
        raise HoloCloneError(f"{bundle_path} is not a holoclone bundle ({error}).",
                             "Make one with 'holoclone store export'.") from None
    stage = store.staging_dir("import")
    staged: dict[tuple[str, bool], str] = {}
    catalogs: list[Catalog] = []
    present = 0
    done = 0
    total = os.path.getsize(bundle_path)
    try:
        with archive:
            first = True
            for member in archive:
                name = member.name
                if first:
                    first = False
                    if name != BUNDLE_HEADER or not member.isreg():
                        raise _bad(bundle_path, name, "the bundle does not start with its header")
                    _read_header(archive, member, bundle_path)
                    continue
                if not member.isreg():
                    raise _bad(bundle_path, name, "not a regular file")
                obj = _OBJECT_MEMBER.match(name)
                cat = _CATALOG_MEMBER.match(name)
                if obj:
                    digest, executable = obj.group(1) + obj.group(2), bool(obj.group(3))
                    if store.has_object(digest, member.size, executable):
                        present += 1
                        continue
                    target = str(stage / object_name(digest, executable))
                    actual = _stream(archive, member, target)
                    if actual != digest:
                        raise _bad(bundle_path, name, f"its content hashes to {actual[:16]}..., not its name")
                    staged[(digest, executable)] = target
                    done += member.size
                    if progress:
                        progress(min(done, total), total)
                elif cat:
                    if member.size > _MAX_CATALOG:
                        raise _bad(bundle_path, name, "catalog too large")
                    data = archive.extractfile(member).read()
                    catalog = Catalog.from_json(data, f"{bundle_path}:{name}")
                    if catalog.key != cat.group(1):
                        raise _bad(bundle_path, name, f"it describes {catalog.key}")
                    catalogs.append(catalog)
                else:
                    raise _bad(bundle_path, name, "unexpected or unsafe path")
            if first:
                raise _bad(bundle_path, "(none)", "the bundle is empty")
        for catalog in catalogs:
            for digest, executable in sorted(catalog.objects()):
                size = next(e.size for e in catalog.entries if e.digest == digest)
                if (digest, executable) not in staged and not store.has_object(digest, size, executable):
                    raise HoloCloneError(
                        f"the bundle {bundle_path} lacks object {object_name(digest, executable)} of "
                        f"{catalog.name} {catalog.version} and the store does not have it; nothing was imported.",
                        "Export again without --have, or with a manifest of this store.",
                    )
        with _maintenance_lock(store):
            for (digest, executable), path in staged.items():
                size = os.path.getsize(path)
                if not store.has_object(digest, size, executable):
                    store.adopt_object(path, digest, executable)
            for catalog in catalogs:
                store.write_catalog(catalog)
    except (tarfile.TarError, EOFError) as error:
        raise HoloCloneError(f"the bundle {bundle_path} is truncated or damaged ({error}); nothing was imported.") from None
    except StoreError as error:
        if "malformed" in error.message:
            raise HoloCloneError(f"{error.message} Nothing was imported.") from None
        raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return ImportResult(bundle_path, [c.key for c in catalogs], len(staged), present, done)


def _read_header(archive: tarfile.TarFile, member: tarfile.TarInfo, bundle_path: str) -> None:
    try:
        header = json.loads(archive.extractfile(member).read(1 << 20))
        version = int(header["format"])
    except (ValueError, KeyError, TypeError) as error:
        raise _bad(bundle_path, member.name, f"unreadable header ({error})") from None
    if version > BUNDLE_FORMAT:
        raise HoloCloneError(
            f"the bundle {bundle_path} has format {version}, newer than this holoclone-venv understands ({BUNDLE_FORMAT}).",
            "Upgrade holoclone-venv.",
        )


def _stream(archive: tarfile.TarFile, member: tarfile.TarInfo, target: str) -> str:
    """Copy a member to a new file while hashing it; returns the sha256."""
    sha = hashlib.sha256()
    source = archive.extractfile(member)
    with open(target, "xb") as handle:
        for block in iter(lambda: source.read(_CHUNK), b""):
            sha.update(block)
            handle.write(block)
    return sha.hexdigest()


def _bad(bundle: str, member: str, why: str) -> HoloCloneError:
    return HoloCloneError(f"bundle {bundle}: member {member!r} was refused ({why}); nothing was imported.",
                          "Make the bundle again with 'holoclone store export'.")


def _write_atomic(path: str, data: bytes) -> None:
    staged = f"{path}.partial.{os.getpid()}"
    try:
        with open(staged, "wb") as handle:
            handle.write(data)
        os.replace(staged, path)
    except OSError as error:
        try:
            os.unlink(staged)
        except OSError:
            pass
        raise HoloCloneError(f"cannot write {path}: {error.strerror or error}.") from None
