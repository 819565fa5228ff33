"""Catalogs: what one wheel installs for one interpreter, in terms of store objects.

A catalog is a JSON document written by the importer and read by the
materializer.  Entries are kept sorted by (scheme, directory) so the
materializer can create each directory once and visit it once.

Entry flags:

``EXECUTABLE``    the object is stored with its executable bits set.
``HAS_BYTECODE``  a ``.py`` file shipped with bytecode: its mtime must be
                  :data:`FIXED_MTIME` in every environment (see ``bytecode.py``).
``SHEBANG``       a ``.data/scripts`` file starting with ``#!python``: written per
                  environment with the environment's interpreter.

Everything in a catalog is checked when it is parsed (:meth:`Catalog.from_json`),
wherever it comes from: a path that could leave its install directory, a
scheme or root that is not an install scheme, a name that is not a
distribution name, or a ``dist_info`` that is not ``<name>-<version>.dist-info``
makes the whole catalog malformed, so nothing of it is ever applied.
"""

from __future__ import annotations

import json
import re
from typing import NamedTuple

from ..errors import MalformedCatalog, StoreError

#: Catalog format.  2 added ``record``; an older catalog is re-imported from its wheel.
FORMAT = 2
EXECUTABLE = 1
HAS_BYTECODE = 2
SHEBANG = 4
#: The install schemes of a wheel (as installer.utils.SCHEME_NAMES; spelled here so
#: that loading a catalog imports nothing more).
SCHEMES = ("purelib", "platlib", "headers", "scripts", "data")
#: Where a wheel's top level can go (its WHEEL file's Root-Is-Purelib).
ROOTS = ("purelib", "platlib")
#: mtime of every store object and of every materialized ``.py`` that has bytecode.
#: Timestamp-based .pyc files record their source's mtime; fixing it makes one
#: .pyc valid in every environment, hardlinked or cloned.
FIXED_MTIME = 1_000_000_000


class OutdatedCatalogError(StoreError):
    """A catalog of an older format: not wrong, but not usable; its wheel is imported again."""


class Entry(NamedTuple):
    """One file a wheel installs: where it goes, which object holds it.

    A tuple, not a dataclass: catalogs hold thousands and are loaded on every run.
    """

    scheme: str
    path: str  # posix path relative to the scheme's directory
    digest: str  # sha256 hex of the content
    size: int
    flags: int = 0


class Script(NamedTuple):
    """A console or GUI entry point, written per environment from ``template``.

    ``template`` is the launcher the script library produced for a placeholder
    interpreter (:data:`PLACEHOLDER`); the placeholder's shebang is replaced by
    the environment's.
    """

    name: str
    section: str  # "console" or "gui"
    template: bytes


#: Interpreter path used when rendering script templates at import time.
PLACEHOLDER = b"/holoclone/placeholder/python"


class Catalog(NamedTuple):
    """What a wheel installs for one interpreter tag (``cpython-311``...)."""

    name: str
    version: str
    wheel: str
    wheel_sha256: str
    tag: str
    dist_info: str
    root: str  # one of ROOTS: where the wheel's top level goes
    record: str  # sha256 of the object holding the wheel's own RECORD, which every entry must agree with
    entries: tuple[Entry, ...]
    scripts: tuple[Script, ...] = ()

    @property
    def key(self) -> str:
        """File name stem of this catalog in the store."""
        return catalog_key(self.wheel_sha256, self.tag)

    def objects(self) -> set[tuple[str, bool]]:
        """The store objects this catalog needs, as ``(digest, executable)``: its entries' and its RECORD's."""
        return {(entry.digest, bool(entry.flags & EXECUTABLE)) for entry in self.entries} | {(self.record, False)}

    def to_json(self) -> bytes:
        """Serialize to the on-disk form."""
        import base64

        document = {
            "format": FORMAT,
            "name": self.name,
            "version": self.version,
            "wheel": self.wheel,
            "wheel_sha256": self.wheel_sha256,
            "tag": self.tag,
            "dist_info": self.dist_info,
            "root": self.root,
            "record": self.record,
            "entries": [[e.scheme, e.path, e.digest, e.size, e.flags] for e in self.entries],
            "scripts": [[s.name, s.section, base64.b64encode(s.template).decode()] for s in self.scripts],
        }
        return json.dumps(document, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes, origin: str) -> Catalog:
        """Parse and check a catalog; ``origin`` names the file in errors.

        Raises :class:`StoreError` for anything malformed, including paths
        that would leave the environment.
        """
        import base64

        try:
            doc = json.loads(data)
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            found = doc.get("format")
            if type(found) is int and 0 < found < FORMAT:
                raise OutdatedCatalogError(
                    f"catalog {origin} has format {found}, older than this holoclone-venv writes ({FORMAT}).",
                    "It is imported again from its wheel on next use; 'holoclone store gc' removes it.",
                )
            if found != FORMAT:
                raise ValueError(f"format {found!r}, expected {FORMAT}")
            header = {field: doc[field] for field in _HEADER}
            _check_header(header)
            entries = [Entry(*row) for row in doc["entries"]]
            _check_entries(entries)
            scripts = []
            for name, section, template in doc.get("scripts", []):
                if not _is_file_name(name) or section not in ("console", "gui"):
                    raise ValueError(f"unsafe script name or section {name!r} {section!r}")
                scripts.append(Script(name, section, base64.b64decode(template, validate=True)))
            return cls(**header, entries=tuple(entries), scripts=tuple(scripts))
        except (ValueError, KeyError, TypeError, RecursionError) as error:  # RecursionError: JSON nested too deep
            raise MalformedCatalog(
                f"catalog {origin} is malformed ({str(error)[:200] or type(error).__name__}).",
                "Run 'holoclone store verify --repair' to drop it; it is re-imported on next use.",
            ) from None


