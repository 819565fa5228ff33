"""RECORD files for materialized distributions, written with installer's own record types.

A distribution's RECORD lists every installed file.  The rows for a
catalog's own files are the same in every environment whose install-scheme
directories sit at the same relative places, so they are kept as one store
object per (catalog, relative scheme paths) and cloned into each
environment; only the rows that differ per environment (console scripts for
its interpreter, rewritten ``#!python`` scripts, INSTALLER, RECORD) are
appended.

Rows are written with the csv module in RECORD's dialect (as installer and
pip write it).  installer's own ``RecordEntry`` is not used here: importing
installer would cost every warm seeding more than the three rows it writes
(docs/benchmarks.md).
"""

from __future__ import annotations

import base64
import hashlib
import json
import posixpath
from typing import TYPE_CHECKING, Callable, Iterable, Tuple, Union

from ..store.catalog import EXECUTABLE, HAS_BYTECODE, SHEBANG

if TYPE_CHECKING:
    from ..store.catalog import Catalog

#: One RECORD row: (path, hash, size); RECORD's own row has empty hash and size.
Row = Tuple[str, str, Union[int, str]]


def hash_of(data: bytes) -> str:
    """RECORD's ``sha256=<urlsafe base64, unpadded>`` of ``data``."""
    return hash_of_digest(hashlib.sha256(data).hexdigest())


def hash_of_digest(hex_digest: str) -> str:
    """RECORD's hash for a sha256 given as hex (a store object's name)."""
    return "sha256=" + base64.urlsafe_b64encode(bytes.fromhex(hex_digest)).rstrip(b"=").decode("ascii")


def record_bytes(rows: Iterable[Row]) -> bytes:
    """Rows in RECORD's CSV dialect."""
    import csv
    import io

    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    return text.getvalue().encode("utf-8")


def paths_id(relative: dict[str, str]) -> str:
    """Names one set of scheme directories relative to the distribution's root (for RECORD objects)."""
    return hashlib.sha256(json.dumps(relative, sort_keys=True).encode()).hexdigest()[:16]


def shared_rows(catalog: Catalog, relative: dict[str, str]) -> list[Row]:
    """RECORD rows of the catalog's own files (everything but per-environment rewrites).

    ``relative`` maps each scheme to its directory relative to the root
    scheme's directory (``""`` for the root itself), as POSIX paths.
    """
    return [
        (posixpath.join(relative[e.scheme], e.path) if relative[e.scheme] else e.path, hash_of_digest(e.digest), e.size)
        for e in catalog.entries
        if not e.flags & SHEBANG
    ]


def disagreements(catalog: Catalog, wheel_record: bytes, read_object: Callable[[str, bool], bytes]) -> list[str]:
    """What in ``catalog`` its wheel's RECORD (``wheel_record``) does not vouch for; empty when all agree.

    Every entry must be listed in the wheel's RECORD with the same content,
    except bytecode holoclone compiled from a listed source.  Hashes other
    than sha256 are checked on the object's content (``read_object(digest,
    executable)``).  A catalog whose paths and digests disagree with the
    RECORD it names was not written by holoclone's importer from that wheel.
    """
    import csv
    import io

    try:
        listed = {row[0]: row[1] for row in csv.reader(io.StringIO(wheel_record.decode("utf-8"))) if len(row) >= 2}
    except (UnicodeDecodeError, csv.Error) as error:
        return [f"the wheel's RECORD is unreadable ({error})"]
    data_prefix = f"{catalog.dist_info[: -len('.dist-info')]}.data/"
    compiled_from = {(e.scheme, e.path) for e in catalog.entries if e.flags & HAS_BYTECODE}
    problems = []
    for entry in catalog.entries:
        member = entry.path if entry.scheme == catalog.root else f"{data_prefix}{entry.scheme}/{entry.path}"
        expected = listed.get(member)
        if expected is None:
            if (entry.scheme, _source_of(entry.path)) not in compiled_from:
                problems.append(f"{member} is not in the wheel's RECORD")
        elif expected.startswith("sha256="):
            if expected != hash_of_digest(entry.digest):
                problems.append(f"{member} does not match the wheel's RECORD")
        else:
            name, _, value = expected.partition("=")
            try:
                data = read_object(entry.digest, bool(entry.flags & EXECUTABLE))
                actual = base64.urlsafe_b64encode(hashlib.new(name, data).digest()).rstrip(b"=").decode("ascii")
            except (OSError, ValueError) as error:
                problems.append(f"{member} cannot be checked against the wheel's RECORD ({error})")
                continue
            if actual != value:
                problems.append(f"{member} does not match the wheel's RECORD")
    return problems


def _source_of(pyc_path: str) -> str:
    """``pkg/__pycache__/mod.cpython-311.pyc`` -> ``pkg/mod.py`` (anything else -> "")."""
    directory, marker, name = pyc_path.rpartition("__pycache__/")
    if not marker or "/" in name or not name.endswith(".pyc"):
        return ""
    return f"{directory}{name.split('.', 1)[0]}.py"
