"""One seeding run: wheels -> store import -> catalogs -> materializer -> report.

Imported by :meth:`HoloCloneSeeder.run` only, so its imports cost nothing to
virtualenv runs that use another seeder.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .bytecode import Interpreter
from .errors import HoloCloneError, MaterializeError
from .importer import ensure_catalog
from .materializer import Layout, Materializer
from .plugins import policy as resolve_policy
from .report import Report
from .store import Store

if TYPE_CHECKING:
    from virtualenv.create.creator import Creator

    from .catalog import Catalog
    from .seeder import HoloCloneSeeder

LOG = logging.getLogger("holoclone")


def seed_environment(seeder: HoloCloneSeeder, creator: Creator) -> Report:
    """Seed ``creator``'s environment; raise a :class:`HoloCloneError` with one clear sentence on failure."""
    try:
        return _seed(seeder, creator)
    except HoloCloneError as error:
        raise SeedError(str(error)) from None


class SeedError(RuntimeError):
    """What virtualenv shows: its message is the user-facing sentence."""


def _seed(seeder: HoloCloneSeeder, creator: Creator) -> Report:
    start = time.perf_counter()
    settings = seeder.settings
    store = Store(settings.store, settings.lock_timeout)
    store.check(create=True)
    policy = resolve_policy(settings)
    info = creator.interpreter
    interpreter = Interpreter(str(creator.exe), info.implementation, tuple(info.version_info[:2]))
    report = Report(store=str(store.root), strategy=policy.strategy.name)

    wheels = list(_seed_wheels(seeder, creator).values())
    if settings.requirements or settings.packages:
        from .dependencies import resolve_wheels

        wheels.extend(resolve_wheels(settings, store, creator, seeder))
    catalogs: list[Catalog] = []
    for wheel in wheels:
        catalog, imported = ensure_catalog(store, wheel, interpreter, _progress_for(wheel))
        if imported:
            report.imported.append(wheel.name)
        catalogs.append(catalog)

    if store.writable:
        # Registered before materializing, under the lock gc holds, so gc never
        # removes what this environment is about to use.
        with store.lock("store", "store maintenance ('holoclone store gc')"):
            missing = [c.key for c in catalogs if not store.catalog_path(c.key).exists()]
            if missing:
                raise HoloCloneError(f"catalogs {', '.join(missing)} were removed while seeding.", "Run again.")
            store.add_ref(str(creator.dest), [c.key for c in catalogs])

    version = info.version_info
    layout = Layout(
        purelib=str(creator.purelib),
        platlib=str(creator.platlib),
        scripts=str(creator.script_dir),
        data=str(creator.dest),
        include=os.path.join(str(creator.dest), "include", "site", f"python{version[0]}.{version[1]}"),
        executable=str(creator.exe),
    )
    materializer = Materializer(store, policy, report, strict=settings.strict)
    try:
        for catalog in catalogs:
            materializer.run(catalog, layout)
            report.packages.append(f"{catalog.name} {catalog.version}")
            report.catalogs.append(catalog.key)
    except OSError as error:
        raise MaterializeError(f"writing into {creator.dest} failed: {error}.") from None
    # Tell the import system's directory cache about the new files (as installers do).
    os.utime(creator.purelib)
    report.seconds = time.perf_counter() - start
    # Filesystem names only explain fallbacks, so they are looked up only for those.
    for directory in {d for fb in report.fallbacks for d in (fb.source_dir, fb.target_dir)}:
        report.filesystems[directory] = policy.filesystem_name(directory) or "?"
    creator.pyenv_cfg["holoclone"] = __version__
    creator.pyenv_cfg["holoclone_store"] = str(store.root)
    LOG.warning("%s", report.summary())
    for line in report.fallback_lines():
        LOG.warning("%s", line)
    policy.report_hooks(report)
    return report


def _seed_wheels(seeder: HoloCloneSeeder, creator: Creator) -> dict[str, Path]:
    """pip/setuptools wheels through virtualenv's own acquisition (bundled, search dirs, download)."""
    from virtualenv.seed.wheels import get_wheel

    found: dict[str, Path] = {}
    for distribution, version in seeder.distribution_to_versions().items():
        wheel = None
        error: Exception | None = None
        for download in [True] if seeder.download else [False, True]:
            try:
                wheel = get_wheel(
                    distribution=distribution,
                    version=version,
                    for_py_version=creator.interpreter.version_release_str,
                    search_dirs=seeder.extra_search_dir,
                    download=download,
                    app_data=seeder.app_data,
                    do_periodic_update=seeder.periodic_update,
                    env=seeder.env,
                )
            except Exception as caught:  # virtualenv raises several kinds for failed downloads
                error = caught
                continue
            if wheel is not None:
                break
        if wheel is None:
            import zipfile

            wanted = f"{distribution}{' ' + version if version else ''}"
            if isinstance(error, zipfile.BadZipFile):
                raise HoloCloneError(
                    f"the {wanted} wheel found in {', '.join(map(str, seeder.extra_search_dir)) or 'the wheel cache'} "
                    f"is not a readable zip archive ({error}).",
                    "Delete that wheel file and download it again.",
                )
            detail = f" ({_describe(error)})" if error else ""
            raise HoloCloneError(
                f"no wheel found for {wanted}{detail}.",
                "Pass --extra-search-dir with a folder holding it, or allow --download.",
            )
        found[distribution] = Path(wheel.path)
    return found


def _describe(error: Exception) -> str:
    """A short reason: for a failed ``pip download``, its exit code and last error line."""
    import subprocess

    if isinstance(error, subprocess.CalledProcessError):
        output = "\n".join(str(part or "") for part in (error.stderr, error.output))
        lines = [line.strip() for line in output.splitlines() if line.strip()]
        last = f": {lines[-1]}" if lines else ""
        return f"pip download exited with {error.returncode}{last}".rstrip(".")
    return str(error).rstrip(".") or type(error).__name__


def _progress_for(wheel: Path):
    """A progress callback for big wheels on a terminal, else None."""
    try:
        size = wheel.stat().st_size
    except OSError:
        return None
    if size < 20 << 20:
        return None
    from .progress import bar

    return bar(f"importing {wheel.name}")
