"""Import a wheel into the store, once: validate, stage, compile, adopt objects, write the catalog.

Nothing reaches the store before the whole wheel is validated: every member
is streamed once into a private staging directory while its sha256 and size
are checked against RECORD; bytecode is compiled there; only then are objects
renamed into place, and the catalog last, both under the store lock that
gc holds.  A killed import leaves at most a
staging directory under ``tmp/``, reclaimed by the next run.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import stat
import zipfile
import zlib
from pathlib import Path
from typing import Callable

from .bytecode import compile_sources
from ..store.catalog import (
    EXECUTABLE,
    HAS_BYTECODE,
    PLACEHOLDER,
    SCHEMES,
    SHEBANG,
    Catalog,
    Entry,
    Script,
    catalog_key,
    safe_relpath,
)
from ..environment import Interpreter
from ..errors import StoreError, WheelError, os_error
from ..fsutil import hash_file
from ..store import StagedObject, Store

LOG = logging.getLogger("holoclone")
_CHUNK = 1 << 20
#: Files an installer writes per environment; they never come from the store.  (The
#: wheel's own RECORD is kept as an object the catalog names, to check entries against.)
_PER_ENV_METADATA = ("RECORD", "INSTALLER")

Progress = Callable[[int, int], None]


def ensure_catalog(
    store: Store, wheel: Path, interpreter: Interpreter, progress: Progress | None = None
) -> tuple[Catalog, bool]:
    """Return the wheel's catalog for ``interpreter``, importing the wheel if needed.

    Returns ``(catalog, imported)``.  Safe against concurrent runs: imports of
    one wheel are serialized by a lock, and the loser of a race finds the
    winner's catalog.  A catalog whose objects fail the cheap check (missing,
    resized, or modified after import) is re-imported, which heals the store.
    """
    store.reclaim_tmp_once()
    digest = store.wheel_digest(wheel)
    key = catalog_key(digest, interpreter.tag)
    catalog = store.load_catalog(key)
    if catalog is not None and not store.check_objects(catalog):
        return catalog, False
    store.require_writable(wheel.name)
    # Any write may fail (full disk, read-only remount): the lock file, the
    # staging directory, an object, the catalog.  All become one clear error.
    try:
        with store.import_lock(digest, wheel.name):
            catalog = store.load_catalog(key)
            if catalog is not None:
                damaged = store.check_objects(catalog)
                if not damaged:
                    return catalog, False
                LOG.warning(
                    "holoclone: %d store objects of %s were missing or changed (e.g. %s); re-importing it",
                    len(damaged), wheel.name, damaged[0],
                )
            stage = store.staging_dir(digest[:12])
            try:
                catalog = _import(store, wheel, digest, interpreter, stage, progress)
            finally:
                shutil.rmtree(stage, ignore_errors=True)
    except OSError as error:
        raise os_error(error, f"importing {wheel.name} into the store; nothing partial was kept",
                       disk=f"the store {store.root}", error_class=StoreError) from None
    return catalog, True


def _open_wheel(wheel: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, EOFError, ValueError) as error:
        raise WheelError(f"{wheel} is not a valid wheel: not a readable zip archive ({error}).",
                         "Delete it and download it again.") from None
    except OSError as error:
        raise WheelError(f"cannot read the wheel {wheel}: {error.strerror or error}.") from None


def _import(
    store: Store, wheel: Path, digest: str, interpreter: Interpreter, stage: Path, progress: Progress | None
) -> Catalog:
    from installer.records import InvalidRecordEntry, RecordEntry, parse_record_file
    from installer.sources import WheelFile
    from installer.utils import parse_metadata_file

    with _open_wheel(wheel) as archive:
        try:
            source = WheelFile(archive)
            dist_info = source.dist_info_dir
            source.validate_record(validate_contents=False)
            record_data = archive.read(f"{dist_info}/RECORD")
            record_rows = {row[0]: row for row in parse_record_file(record_data.decode("utf-8").splitlines())}
            wheel_meta = parse_metadata_file(source.read_dist_info("WHEEL"))
        except WheelError:
            raise
        except Exception as error:  # installer raises ValueError subclasses and KeyError for missing files
            raise WheelError(f"{wheel.name} is not a valid wheel: {_first_issue(error)}.",
                             "Rebuild or re-download it.") from None
        if not (wheel_meta.get("Wheel-Version") or "").strip().startswith("1."):
            raise WheelError(f"{wheel.name} is not a valid wheel: its WHEEL file has no Wheel-Version 1.x "
                             f"({(wheel_meta.get('Wheel-Version') or 'none').strip()}).", "Rebuild or re-download it.")
        root = "purelib" if (wheel_meta.get("Root-Is-Purelib") or "").strip().lower() == "true" else "platlib"
        data_prefix = f"{dist_info[: -len('.dist-info')]}.data/"
        infos = _checked_members(wheel, archive)
        # Progress counts files: each member extracted, then each source compiled.
        total = len(infos) + sum(1 for info in infos if info.filename.endswith(".py")) or 1
        done = 0
        entries: list[Entry] = []
        staged: dict[str, str] = {}  # entry key -> staged path
        sources: list[tuple[str, str]] = []
        for info in infos:
            name = info.filename
            done += 1
            if progress:
                progress(done, total)
            if name in (f"{dist_info}/{n}" for n in _PER_ENV_METADATA):
                continue
            scheme, rel = _scheme_of(name, root, data_prefix, wheel)
            row = record_rows.get(name)
            try:
                record = RecordEntry.from_elements(*row) if row else None
            except InvalidRecordEntry as error:
                raise WheelError(f"{wheel.name}: RECORD entry for {name} is invalid: {'; '.join(error.issues)}.") from None
            if record is None or record.hash_ is None or record.size is None:
                raise WheelError(f"{wheel.name}: {name} has no hash and size in RECORD.", "Rebuild the wheel.")
            target = stage / name
            target.parent.mkdir(parents=True, exist_ok=True)
            content_digest, head = _extract(archive, info, target, record, wheel)
            mode = info.external_attr >> 16
            flags = EXECUTABLE if mode & 0o111 else 0
            if scheme == "scripts" and head.startswith(b"#!python"):
                flags |= SHEBANG
            if scheme in ("purelib", "platlib") and rel.endswith(".py"):
                sources.append((str(target), rel))
            entries.append(Entry(scheme, rel, content_digest, record.size, flags))
            staged[f"{scheme}/{rel}"] = str(target)
        compiled = compile_sources(sources, interpreter, progress and (lambda n: progress(min(done + n, total), total)))
        if progress:
            progress(total, total)
        by_stage = {path: key for key, path in staged.items()}
        for source_path, pyc in compiled.items():
            scheme, rel = by_stage[source_path].split("/", 1)
            pyc_rel = os.path.relpath(pyc, stage / _scheme_root(scheme, root, data_prefix)).replace(os.sep, "/")
            sha, size = hash_file(pyc)
            entries.append(Entry(scheme, pyc_rel, sha, size, 0))
            staged[f"{scheme}/{pyc_rel}"] = pyc
        sources_compiled = {by_stage[p] for p in compiled}
        entries = [
            Entry(e.scheme, e.path, e.digest, e.size, e.flags | HAS_BYTECODE) if f"{e.scheme}/{e.path}" in sources_compiled else e
            for e in entries
        ]
        scripts = _scripts(source, interpreter, wheel)
    entries.sort(key=lambda e: (e.scheme, e.path.rpartition("/")[0], e.path))
    record_digest = hashlib.sha256(record_data).hexdigest()
    record_staged = stage / ".wheel-RECORD"
    record_staged.write_bytes(record_data)
    staged[".wheel-RECORD"] = str(record_staged)
    name, version = dist_info[: -len(".dist-info")].rsplit("-", 1)
    catalog = Catalog(
        name=name,
        version=version,
        wheel=wheel.name,
        wheel_sha256=digest,
        tag=interpreter.tag,
        dist_info=dist_info,
        root=root,
        record=record_digest,
        entries=tuple(entries),
        scripts=scripts,
    )
    # Durable, then adopted under the store lock, then the catalog last (the store's one way in).
    objects = [StagedObject(entry.digest, bool(entry.flags & EXECUTABLE), staged[f"{entry.scheme}/{entry.path}"],
                            entry.size) for entry in entries]
    objects.append(StagedObject(record_digest, False, str(record_staged), len(record_data)))
    store.commit(objects, [catalog], str(stage))
    return catalog


def _first_issue(error: Exception) -> str:
    issues = getattr(error, "issues", None)
    if issues:
        more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
        return f"{issues[0]}{more}"
    return str(error) or type(error).__name__


def _checked_members(wheel: Path, archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """The file members, after refusing anything that could escape or confuse an install."""
    seen: set[str] = set()
    members = []
    for info in archive.infolist():
        name = info.filename
        if name.endswith("/"):
            continue
        if not safe_relpath(name):
            raise WheelError(f"{wheel.name} contains an unsafe path {name!r} (absolute, '..' or a drive).",
                             "Do not install this wheel; it may be malicious.")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise WheelError(f"{wheel.name} contains a symbolic link {name!r}; wheels cannot carry links.",
                             "Do not install this wheel; it may be malicious.")
        folded = name.lower()
        if folded in seen:
            raise WheelError(f"{wheel.name} contains {name!r} twice.", "Rebuild the wheel.")
        seen.add(folded)
        members.append(info)
    return members


def _scheme_of(name: str, root: str, data_prefix: str, wheel: Path) -> tuple[str, str]:
    if not name.startswith(data_prefix):
        return root, name
    scheme, _, rel = name[len(data_prefix) :].partition("/")
    if scheme not in SCHEMES or not rel:
        raise WheelError(f"{wheel.name} has {name!r} in an unknown .data scheme {scheme!r}.", "Rebuild the wheel.")
    return scheme, rel


def _scheme_root(scheme: str, root: str, data_prefix: str) -> str:
    return "" if scheme == root else f"{data_prefix}{scheme}"


def _extract(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, record, wheel: Path) -> tuple[str, bytes]:
    """Stream one member to ``target``; check it against RECORD; return (sha256 hex, first bytes)."""
    sha = hashlib.sha256()
    other = None if record.hash_.name == "sha256" else hashlib.new(record.hash_.name)
    size = 0
    head = b""
    try:
        with archive.open(info) as src, open(target, "xb") as dst:
            while True:
                block = src.read(_CHUNK)
                if not block:
                    break
                if not head:
                    head = block[:16]
                size += len(block)
                if size > record.size:
                    raise WheelError(f"{wheel.name}: {info.filename} is larger than RECORD says ({record.size} bytes).",
                                     "The wheel is corrupt or was tampered with; do not install it.")
                sha.update(block)
                if other is not None:
                    other.update(block)
                dst.write(block)
    except (zipfile.BadZipFile, EOFError, zlib.error) as error:
        raise WheelError(f"{wheel.name}: {info.filename} cannot be read ({error}); the archive is truncated or corrupt.",
                         "Delete it and download it again.") from None
    import base64

    actual = (other or sha).digest()
    expected = base64.urlsafe_b64decode(record.hash_.value + "=" * (-len(record.hash_.value) % 4))
    if size != record.size or actual != expected:
        raise WheelError(f"{wheel.name}: {info.filename} does not match its RECORD hash or size.",
                         "The wheel is corrupt or was tampered with; do not install it.")
    return sha.hexdigest(), head


def _scripts(source, interpreter: Interpreter, wheel: Path) -> tuple[Script, ...]:
    """Launcher templates for the wheel's entry points, rendered for a placeholder interpreter."""
    try:
        text = source.read_dist_info("entry_points.txt")
    except KeyError:
        return ()
    return launchers(text, source.distribution, interpreter.version, wheel.name)


