"""Extra packages for an environment: requirement files and specs resolved to wheels, once.

``--holoclone-requirements FILE`` and ``--holoclone-package SPEC`` add whole
dependency sets (numpy, pandas, scipy, torch...) to the seed.  The first run
for a set asks pip to resolve and fetch it as wheels; the answer is kept in
the store, so every later environment with the same requirements, interpreter
and wheelhouse needs neither the resolver nor the network.

Store additions (beside the layout in ``store.py``)::

    <store>/
      wheels/<wheel sha256>/<wheel file name>   read-only copies of resolved wheels
      resolutions/<key>.json                    {"format", "requirements", "specs", "wheels": [[name, sha256]...]}

``<key>`` is the sha256 of what decides a resolution: the text of the
requirement files (with the files they include through ``-r``/``-c``), the
specs, the target interpreter (version, platform, marker environment) and the
listing of the ``--extra-search-dir`` folders.  It deliberately leaves out the
index configuration, so a resolution also works offline; a changed index
serves new versions only once the requirements change (or after
``resolutions/`` is removed: it is only a cache).

How pip is run: the *target* interpreter runs pip from virtualenv's embedded
pip wheel (``python pip.whl/pip download --only-binary :all:``), so tags and
environment markers are the environment's own, even before pip is in it.  The
user's pip configuration (pip.conf, ``PIP_*``: index, find-links, constraints)
applies unchanged.  With ``--extra-search-dir`` the folders are find-links and
the index is not used, unless ``--download`` is given (virtualenv's meaning).

Distributions the seeder installs itself (pip, setuptools, wheel, as enabled)
are not taken from a resolution: the seed's version wins, chosen with
virtualenv's ``--pip``/``--setuptools``/``--wheel`` options, so one
environment never gets two versions of one distribution.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from .errors import HoloCloneError

if TYPE_CHECKING:
    from virtualenv.create.creator import Creator

    from .config import Settings
    from .seeder import HoloCloneSeeder
    from .store import Store

LOG = logging.getLogger("holoclone")
FORMAT = 1
_INCLUDE = re.compile(r"^\s*(?:-r|--requirement|-c|--constraint)(?:\s+|=)(\S+)")


class ResolveError(HoloCloneError):
    """The requested packages could not be resolved to wheels."""


def resolve_wheels(settings: Settings, store: Store, creator: Creator, seeder: HoloCloneSeeder) -> list[Path]:
    """Wheel files for ``settings.requirements`` and ``settings.packages``, for ``creator``'s interpreter.

    Returns paths inside the store's ``wheels/`` directory, sorted by file
    name, without the distributions the seeder installs itself.  Reuses a
    cached resolution when every wheel it names is still in the store; else
    runs ``pip download`` once under a per-key lock and records the result
    atomically.  Raises :class:`ResolveError` for a missing requirements file,
    an option passed as a spec, or a pip failure (with pip's last error line).
    """
    _check_specs(settings.packages)
    texts = _requirement_texts(settings.requirements)
    search_dirs = [Path(d) for d in seeder.extra_search_dir]
    key = _resolution_key(texts, settings.packages, creator, search_dirs, bool(seeder.download))
    wheels = _cached(store, key)
    if wheels is None:
        store.require_writable("the resolved wheels")
        with store.lock(f"resolve-{key[:24]}", "another process resolving the same requirements"):
            wheels = _cached(store, key)
            if wheels is None:
                wheels = _resolve(settings, store, creator, seeder, search_dirs, key)
    return _without_seeded(wheels, seeder)


# -- the key ------------------------------------------------------------------------------------
def _check_specs(specs: Iterable[str]) -> None:
    for spec in specs:
        if not spec.strip() or spec.lstrip().startswith("-"):
            raise ResolveError(
                f"--holoclone-package takes a requirement such as 'numpy>=2', not {spec!r}.",
                "Put pip options into a requirements file or pip.conf.",
            )


def _requirement_texts(files: Iterable[str]) -> list[tuple[str, str]]:
    """``(absolute path, text)`` of each requirements file and of the files it includes."""
    texts: list[tuple[str, str]] = []
    seen: set[str] = set()

    def visit(path: str, included_from: str | None) -> None:
        path = os.path.abspath(path)
        if path in seen:
            return
        seen.add(path)
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except FileNotFoundError:
            if included_from is not None:
                # pip reports a missing include itself, with its own wording.
                texts.append((path, "<missing>"))
                return
            raise ResolveError(
                f"the requirements file {path} does not exist.", "Check the --holoclone-requirements path."
            ) from None
        except (OSError, UnicodeDecodeError) as error:
            raise ResolveError(
                f"cannot read the requirements file {path}: {getattr(error, 'strerror', None) or error}.",
                "Check the --holoclone-requirements path and its permissions.",
            ) from None
        texts.append((path, text))
        for line in text.splitlines():
            match = _INCLUDE.match(line)
            if match and "://" not in match.group(1):
                visit(os.path.join(os.path.dirname(path), match.group(1)), path)

    for name in files:
        visit(name, None)
    return texts


def _resolution_key(
    texts: list[tuple[str, str]], specs: Iterable[str], creator: Creator, search_dirs: list[Path], download: bool
) -> str:
    info = creator.interpreter
    document = {
        "format": FORMAT,
        "requirements": texts,
        "specs": list(specs),
        "interpreter": {
            "implementation": info.implementation,
            "version": list(info.version_info[:3]),
            "platform": info.sysconfig_platform,
            "architecture": info.architecture,
            "markers": dict(sorted((getattr(info, "marker_environment", None) or {}).items())),
        },
        "search_dirs": [[str(d), _listing(d)] for d in search_dirs],
        "download": download,
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def _listing(directory: Path) -> list[list[object]]:
    """What a wheelhouse holds: a new or replaced wheel makes a new resolution."""
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        return []
    listing: list[list[object]] = []
    for entry in entries:
        try:
            st = entry.stat()
        except OSError:
            continue
        listing.append([entry.name, st.st_size, st.st_mtime_ns])
    return listing


# -- the cache ----------------------------------------------------------------------------------
def _resolution_path(store: Store, key: str) -> Path:
    return store.root / "resolutions" / f"{key}.json"


def _wheel_path(store: Store, name: str, digest: str) -> Path:
    return store.root / "wheels" / digest / name


def _cached(store: Store, key: str) -> list[Path] | None:
    """The wheels of a recorded resolution, or None when there is none or one of its wheels is gone."""
    try:
        document = json.loads(_resolution_path(store, key).read_text(encoding="utf-8"))
        if document.get("format") != FORMAT:
            return None
        listed = [(str(name), str(digest)) for name, digest in document["wheels"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent or unreadable: resolve again and rewrite it
    wheels = []
    for name, digest in listed:
        if "/" in name or os.sep in name or len(digest) != 64 or not name.endswith(".whl"):
            return None
        path = _wheel_path(store, name, digest)
        # wheel_digest is remembered by (name, size, mtime): cheap after the first time.
        try:
            if store.wheel_digest(path) != digest:
                return None
        except OSError:
            return None
        wheels.append(path)
    return wheels


def _resolve(
    settings: Settings, store: Store, creator: Creator, seeder: HoloCloneSeeder, search_dirs: list[Path], key: str
) -> list[Path]:
    staging = store.staging_dir("resolve")
    try:
        _pip_download(settings, creator, seeder, search_dirs, staging)
        wheels = []
        for staged in sorted(staging.glob("*.whl")):
            digest = store.wheel_digest(staged)
            final = _wheel_path(store, staged.name, digest)
            if not final.exists():
                os.chmod(staged, 0o444)
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged, final)  # same filesystem (tmp/ is in the store): atomic
            wheels.append((staged.name, digest, final))
    except OSError as error:
        raise ResolveError(f"storing the resolved wheels in {store.root} failed: {error}.",
                           "Check free space and permissions of the store.") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    document = {
        "format": FORMAT,
        "requirements": list(settings.requirements),
        "specs": list(settings.packages),
        "wheels": [[name, digest] for name, digest, _ in wheels],
    }
    store.write_atomically(_resolution_path(store, key), json.dumps(document, indent=1).encode("utf-8"))
    return [path for _, _, path in wheels]


def _pip_download(
    settings: Settings, creator: Creator, seeder: HoloCloneSeeder, search_dirs: list[Path], dest: Path
) -> None:
    from virtualenv.seed.wheels.embed import get_embed_wheel

    pip_wheel = get_embed_wheel("pip", creator.interpreter.version_release_str)
    if pip_wheel is None:
        raise ResolveError(
            f"virtualenv has no pip to resolve packages for Python {creator.interpreter.version_release_str}.",
            "Upgrade virtualenv.",
        )
    cmd = [str(creator.exe), str(Path(pip_wheel.path) / "pip"), "download", "--only-binary", ":all:",
           "--dest", str(dest), "--disable-pip-version-check", "--no-input", "--progress-bar", "off"]
    for directory in search_dirs:
        cmd += ["--find-links", str(directory)]
    if search_dirs and not seeder.download:
        cmd.append("--no-index")  # virtualenv's rule: search dirs only, unless --download
    for requirements in settings.requirements:
        cmd += ["--requirement", os.path.abspath(requirements)]
    cmd += list(settings.packages)
    LOG.info("holoclone: resolving %s with pip (once for this set)", " ".join(cmd[3:]))
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, errors="replace", stdin=subprocess.DEVNULL)
    except OSError as error:
        raise ResolveError(f"cannot run pip with {creator.exe}: {error.strerror or error}.") from None
    if result.returncode:
        raise ResolveError(
            f"pip could not resolve the requested packages to wheels: {_last_error(result.stderr, result.stdout)}",
            "Check the requirements and your pip index settings (pip.conf, PIP_INDEX_URL, --extra-search-dir); "
            "only wheels can be used, not source distributions.",
        )


def _last_error(*outputs: str) -> str:
    """pip's last ``ERROR:`` line, else its last non-empty line."""
    lines = [line.strip() for text in outputs for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    line = (errors or lines or ["pip gave no reason"])[-1]
    line = line[len("ERROR:"):].strip() if line.startswith("ERROR:") else line
    return line if line.endswith(".") else f"{line}."


# -- seed packages ------------------------------------------------------------------------------
def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _without_seeded(wheels: list[Path], seeder: HoloCloneSeeder) -> list[Path]:
    """Leave out distributions the seed installs: one version of each per environment."""
    seeded = {_canonical(name) for name in seeder.distribution_to_versions()}
    kept = []
    for wheel in wheels:
        name = _canonical(wheel.name.split("-", 1)[0])
        if name in seeded:
            LOG.info("holoclone: %s comes from the seed, not from the requirements (%s)", name, wheel.name)
            continue
        kept.append(wheel)
    return kept
