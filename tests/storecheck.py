"""Independent checks of a store's invariants, and of killed runs' environments, for reliability tests.

These re-implement the store's promises from its documented layout instead of
calling the code under test: every object's content hashes to its name, every
catalog parses and names only objects that exist with the catalog's size, and
nothing under ``tmp/`` outlives the run that made it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import stat
from pathlib import Path

EXECUTABLE = 1  # catalog entry flag: the object is stored as "<digest>.x"


def store_problems(store: Path) -> list[str]:
    """Everything wrong with ``store`` by this module's checks and by ``holoclone store verify``.

    An empty list means the store is consistent.
    """
    return independent_problems(store) + project_verify(store)


def independent_problems(store: Path) -> list[str]:
    """Everything wrong with ``store`` by this module's own checks."""
    problems: list[str] = []
    objects = store / "objects"
    for sub in sorted(objects.iterdir()) if objects.is_dir() else []:
        for path in sorted(sub.iterdir()):
            name = path.name[:-2] if path.name.endswith(".x") else path.name
            digest = sub.name + name
            st = path.lstat()
            if not stat.S_ISREG(st.st_mode):
                problems.append(f"{path}: not a regular file")
                continue
            if st.st_mode & 0o222:
                problems.append(f"{path}: writable object")
            if _sha256(path) != digest:
                problems.append(f"{path}: content does not match its digest")
    catalogs = store / "catalogs"
    for path in sorted(catalogs.glob("*.json")) if catalogs.is_dir() else []:
        try:
            document = json.loads(path.read_bytes())
            entries = document["entries"]
        except (ValueError, KeyError) as error:
            problems.append(f"{path}: unreadable catalog ({error})")
            continue
        for _scheme, rel, digest, size, flags in entries:
            suffix = ".x" if flags & EXECUTABLE else ""
            target = objects / digest[:2] / f"{digest[2:]}{suffix}"
            try:
                actual = target.stat().st_size
            except FileNotFoundError:
                problems.append(f"{path}: {rel} needs missing object {target.name}")
                continue
            if actual != size:
                problems.append(f"{path}: {rel} needs {size} bytes, object has {actual}")
    return problems


def project_verify(store: Path) -> list[str]:
    """Problems ``holoclone store verify`` reports."""
    from holoclone_venv.command.maintenance.verify import verify
    from holoclone_venv.store import Store

    return [f"{p.kind} {p.path}: {p.detail}" for p in verify(Store(store)).problems]


def contents(store: Path) -> set[str]:
    """Relative paths of every object and catalog: what a failed import must not add to."""
    found = set()
    for part in ("objects", "catalogs"):
        base = store / part
        if base.is_dir():
            for dirpath, _, names in os.walk(base):
                found.update(os.path.relpath(os.path.join(dirpath, n), store) for n in names)
    return found


def tmp_leftovers(store: Path) -> list[str]:
    """Names under ``tmp/``: staging of a run that is gone must not remain."""
    tmp = store / "tmp"
    return sorted(p.name for p in tmp.iterdir()) if tmp.is_dir() else []


def _site_packages(env: Path) -> Path | None:
    return next((env / "lib").glob("python*/site-packages"), None) if (env / "lib").is_dir() else None


def assert_not_half_done(env: Path) -> None:
    """A killed run's environment claims to be seeded only when it is, and lists no half-written distribution."""
    cfg = env / "pyvenv.cfg"
    keys = set()
    if cfg.exists():
        keys = {line.split("=", 1)[0].strip() for line in cfg.read_text().splitlines() if "=" in line}
    site = _site_packages(env)
    if "holoclone" in keys:
        # Seeding finished before the kill (virtualenv was writing activators): pip must be whole.
        assert site is not None and any(
            d.metadata["Name"] == "pip" for d in importlib.metadata.distributions(path=[str(site)])
        ), f"{env}: pyvenv.cfg says seeded but pip is not installed"
    if site is None:
        return
    for dist in importlib.metadata.distributions(path=[str(site)]):
        files = dist.files
        name = dist.metadata["Name"]
        assert files is not None, f"{env}: {name} is listed but has no RECORD"
        missing = [str(f) for f in files if not Path(dist.locate_file(f)).exists()]
        assert missing == [], f"{env}: {name} is listed but {missing[:3]} are missing"


def _sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()
