"""The layout of a remote store: the only code that knows its file names.

Static files, like a Nix binary cache, so any static web server, S3 bucket
or shared directory can hold one::

    holoclone-remote.json          {"kind": "holoclone-remote", "format": 1}
    objects/ab/<62 hex>[.x]        store objects, named by sha256 (".x": executable)
    catalogs/<sha256>-<tag>.json   catalogs, exactly as Catalog.to_json writes them
    catalogs/<sha256>-<tag>.sig    signature lines NAME:BASE64 over the catalog's canonical form
    packs/<sha256>-<tag>.pack      the catalog's objects in one file (remote/pack.py); optional, only a faster read
    resolutions/<key>.json         a resolved dependency set: {"format", "requirements", "specs", "wheels"}
    resolutions/<key>.sig          signature lines over the resolution's canonical form
    install-plans/<key>.json       a pinned 'holoclone install' plan of store wheels only (remote/plans.py)
    install-plans/<key>.sig        signature lines over the plan's canonical form

Writers put objects first, then each catalog's pack, then its signature,
then the catalog, so a reader that finds a catalog finds its objects (and
its pack, unless an older version pushed it).  Every name read from a
remote is checked here before it decides a local path.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import RemoteError
from ..store.resolutions import UnsafeWheel
from ..store.resolutions import resolution_serial as serial  # noqa: F401  (the remote's name for it)
from ..store.resolutions import resolution_wheels as parse_resolution

class RemoteUnavailable(RemoteError):
    """The remote did not answer as a holoclone remote (unreachable, an HTTP error, cut off, no marker):
    a seeding stops asking it for the rest of the run."""


MARKER = "holoclone-remote.json"
KIND = "holoclone-remote"
FORMAT = 1
OBJECTS = "objects/"
CATALOGS = "catalogs/"
RESOLUTIONS = "resolutions/"
INSTALL_PLANS = "install-plans/"
PACKS = "packs/"
#: The most bytes read of each kind of document, before anything of it is parsed or its signature
#: checked: well past what holoclone writes (a catalog of 600,000 files, 16 signature lines,
#: a resolution of thousands of wheels), far below what would exhaust a machine's memory.
MARKER_MAX = 64 << 10
SIGNATURE_MAX = 64 << 10
CATALOG_MAX = 64 << 20
RESOLUTION_MAX = 16 << 20
_DIGEST = re.compile(r"^[0-9a-f]{64}\Z")
_CATALOG_KEY = re.compile(r"^[0-9a-f]{64}-[a-z][a-z0-9_]*-[0-9]+\Z")
_OBJECT = re.compile(r"^objects/([0-9a-f]{2})/([0-9a-f]{62})(\.x)?\Z")
_CATALOG = re.compile(r"^catalogs/([0-9a-f]{64}-[a-z][a-z0-9_]*-[0-9]+)\.json\Z")
_PACK = re.compile(r"^packs/([0-9a-f]{64}-[a-z][a-z0-9_]*-[0-9]+)\.pack\Z")


def marker() -> bytes:
    return json.dumps({"kind": KIND, "format": FORMAT}).encode()


def load_json(data: bytes, what: str, hint: str = "") -> Any:
    """``data`` parsed as JSON; one :class:`RemoteError` naming ``what`` for anything that is not
    (including JSON nested too deep for Python's parser, which raises RecursionError)."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as error:
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)[:120]
        raise RemoteError(f"{what} is not valid JSON ({reason}).",
                             hint or "Do not use it: remove it where it came from and push or export it again.") from None


def check_marker(data: bytes | None, url: str) -> None:
    """Raise unless ``data`` is the marker of a remote this version can read."""
    if data is None:
        raise RemoteUnavailable(f"{url} is not a holoclone remote (it has no {MARKER}).",
                             "Push to it first with 'holoclone store push', or check the URL.")
    try:
        document = json.loads(data)
        ok = document.get("kind") == KIND and isinstance(document.get("format"), int)
    except (ValueError, AttributeError, RecursionError):
        ok = False
    if not ok:
        raise RemoteError(f"{url}/{MARKER} is not a holoclone remote marker.")
    if document["format"] > FORMAT:
        raise RemoteError(f"the remote {url} has format {document['format']}, newer than this holoclone-venv "
                             f"understands ({FORMAT}).", "Upgrade holoclone-venv.")


def object_name(digest: str, executable: bool) -> str:
    check_digest(digest)
    return f"{OBJECTS}{digest[:2]}/{digest[2:]}{'.x' if executable else ''}"


def parse_object(name: str) -> tuple[str, bool] | None:
    """``(digest, executable)`` of an object name listed by a remote; None for anything else."""
    match = _OBJECT.match(name)
    return (match.group(1) + match.group(2), bool(match.group(3))) if match else None


def catalog_name(key: str) -> str:
    check_catalog_key(key)
    return f"{CATALOGS}{key}.json"


def catalog_signature(key: str) -> str:
    check_catalog_key(key)
    return f"{CATALOGS}{key}.sig"


def parse_catalog(name: str) -> str | None:
    """The key of a catalog name listed by a remote; None for anything else."""
    match = _CATALOG.match(name)
    return match.group(1) if match else None


def pack_name(key: str) -> str:
    check_catalog_key(key)
    return f"{PACKS}{key}.pack"


def parse_pack(name: str) -> str | None:
    """The catalog key of a pack name listed by a remote; None for anything else."""
    match = _PACK.match(name)
    return match.group(1) if match else None


def resolution_name(key: str) -> str:
    check_digest(key)
    return f"{RESOLUTIONS}{key}.json"


def resolution_signature(key: str) -> str:
    check_digest(key)
    return f"{RESOLUTIONS}{key}.sig"


def install_plan_name(key: str) -> str:
    check_digest(key)
    return f"{INSTALL_PLANS}{key}.json"


def install_plan_signature(key: str) -> str:
    check_digest(key)
    return f"{INSTALL_PLANS}{key}.sig"


def is_catalog_key(key: str) -> bool:
    return bool(_CATALOG_KEY.match(key))


def check_catalog_key(key: str) -> None:
    if not _CATALOG_KEY.match(key):
        raise RemoteError(f"{key[:80]!r} is not a catalog key (<wheel sha256>-<interpreter tag>).",
                             "'holoclone store info --json' lists the keys.")


def check_digest(digest: str) -> None:
    if not _DIGEST.match(digest):
        raise RemoteError(f"{digest[:80]!r} is not a sha256 digest.")


def resolution_wheels(document: Any, origin: str) -> list[tuple[str, str]]:
    """``[(wheel file name, sha256)]`` of a resolution document (the store's parser), each checked; raises
    :class:`RemoteError` naming ``origin`` for anything else."""
    try:
        return parse_resolution(document)
    except UnsafeWheel as error:
        raise RemoteError(f"the resolution {origin} names an unsafe wheel {error.name[:80]!r}.") from None
    except ValueError as error:
        raise RemoteError(f"the resolution {origin} is malformed ({error}).") from None