_HEADER = ("name", "version", "wheel", "wheel_sha256", "tag", "dist_info", "root", "record")
# PEP 508 distribution names, as a wheel's .dist-info spells them; versions as PEP 440
# allows them, which excludes anything a path could make of them.
_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?\Z")
_VERSION = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.+!_-]*[A-Za-z0-9])?\Z")
_TAG = re.compile(r"^[a-z][a-z0-9_]*-[0-9]+\Z")
_SHA256 = re.compile(r"^[0-9a-f]{64}\Z")


def is_sha256(text: str) -> bool:
    """True for a sha256 hex digest as the store writes it (64 lowercase hex digits, nothing else)."""
    return bool(_SHA256.match(text))


def _check_header(header: dict) -> None:
    """Raise ValueError unless every field that decides a path or a key is what the importer writes."""
    for field_name, value in header.items():
        if type(value) is not str:
            raise ValueError(f"{field_name} is not a string")
    if not _NAME.match(header["name"]):
        raise ValueError(f"name {header['name']!r} is not a distribution name")
    if not _VERSION.match(header["version"]) or ".." in header["version"]:
        raise ValueError(f"version {header['version']!r} is not a version")
    if header["dist_info"] != f"{header['name']}-{header['version']}.dist-info":
        raise ValueError(f"dist_info {header['dist_info']!r} is not {header['name']}-{header['version']}.dist-info")
    if header["root"] not in ROOTS:
        raise ValueError(f"root {header['root']!r} is not one of {', '.join(ROOTS)}")
    if not _TAG.match(header["tag"]) or not _SHA256.match(header["wheel_sha256"]) or not _SHA256.match(header["record"]):
        raise ValueError("tag, wheel_sha256 or record is malformed")
    if not _is_file_name(header["wheel"]) or not header["wheel"].endswith(".whl"):
        raise ValueError(f"wheel {header['wheel']!r} is not a wheel file name")


def _is_file_name(name: object) -> bool:
    return isinstance(name, str) and "/" not in name and safe_relpath(name)


_SEPARATORS = re.compile(r"[-_.]+")


def canonical_name(name: str) -> str:
    """A distribution name normalized as PEP 503 says (``packaging.utils.canonicalize_name``).

    Spelled here rather than imported from installer: importing installer
    costs every seeding that removes a previous version (docs/benchmarks.md).
    """
    return _SEPARATORS.sub("-", name).lower()


def catalog_key(wheel_sha256: str, tag: str) -> str:
    """Store name of the catalog of a wheel (by its sha256) for an interpreter tag."""
    return f"{wheel_sha256}-{tag}"


_FORBIDDEN = ("\\", ":", "\0", "\r")
_HEX_DIGITS = b"0123456789abcdef\n"


def _check_entries(entries: list[Entry]) -> None:
    """Raise ValueError unless every entry has a safe path, a sha256 digest and sane numbers."""
    if not entries:
        return
    # Column by column, in C (catalogs are checked on every load; a check per entry costs 5x more).
    schemes, paths, digests, sizes, flags = zip(*entries)
    # The rule of safe_relpath for all paths at once, as substring searches over one string:
    # with every path between slashes, an empty, "." or ".." component (an empty or absolute
    # path, a trailing or doubled slash) shows as "//", "/./" or "/../".
    joined = "/" + "/\n/".join(paths) + "/"
    if joined.count("\n") != len(entries) - 1:
        raise ValueError("a path contains a line break")
    if "//" in joined or "/./" in joined or "/../" in joined or any(c in joined for c in _FORBIDDEN):
        bad = next(path for path in paths if not safe_relpath(path))
        raise ValueError(f"unsafe path {bad!r}")
    # 64 lowercase hex digits each: every 65th character a line break, nothing else but hex digits.
    column = "\n".join(digests) + "\n"
    if (len(column) != 65 * len(entries) or column[64::65] != "\n" * len(entries)
            or column.encode("ascii", "replace").translate(None, _HEX_DIGITS)):
        raise ValueError("an entry has no valid sha256 digest")
    if not set(schemes) <= _SCHEME_SET or {*map(type, sizes), *map(type, flags)} != {int} or min(sizes) < 0:
        bad = next(e.path for e in entries if e.scheme not in SCHEMES or type(e.size) is not int or e.size < 0
                   or type(e.flags) is not int)
        raise ValueError(f"bad scheme, size or flags for {bad!r}")


_SCHEME_SET = frozenset(SCHEMES)


def safe_relpath(path: str) -> bool:
    """True for a non-empty relative posix path with no ``..``, drive or backslash."""
    if not path or path.startswith("/") or "\\" in path or ":" in path or "\0" in path or "\n" in path or "\r" in path:
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))

