"""Catalogs: what one wheel installs for one interpreter, in terms of store objects.

A catalog is a JSON document written by the importer and read by the
materializer.  Entries are kept sorted by (scheme, directory) so the
materializer can create each directory once and visit it once.

Entry flags:

``EXECUTABLE``  the object is stored with its executable bits set.
``SOURCE``      a ``.py`` file shipped with bytecode: its mtime must be
                :data:`SOURCE_MTIME` in every environment (see ``bytecode.py``).
``SHEBANG``     a ``.data/scripts`` file starting with ``#!python``: written per
                environment with the environment's interpreter.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import NamedTuple

from .errors import StoreError

FORMAT = 1
EXECUTABLE = 1
SOURCE = 2
SHEBANG = 4
SCHEMES = ("purelib", "platlib", "scripts", "headers", "data")
#: mtime of every store object and of every materialized ``.py`` that has bytecode.
#: Timestamp-based .pyc files record their source's mtime; fixing it makes one
#: .pyc valid in every environment, hardlinked or cloned.
SOURCE_MTIME = 1_000_000_000


class Entry(NamedTuple):
    """One file a wheel installs: where it goes, which object holds it.

    A tuple, not a dataclass: catalogs hold thousands and are loaded on every run.
    """

    scheme: str
    path: str  # posix path relative to the scheme's directory
    digest: str  # sha256 hex of the content
    size: int
    flags: int = 0


@dataclass(frozen=True)
class Script:
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


@dataclass(frozen=True)
class Catalog:
    """What a wheel installs for one interpreter tag (``cpython-311``...)."""

    name: str
    version: str
    wheel: str
    wheel_sha256: str
    tag: str
    dist_info: str
    root: str  # "purelib" or "platlib": where the wheel's top level goes
    entries: tuple[Entry, ...]
    scripts: tuple[Script, ...] = ()
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """File name stem of this catalog in the store."""
        return catalog_key(self.wheel_sha256, self.tag)

    def objects(self) -> set[tuple[str, bool]]:
        """The store objects this catalog needs, as ``(digest, executable)``."""
        return {(entry.digest, bool(entry.flags & EXECUTABLE)) for entry in self.entries}

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
            "entries": [[e.scheme, e.path, e.digest, e.size, e.flags] for e in self.entries],
            "scripts": [[s.name, s.section, base64.b64encode(s.template).decode()] for s in self.scripts],
            "meta": self.meta,
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
            if doc.get("format") != FORMAT:
                raise ValueError(f"format {doc.get('format')!r}, expected {FORMAT}")
            entries = [Entry(*row) for row in doc["entries"]]
            _check_entries(entries)
            scripts = []
            for name, section, template in doc.get("scripts", []):
                if not safe_relpath(name) or "/" in name:
                    raise ValueError(f"unsafe script name {name!r}")
                scripts.append(Script(name, section, base64.b64decode(template)))
            return cls(
                name=str(doc["name"]),
                version=str(doc["version"]),
                wheel=str(doc["wheel"]),
                wheel_sha256=str(doc["wheel_sha256"]),
                tag=str(doc["tag"]),
                dist_info=str(doc["dist_info"]),
                root=str(doc["root"]),
                entries=tuple(entries),
                scripts=tuple(scripts),
                meta=dict(doc.get("meta", {})),
            )
        except (ValueError, KeyError, TypeError) as error:
            raise StoreError(
                f"catalog {origin} is malformed ({error}).",
                "Run 'holoclone store verify --repair' to drop it; it is re-imported on next use.",
            ) from None


def catalog_key(wheel_sha256: str, tag: str) -> str:
    """Store name of the catalog of a wheel (by its sha256) for an interpreter tag."""
    return f"{wheel_sha256}-{tag}"


# The rule of safe_relpath, applied to all of a catalog's paths in one search
# (catalogs are checked on every load; a match per path would cost more).
_UNSAFE_PATH = re.compile(r"^$|^/|(?:^|/)\.{1,2}(?:/|$)|//|/$|[\\:\0\r]", re.M)
_DIGESTS = re.compile(r"(?:[0-9a-f]{64}\n)*\Z")


def _check_entries(entries: list[Entry]) -> None:
    """Raise ValueError unless every entry has a safe path, a sha256 digest and sane numbers."""
    paths = "\n".join(e.path for e in entries)
    if paths.count("\n") != max(len(entries) - 1, 0):
        raise ValueError("a path contains a line break")
    bad = _UNSAFE_PATH.search(paths) if entries else None
    if bad:
        line = paths[: bad.start()].count("\n")
        raise ValueError(f"unsafe path {entries[line].path!r}")
    if not _DIGESTS.match("".join(f"{e.digest}\n" for e in entries)):
        raise ValueError("an entry has no valid sha256 digest")
    for e in entries:
        if e.scheme not in SCHEMES or type(e.size) is not int or e.size < 0 or type(e.flags) is not int:
            raise ValueError(f"bad scheme, size or flags for {e.path!r}")


def safe_relpath(path: str) -> bool:
    """True for a non-empty relative posix path with no ``..``, drive or backslash."""
    if not path or path.startswith("/") or "\\" in path or ":" in path or "\0" in path:
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))

