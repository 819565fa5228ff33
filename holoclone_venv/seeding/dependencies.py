"""Extra packages for an environment: requirement files and specs resolved to wheels, once.

``--holoclone-requirements FILE`` and ``--holoclone-package SPEC`` add whole
dependency sets (numpy, pandas, scipy, torch...) to the seed.  The first run
for a set asks pip to resolve and fetch it as wheels; the answer is kept in
the store, so every later environment with the same requirements, interpreter
and wheelhouse needs neither the resolver nor the network.

The store keeps the resolved wheels and the resolution documents
(``store/resolutions.py`` spells their format).
A resolution's key is the sha256 of what decides a resolution: the text of the
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

from ..environment import WheelRef
from ..fsutil import folder_listing
from ..store.resolutions import resolution_document, resolution_wheels
from .requirements import Requirements, ResolveError, read_requirements

if TYPE_CHECKING:
    from ..environment import SeedRequest
    from ..settings import Settings
    from ..store import Store

LOG = logging.getLogger("holoclone")
#: The format of the document hashed into a resolution's key (what decides a resolution).
_KEY_FORMAT = 1


def resolve_wheels(settings: Settings, store: Store, request: SeedRequest) -> list[WheelRef]:
    """Wheel files for ``settings.requirements`` and ``settings.packages``, for the request's interpreter.

    Returns the wheels (kept in the store's ``wheels/`` directory, or known by their catalogs only when
    the resolution came from a remote store), sorted by file name, without the distributions the
    seeder installs itself.  Reuses a
    cached resolution when every wheel it names is still in the store; else
    runs ``pip download`` once under a per-key lock and records the result
    atomically.  Raises :class:`ResolveError` for a missing requirements file,
    an option passed as a spec, or a pip failure (with pip's last error line).
    """
    wanted = read_requirements(settings.requirements, settings.packages)
    key = _resolution_key(wanted, store, request)
    wheels = None if settings.refresh else _cached(store, key)
    if wheels is None and settings.remote and not settings.refresh:  # a signed resolution and its catalogs from the remote: no pip
        from ..remote import find_resolution

        wheels = find_resolution(settings, store, key, request.interpreter.tag, request.seed_wheels)
    if wheels is None:
        store.require_writable("the resolved wheels")
        with store.resolve_lock(key):
            wheels = None if settings.refresh else _cached(store, key)
            if wheels is None:
                wheels = _resolve(settings, store, request, key)
    return _without_seeded(wheels, request.seed_distributions)


# -- the key ------------------------------------------------------------------------------------
def _resolution_key(wanted: Requirements, store: Store, request: SeedRequest) -> str:
    info = request.interpreter
    document = {
        "format": _KEY_FORMAT,
        "requirements": wanted.texts,
        "specs": list(wanted.specs),
        # A rebuilt local wheel of the same name must make a new resolution: by content.
        "local": [[path, _contents(path, store)] for path in wanted.local_paths],
        "interpreter": {
            "implementation": info.implementation,
            "version": list(info.release),
            "platform": info.platform,
            "architecture": info.architecture,
            "markers": dict(info.markers),
        },
        "search_dirs": [[str(d), folder_listing(d)] for d in request.search_dirs],
        "download": request.download,
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def _contents(path: str, store: Store) -> list[list[str]]:
    """``[[name, sha256]]`` of a local wheel, or of the wheels in a find-links folder."""
    directory = Path(path)
    wheels = sorted(directory.glob("*.whl")) if directory.is_dir() else [directory]
    found = []
    for wheel in wheels:
        try:
            found.append([wheel.name, store.wheel_digest(wheel)])  # cached by name, size and mtime
        except OSError:
            found.append([wheel.name, "missing"])
    return found


# -- the cache ----------------------------------------------------------------------------------
def _cached(store: Store, key: str) -> list[WheelRef] | None:
    """The wheels of a recorded resolution, or None when there is none or one of its wheels is gone."""
    try:
        listed = resolution_wheels(store.load_resolution(key))
    except ValueError:
        return None  # absent, unreadable or unsafe: resolve again and rewrite it
    wheels = []
    for name, digest in listed:
        path = store.kept_wheel(name, digest)  # the owner's regular file, never reached through a link
        # wheel_digest is remembered by (name, size, mtime): cheap after the first time.
        try:
            if path is None or store.wheel_digest(path) != digest:
                return None
        except OSError:
            return None
        wheels.append(WheelRef(name, digest, path))
    return wheels


def _resolve(settings: Settings, store: Store, request: SeedRequest, key: str) -> list[WheelRef]:
    staging = store.staging_dir("resolve")
    try:
        _pip_download(settings, request, staging)
        wheels = []
        if not any(staging.glob("*.whl")):
            raise ResolveError(
                "pip resolved the requested packages to no wheel at all, so there is nothing to add.",
                "Check the requirements: every entry must name a package with a wheel.",
            )
        for staged in sorted(staging.glob("*.whl")):
            digest = store.wheel_digest(staged)
            wheels.append((staged.name, digest, store.adopt_wheel(staged, staged.name, digest)))
    except OSError as error:
        raise ResolveError(f"storing the resolved wheels in {store.root} failed: {error}.",
                           "Check free space and permissions of the store.") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    # Its serial is signed with the rest when pushed: a remote's older answer for this key is refused (remote/).
    store.write_resolution(key, resolution_document(settings.requirements, settings.packages,
                                                    [(name, digest) for name, digest, _ in wheels]))
    return [WheelRef(name, digest, path) for name, digest, path in wheels]


def _pip_download(settings: Settings, request: SeedRequest, dest: Path) -> None:
    interpreter = request.interpreter
    if request.pip_wheel is None:
        raise ResolveError(
            f"virtualenv has no pip to resolve packages for Python {'.'.join(map(str, interpreter.release))}.",
            "Upgrade virtualenv.",
        )
    search_dirs = request.search_dirs
    cmd = [interpreter.executable, str(request.pip_wheel / "pip"), "download", "--only-binary", ":all:",
           "--dest", str(dest), "--disable-pip-version-check", "--no-input", "--progress-bar", "off"]
    for directory in search_dirs:
        cmd += ["--find-links", str(directory)]
    if search_dirs and not request.download:
        cmd.append("--no-index")  # virtualenv's rule: search dirs only, unless --download
    for requirements in settings.requirements:
        cmd += ["--requirement", os.path.abspath(requirements)]
    cmd += list(settings.packages)
    # What is resolved, in the user's words; pip's own arguments only at debug level (-vv).
    wanted = [*settings.packages, *(os.path.basename(r) for r in settings.requirements)]
    LOG.info("holoclone: resolving %s with pip (once for this set)", ", ".join(wanted))
    LOG.debug("holoclone: running %s", " ".join(cmd))
    try:
        returncode, stdout, stderr = _run_pip(cmd)
    except OSError as error:
        raise ResolveError(f"cannot run pip with {interpreter.executable}: {error.strerror or error}.") from None
    if returncode:
        reason = last_pip_error(stderr, stdout)
        raise ResolveError(f"pip could not resolve the requested packages to wheels: {reason}", _advice(reason))


def _advice(reason: str) -> str:
    """What to do, for the kind of failure pip reported (a name it cannot find is not an index problem)."""
    missing = re.search(r"no matching distribution found for (\S+?)\.?$", reason, re.IGNORECASE)
    if missing:
        return (f"Check that {missing.group(1)!r} is spelt as on the index and has a wheel for this Python "
                "(holoclone uses wheels only).")
    if "invalid requirement" in reason.lower():
        return "Write the requirement as pip does, e.g. 'numpy>=2'."
    return ("Check the requirements and your pip index settings (pip.conf, PIP_INDEX_URL, --extra-search-dir); "
            "only wheels can be used, not source distributions.")


def _run_pip(cmd: list[str]) -> tuple[int, str, str]:
    """Run pip, capturing its output; on a terminal, show what it is doing on one updating line."""
    import sys

    if not sys.stderr.isatty():
        result = subprocess.run(cmd, capture_output=True, text=True, errors="replace", stdin=subprocess.DEVNULL)
        return result.returncode, result.stdout, result.stderr
    import threading

    errors: list[str] = []
    lines: list[str] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                          text=True, errors="replace") as process:
        assert process.stdout is not None and process.stderr is not None  # both are pipes
        stderr = process.stderr
        reader = threading.Thread(target=lambda: errors.append(stderr.read()), daemon=True)
        reader.start()
        for line in process.stdout:
            lines.append(line)
            if line.strip():
                sys.stderr.write(f"\r\033[Kholoclone: resolving with pip: {line.strip()[:100]}")
                sys.stderr.flush()
        reader.join()
    sys.stderr.write("\r\033[K")
    sys.stderr.flush()
    return process.returncode, "".join(lines), "".join(errors)


def last_pip_error(*outputs: str) -> str:
    """pip's own error: its last ``ERROR:``/``error:`` line with the ``×`` line that explains it.

    pip 26 reports some failures as ``error: <kind>`` followed by ``× <what happened>``;
    older pips print ``ERROR: <message>``.  Without either, its last non-empty line.
    """
    lines = [line.strip() for text in outputs for line in text.splitlines() if line.strip()]
    errors = [i for i, line in enumerate(lines) if line.lower().startswith("error:")]
    if errors:
        first = errors[-1]
        line = lines[first][len("error:"):].strip()
        cross = next((lines[i].lstrip("× ").strip() for i in range(first + 1, len(lines)) if lines[i].startswith("×")), "")
        line = f"{line.rstrip('.')}: {cross}" if cross else line
    else:
        crosses = [line.lstrip("× ").strip() for line in lines if line.startswith("×")]
        line = (crosses or lines or ["pip gave no reason"])[-1]
    return line if line.endswith(".") else f"{line}."


# -- seed packages ------------------------------------------------------------------------------
def _without_seeded(wheels: list[WheelRef], seeded_distributions: Iterable[str]) -> list[WheelRef]:
    """Leave out distributions the seed installs: one version of each per environment."""
    from ..store.catalog import canonical_name

    seeded = {canonical_name(name) for name in seeded_distributions}
    kept = []
    for wheel in wheels:
        name = canonical_name(wheel.name.split("-", 1)[0])
        if name in seeded:
            LOG.info("holoclone: %s comes from the seed, not from the requirements (%s)", name, wheel.name)
            continue
        kept.append(wheel)
    return kept
