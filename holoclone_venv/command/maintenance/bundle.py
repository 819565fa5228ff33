"""Bundles: catalogs and their objects moved between stores (``export``, ``import``, ``manifest``).

A bundle is a tar file (gzip when the name ends in ``.gz``/``.tgz``, xz for
``.xz``) holding, in this order::

    holoclone-bundle.json        {"format": 1, "catalogs": [keys]}
    objects/ab/<62 hex>[.x]      objects, each checked against its digest on import
    catalogs/<key>.json          catalogs, written last
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import time
from typing import IO
from dataclasses import dataclass

from ...store.catalog import EXECUTABLE, FIXED_MTIME, Catalog
from ...errors import BundleError, MalformedCatalog, StoreError
from ...remote.keys import bundle_payload  # signatures: the remote extra's cryptography is imported only to sign or check
from ...store import StagedObject, Store
from . import Progress, object_name, read_catalogs
from .manifest import read_manifest, write_manifest  # noqa: F401 - where they were first

BUNDLE_FORMAT = 1
BUNDLE_HEADER = "holoclone-bundle.json"
_CHUNK = 1 << 20
_MAX_CATALOG = 64 << 20
_OBJECT_MEMBER = re.compile(r"^objects/([0-9a-f]{2})/([0-9a-f]{62})(\.x)?$")
_CATALOG_MEMBER = re.compile(r"^catalogs/([0-9a-f]{64}-[A-Za-z0-9._-]+)\.json$")


def select_catalogs(store: Store, selectors: list[str], everything: bool) -> list[Catalog]:
    """Catalogs by key, ``name`` or ``name==version`` (every tag of them); all with ``everything``.

    Raises :class:`BundleError` for a selector that matches nothing.
    """
    from ...store.catalog import canonical_name

    found = {key: catalog for key, catalog, _ in read_catalogs(store) if catalog is not None}
    if everything:
        return list(found.values())
    chosen: dict[str, Catalog] = {}
    for selector in selectors:
        name, _, version = selector.partition("==")
        wanted = canonical_name(name.strip())
        matches = [
            c for key, c in found.items()
            if key == selector or (canonical_name(c.name) == wanted and (not version or c.version == version.strip()))
        ]
        if not matches:
            raise BundleError(f"no catalog in {store.root} matches {selector!r}.",
                                 "'holoclone store info' lists the catalogs.")
        for catalog in matches:
            chosen[catalog.key] = catalog
    return list(chosen.values())


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
    """tarfile's mode for ``path`` (typeshed types each mode literal apart, hence the ignores at its callers)."""
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
           progress: Progress | None = None, signer=None) -> ExportResult:
    """Write a bundle with ``catalogs`` and their objects, except those named in ``have``; ``signer`` signs it.

    Objects are re-hashed while written; a changed one stops the export
    (nothing is left at ``output``).  Raises :class:`BundleError`.
    """
    have = have or set()
    needed: dict[tuple[str, bool], int] = {}
    for catalog in catalogs:
        for entry in catalog.entries:
            needed[(entry.digest, bool(entry.flags & EXECUTABLE))] = entry.size
        try:  # the wheel's RECORD: its size is not in the catalog
            needed[(catalog.record, False)] = os.lstat(store.object_path(catalog.record)).st_size
        except OSError:
            needed[(catalog.record, False)] = -1  # reported as missing below
    sending = sorted((k, s) for k, s in needed.items() if object_name(*k) not in have)
    total = sum(s for _, s in sending)
    to_stdout = output == "-"
    staged = os.devnull if to_stdout else f"{output}.partial.{os.getpid()}"
    done = 0
    try:
        if to_stdout:
            import sys

            opened = tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.PAX_FORMAT)
        else:
            opened = tarfile.open(staged, _tar_mode(output, True), format=tarfile.PAX_FORMAT)  # type: ignore[call-overload]
        with opened as bundle:
            header = json.dumps({"format": BUNDLE_FORMAT, "catalogs": sorted(c.key for c in catalogs),
                                 **({"signatures": [signer.sign(bundle_payload(catalogs))]} if signer is not None else {})}).encode()
            _add_bytes(bundle, BUNDLE_HEADER, header)
            for (digest, executable), size in sending:
                path = store.object_path(digest, executable)
                if not store.has_object(digest, size, executable):
                    raise StoreError(f"store object {path} is missing or was changed, so it cannot be exported.",
                                     "Run 'holoclone store verify --repair', then seed once to re-import it.")
                member = tarfile.TarInfo(f"objects/{digest[:2]}/{object_name(digest, executable)[2:]}")
                member.size = size
                member.mode = 0o555 if executable else 0o444
                member.mtime = FIXED_MTIME
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
        if not to_stdout:
            os.replace(staged, output)
    except BrokenPipeError:
        raise
    except OSError as error:
        from ...errors import os_error

        raise os_error(error, f"writing the bundle {output}; nothing was kept") from None
    finally:
        if not to_stdout:
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
    imported: list[str]  # "name version" of each catalog the store did not have

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def import_bundle(store: Store, bundle_path: str, progress: Progress | None = None, trusted=None) -> ImportResult:
    """Add a bundle's objects and catalogs to ``store``: all of them, or nothing; ``trusted`` keys must have signed it.

    Every member name is checked before anything is read from it (only the
    bundle header, ``objects/ab/<62 hex>[.x]`` and ``catalogs/<key>.json``
    regular files are accepted).  Objects the store already has are skipped;
    the others are streamed into a staging directory while hashed.  Only when
    every object matched its digest and every catalog parsed and has all its
    objects (in the bundle or the store) are objects adopted and, last,
    catalogs written.  Raises :class:`BundleError` naming the failing member.
    """
    store.check(create=True)
    store.require_writable(f"the bundle {bundle_path}")
    try:
        archive = tarfile.open(bundle_path, _tar_mode(bundle_path, False))  # type: ignore[call-overload]
    except FileNotFoundError:
        raise BundleError(f"the bundle {bundle_path} does not exist.") from None
    except (tarfile.TarError, OSError, EOFError) as error:
        raise BundleError(f"{bundle_path} is not a holoclone bundle ({error}).",
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
                    signatures = _read_header(archive, member, bundle_path)
                    if trusted is not None:  # its catalogs come last: a bundle no trusted key could have
                        trusted.named(signatures, f"the bundle {bundle_path}")  # signed is refused first
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
        if trusted is not None:  # remote/keys.py: Untrusted unless a trusted key signed every catalog
            trusted.signer("\n".join(map(str, signatures)), bundle_payload(catalogs), f"the bundle {bundle_path}")
        fresh = _check_catalogs(store, bundle_path, catalogs, staged, signed=trusted is not None)
        named = set().union(*(catalog.objects() for catalog in catalogs))
        staged = {key: path for key, path in staged.items() if key in named}  # no catalog names the rest: not adopted
        store.commit([StagedObject(digest, executable, path) for (digest, executable), path in staged.items()],
                     fresh, str(stage))
    except (tarfile.TarError, EOFError) as error:
        raise BundleError(f"the bundle {bundle_path} is truncated or damaged ({error}); nothing was imported.") from None
    except MalformedCatalog as error:
        raise BundleError(f"{error.message} Nothing was imported.") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return ImportResult(bundle_path, [c.key for c in catalogs], len(staged), present, done,
                        [f"{c.name} {c.version}" for c in fresh])


def _check_catalogs(store: Store, bundle_path: str, catalogs: list[Catalog], staged: dict[tuple[str, bool], str],
                    signed: bool) -> list[Catalog]:
    """The bundle's catalogs the store lacks, after refusing any that could not be applied safely.

    Refused: a catalog whose objects are neither in the bundle nor the store; one that
    disagrees with its wheel's RECORD (unsigned: or whose bytecode and launchers are not
    what its sources give, ``regenerate.py``); one whose key the store has with another
    catalog (an import never replaces one: every new environment would run it).
    """
    from ...materialize.record import disagreements
    from ...wheels.regenerate import generated_disagreements

    def read_object(digest: str, executable: bool) -> bytes:
        with open(staged.get((digest, executable)) or store.object_path(digest, executable), "rb") as handle:
            return handle.read()

    fresh = []
    for catalog in catalogs:
        sizes = {(e.digest, bool(e.flags & EXECUTABLE)): e.size for e in catalog.entries}
        for key in sorted(catalog.objects()):
            if key not in staged and not store.present(*key, sizes.get(key)):
                raise BundleError(
                    f"the bundle {bundle_path} lacks object {object_name(*key)} of "
                    f"{catalog.name} {catalog.version} and the store does not have it; nothing was imported.",
                    "Export again without --have, or with a manifest of this store.",
                )
        problems = disagreements(catalog, read_object(catalog.record, False), read_object)
        problems += [] if signed or problems else generated_disagreements(catalog, read_object)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise BundleError(
                f"bundle {bundle_path}: catalog {catalog.key} ({catalog.name} {catalog.version}) disagrees with "
                f"its wheel's RECORD or sources: {problems[0]}{more}; nothing was imported.",
                "Do not use this bundle: it was altered, or not made by 'holoclone store export'.",
            )
        existing = store.load_catalog(catalog.key)
        if existing is None:
            fresh.append(catalog)
        elif existing != catalog:
            raise BundleError(
                f"bundle {bundle_path}: the store already has a different catalog {catalog.key} "
                f"({existing.name} {existing.version}); an import never replaces one, so nothing was imported.",
                "If the store's catalog is damaged, run 'holoclone store verify --repair' first.",
            )
    return fresh


def _member(archive: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    """The contents of a regular-file member (the callers checked that it is one)."""
    opened = archive.extractfile(member)
    if opened is None:
        raise ValueError(f"{member.name} is not a regular file")
    return opened


def _read_header(archive: tarfile.TarFile, member: tarfile.TarInfo, bundle_path: str) -> list:
    try:
        header = json.loads(_member(archive, member).read(1 << 20))
        version = int(header["format"])
    except (ValueError, KeyError, TypeError, RecursionError) as error:
        raise _bad(bundle_path, member.name, f"unreadable header ({str(error)[:120] or 'nested too deeply'})") from None
    if version > BUNDLE_FORMAT:
        raise BundleError(
            f"the bundle {bundle_path} has format {version}, newer than this holoclone-venv understands ({BUNDLE_FORMAT}).",
            "Upgrade holoclone-venv.",
        )
    return header["signatures"] if isinstance(header.get("signatures"), list) else []


def _stream(archive: tarfile.TarFile, member: tarfile.TarInfo, target: str) -> str:
    """Copy a member to a new file while hashing it; returns the sha256."""
    sha = hashlib.sha256()
    source = _member(archive, member)
    with open(target, "xb") as handle:
        for block in iter(lambda: source.read(_CHUNK), b""):
            sha.update(block)
            handle.write(block)
    return sha.hexdigest()


def _bad(bundle: str, member: str, why: str) -> BundleError:
    return BundleError(f"bundle {bundle}: member {member!r} was refused ({why}); nothing was imported.",
                          "Make the bundle again with 'holoclone store export'.")
