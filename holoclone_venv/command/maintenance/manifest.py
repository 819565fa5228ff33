"""Manifests: the names of every object a store holds, so an export leaves out what the receiver has (``--have``)."""

from __future__ import annotations

import json
from pathlib import Path

from ...errors import HoloCloneError
from ...store import Store
from . import object_name

MANIFEST_KIND = "holoclone-manifest"
MANIFEST_FORMAT = 1


def write_manifest(store: Store, output: str) -> int:
    """Write the names of every object the store holds (for ``export --have``); returns how many."""
    names = sorted(object_name(d, x) for d, x, _ in store.iter_objects())
    document = {"kind": MANIFEST_KIND, "format": MANIFEST_FORMAT, "store": str(store.root), "objects": names}
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


def _write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all; ``-`` means standard output."""
    from ...errors import os_error
    from ...fsutil import write_atomic

    if path == "-":
        import sys

        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        write_atomic(path, data, mode=0o644)
    except OSError as error:
        raise os_error(error, f"writing {path}") from None