def launchers(entry_points: str, distribution: str, version: tuple[int, int], wheel_name: str) -> tuple[Script, ...]:
    """The launcher templates of ``entry_points.txt`` text, as the import makes them (also to check a catalog).

    Raises :class:`WheelError` for an entry point whose name is not a plain file name.
    """
    from installer.scripts import Script as Launcher
    from installer.utils import get_launcher_kind, parse_entrypoints

    kind = get_launcher_kind()
    placeholder = PLACEHOLDER.decode()
    scripts = []
    for name, module, attr, section in parse_entrypoints(entry_points):
        for variant in _variants(distribution, name, version):
            if not safe_relpath(variant) or "/" in variant:
                raise WheelError(f"{wheel_name} declares an entry point script {variant!r} that is not a plain file name.",
                                 "Do not install this wheel; it may be malicious.")
            file_name, data = Launcher(variant, module, attr, section).generate(placeholder, kind)
            scripts.append(Script(file_name, section, data))
    unique = {s.name: s for s in scripts}
    return tuple(unique[n] for n in sorted(unique))


def _variants(distribution: str, name: str, version: tuple[int, int]) -> list[str]:
    """pip's scripts for the target interpreter, as virtualenv writes them: pip, pipX, pip-X.Y, pipX.Y."""
    from ..store.catalog import canonical_name

    if canonical_name(distribution) == "pip" and name.startswith("pip"):
        major, minor = version
        return ["pip", f"pip{major}", f"pip-{major}.{minor}", f"pip{major}.{minor}"]
    return [name]
