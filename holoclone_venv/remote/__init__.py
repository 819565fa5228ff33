"""Remote stores: a fleet of machines sharing signed catalogs and their objects (``--holoclone-remote URL``).

The seeding run asks here only on a local miss, and only when a remote is
configured, so a plain run imports nothing of this package:

* :func:`find_catalog`, before a wheel would be imported;
* :func:`find_resolution`, before pip would resolve a dependency set.

Both return None when the remote cannot help (a plain miss, or a failure
logged at INFO); the run then imports from wheels as without a remote, and
:func:`not_used` gives the reason for the seeding's summary, so a remote
that was configured but not used is never silent.  A remote that does not
answer (:class:`~.layout.RemoteUnavailable`) is not asked again in the
same process: one unreachable server costs one timeout, not one per wheel.

Modules: ``keys`` (Ed25519 keys, canonical forms, trust), ``layout`` (the
remote's file names), ``transport`` (file://, http(s)://, s3://), ``pack``
(a catalog's objects in one file, read as untrusted input), ``fetch`` (a
pull's downloads into staging: packs or single objects), ``sync`` (push and
pull).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ..environment import WheelRef
from ..store.catalog import catalog_key
from ..errors import HoloCloneError, RemoteError

if TYPE_CHECKING:
    from ..store.catalog import Catalog
    from ..settings import Settings
    from ..store import Store

LOG = logging.getLogger("holoclone")


#: Why each remote (by URL) was not used in this process, first reason first; and the remotes that
#: did not answer at all.
_unused: dict[str, list[str]] = {}
_down: set[str] = set()


def _not_used(url: str, error: HoloCloneError, what: str) -> None:
    from .layout import RemoteUnavailable

    LOG.info("holoclone: the remote %s was not used for %s: %s", url, what, error)
    reasons = _unused.setdefault(url, [])
    if error.message not in reasons:
        reasons.append(error.message)
    if isinstance(error, RemoteUnavailable):
        _down.add(url)


def forget(url: str) -> None:
    """Start a seeding afresh: what an earlier one in this process (tox creates several) met is not its news."""
    _unused.pop(url, None)
    _down.discard(url)


def not_used(url: str) -> str:
    """Why the remote ``url`` was not used for something this process asked it ('' when it always was):
    one line for the seeding's summary, ``the remote URL was not used: REASON``."""
    reasons = _unused.get(url)
    if not reasons:
        return ""
    more = f" (and {len(reasons) - 1} other reasons)" if len(reasons) > 1 else ""
    return f"the remote {url} was not used: {reasons[0].rstrip('.')}{more}"


def _progress(label: str):
    from ..progress import bar

    return bar(label)


def _open(settings: Settings):
    from .keys import TrustedKeys
    from .transport import open_remote

    return open_remote(settings.remote), TrustedKeys.parse(settings.trusted_keys)


def find_catalog(settings: Settings, store: Store, wheel: WheelRef, tag: str) -> Catalog | None:
    """The catalog of ``wheel`` for ``tag``: the store's when intact, else pulled from the remote, else None
    (the wheel's file is then imported).

    ``wheel`` may have no file when it comes from a resolution pulled from the remote (only its
    catalogs were pulled): then its digest names it, and a catalog neither the store nor the remote
    has is an error.
    """
    from .sync import RemoteMiss, local_catalog, pull

    if wheel.path is not None:
        store.reclaim_tmp_once()
    digest = wheel.digest
    if digest is None:
        if wheel.path is None:
            return None  # nothing names it: the caller reports the wheel it cannot find
        digest = store.wheel_digest(wheel.path)
    key = catalog_key(digest, tag)
    catalog = local_catalog(store, key)
    if catalog is not None:
        return catalog
    try:
        with store.import_lock(digest, wheel.name):  # the loser of a race finds the winner's catalog
            catalog = local_catalog(store, key)
            if catalog is None and settings.remote not in _down:
                remote, trusted = _open(settings)
                catalog = pull(store, remote, trusted, [key], _progress)[0][0]
                LOG.info("holoclone: pulled %s from %s", wheel.name, settings.remote)
            if catalog is not None:
                return catalog
    except RemoteMiss as miss:
        LOG.info("holoclone: %s; importing %s from the wheel", miss.message, wheel.name)
    except HoloCloneError as error:
        _not_used(settings.remote, error, wheel.name)
    if wheel.path is None or not os.path.exists(wheel.path):
        raise RemoteError(f"the catalog of {wheel.name} (from the remote's resolution) is no longer in the store "
                             "and the remote did not provide it.", "Run again once the remote answers.")
    return None


def find_resolution(settings: Settings, store: Store, key: str, tag: str,
                    seed_wheels: Sequence[Path] = ()) -> list[WheelRef] | None:
    """The wheels of the dependency set ``key`` when the remote has it signed with every catalog for ``tag``.

    Returns the wheels by name and digest, with the store's file where it keeps one: their catalogs
    are in the store, which is all :func:`find_catalog` needs.  None when the run
    should resolve with pip.  The catalogs of ``seed_wheels`` (pip, setuptools)
    the store lacks come along in the same pull where the remote has them.
    """
    from . import layout
    from .sync import RemoteMiss, fetch_resolution, local_catalog, pull

    def refs(wheels: list[tuple[str, str]]) -> list[WheelRef]:
        return [WheelRef(name, digest, store.kept_wheel(name, digest)) for name, digest in wheels]

    def complete(document: dict | None) -> list[WheelRef] | None:
        try:
            wheels = layout.resolution_wheels(document, key) if document is not None else None
        except HoloCloneError:
            return None
        if not wheels or any(local_catalog(store, catalog_key(digest, tag)) is None for _, digest in wheels):
            return None
        return refs(wheels)

    found = complete(store.load_resolution(key))
    if found is not None or settings.remote in _down:
        return found
    try:
        store.require_writable("a resolution from the remote")
        with store.resolve_lock(key):
            found = complete(store.load_resolution(key))
            if found is None:
                remote, trusted = _open(settings)
                document, wheels = fetch_resolution(store, remote, trusted, key)
                along = [catalog_key(store.wheel_digest(wheel), tag) for wheel in seed_wheels if os.path.exists(wheel)]
                pull(store, remote, trusted, [catalog_key(digest, tag) for _, digest in wheels], _progress, along)
                store.write_resolution(key, document)  # last: every catalog it needs is in place
                found = refs(wheels) or None  # just pulled: complete
                LOG.info("holoclone: pulled a resolution of %d wheels from %s", len(wheels), settings.remote)
            return found
    except RemoteMiss as miss:
        LOG.info("holoclone: %s; resolving with pip", miss.message)
    except HoloCloneError as error:
        _not_used(settings.remote, error, "the dependency set")
    return None
