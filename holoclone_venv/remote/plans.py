"""``holoclone install`` plans on a remote store: pushed signed with the catalogs they need, pulled on a miss.

Only plans that mean the same on another machine travel: pinned (they never
expire) and made of store wheels only (a local wheel file, a project folder
or an sdist names a path or a build of this machine).  A pulled plan is
used only when a trusted key signed it over its key and whole document, it
is for the caller's interpreter tag, and every catalog it names could be
pulled; otherwise the install asks pip, as without a remote.
"""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING

from ..store.catalog import catalog_key
from ..errors import HoloCloneError, RemoteError
from . import layout
from .keys import install_plan_payload

if TYPE_CHECKING:
    from ..settings import Settings
    from ..store import Store
    from .keys import SecretKey
    from .transport import Transport

LOG = logging.getLogger("holoclone")
_TAG = re.compile(r"^[a-z][a-z0-9_]*-[0-9]+\Z")


def travelling_catalogs(document: dict | None) -> list[str] | None:
    """The catalog keys a plan needs when it may travel (pinned, store wheels only, a tag); else None."""
    try:
        if not isinstance(document, dict) or document.get("pinned") is not True or not _TAG.match(document["tag"]):
            return None
        items = document["items"]
        if not isinstance(items, list) or any(not isinstance(i, dict) or i.get("kind") != "store" for i in items):
            return None
        keys = [catalog_key(str(item["sha256"]), document["tag"]) for item in items]
    except (KeyError, TypeError):
        return None
    return keys if all(layout.is_catalog_key(key) for key in keys) else None


def push_install_plans(store: Store, remote: Transport, pushed: set[str], key: SecretKey) -> list[str]:
    """Push (signed) every plan that may travel and whose catalogs are all among ``pushed``; their keys."""
    from .sync import _put_signed

    done = []
    for path, document in store.iter_install_plans():
        needed = travelling_catalogs(document)
        if needed is None or not set(needed) <= pushed or document is None:
            continue
        plan_key = path.stem
        data = json.dumps(document, indent=1, sort_keys=True).encode()
        _put_signed(remote, layout.install_plan_name(plan_key), layout.install_plan_signature(plan_key), data,
                    key.sign(install_plan_payload(plan_key, document)), key.name, _same, layout.RESOLUTION_MAX, _newer)
        done.append(plan_key)
    return done


def _same(old: bytes, new: bytes) -> bool:
    try:
        return json.loads(old) == json.loads(new)
    except (ValueError, RecursionError):
        return False


def _newer(old: bytes, new: bytes) -> bool:
    """A plan made later (pip asked again, say after an index changed hashes) supersedes the remote's."""
    try:
        return float(json.loads(new)["created"]) > float(json.loads(old)["created"])
    except (ValueError, RecursionError, KeyError, TypeError):
        return False


def find_install_plan(settings: Settings, store: Store, key: str, tag: str) -> dict | None:
    """The remote's signed plan ``key`` for ``tag``, with every catalog it names pulled into the store and the
    plan kept there; None (after one line saying why) when the remote cannot help."""
    from . import _open, _progress
    from .sync import RemoteMiss, local_catalog, pull

    try:
        remote, trusted = _open(settings)
        data = remote.get(layout.install_plan_name(key), layout.RESOLUTION_MAX)
        if data is None:
            raise RemoteMiss(f"the remote {remote.url} has no install plan {key[:16]}")
        origin = f"install plan {key[:16]}... from {remote.url}"
        document = layout.load_json(data, f"the {origin}")
        trusted.signer(remote.get(layout.install_plan_signature(key), layout.SIGNATURE_MAX),
                       install_plan_payload(key, document),
                       f"the {origin}")
        needed = travelling_catalogs(document)
        if needed is None or document["tag"] != tag:
            raise RemoteError(f"the {origin} is not a pinned plan of store wheels for {tag}.")
        missing = [k for k in needed if local_catalog(store, k) is None]
        if missing:
            store.require_writable("an install plan's catalogs from the remote")
            pull(store, remote, trusted, missing, _progress)
        store.write_install_plan(key, document)  # last: every catalog it needs is in place
        LOG.debug("holoclone: pulled an install plan of %d wheels from %s", len(needed), settings.remote)
        return document
    except RemoteMiss as miss:
        LOG.debug("holoclone: %s; planning with pip", miss.message)
    except HoloCloneError as error:
        LOG.warning("holoclone: the remote %s was not used for the install plan: %s", settings.remote, error)
    return None
