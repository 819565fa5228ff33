"""A plan carried out: old versions set aside, wheels materialized from the store, metadata, the rest by pip.

Order, so that a failure anywhere leaves the environment as it was:

1. every ``store`` wheel is imported into the store (once per wheel and interpreter);
2. the installed versions that the planned ``store`` and ``local`` items replace are moved aside
   (``replace.py``);
3. the catalogs are materialized with the environment's strategy (``Materializer``: reflink where
   possible, bytecode shipped, console scripts for the environment's interpreter, RECORD,
   INSTALLER), then ``REQUESTED`` and ``direct_url.json`` (PEP 610) are added to RECORD;
4. ``local`` wheels (named on the command line, or built by ``build.py`` from a local project) are
   installed with ``installer`` (a project's wheel, rebuilt on every tox run, would make the store
   grow without bound, so it is never kept there);
5. ``pip`` items go to the environment's pip with ``--no-deps`` (their dependencies are in place).

On failure the new distributions are removed by their RECORD and the set-aside files put back.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ...environment import WheelRef
from ...fsutil import remove_emptied_folders
from ...materialize import record
from ...seeding.catalogs import ImportProgress, import_wheel, materialize_healing
from .plan import InstallError, run_pip
from .replace import SetAside, reclaim
from .target import Target

if TYPE_CHECKING:
    from ...store.catalog import Catalog
    from ...policy import Policy
    from ...report import Report
    from ...settings import Settings
    from ...store import Store

LOG = logging.getLogger("holoclone")
_INSTALLER = b"holoclone\n"


def catalogs_for(store: Store, wheels: list[Path], target: Target, report: Report) -> list[Catalog]:
    """The catalog of each wheel for the target interpreter, importing the wheels not imported yet (with one
    progress bar over them, on a terminal).  The objects are checked as they are linked, not here."""
    found: list[Catalog | None] = [store.stored_catalog(wheel, target.interpreter.tag) for wheel in wheels]
    cold = [index for index, catalog in enumerate(found) if catalog is None]
    progress = ImportProgress(len(cold))
    for number, index in enumerate(cold):
        found[index] = import_wheel(store, WheelRef.on_disk(wheels[index]), target.interpreter, report,
                                    progress.for_wheel(number))
    progress.finish(bool(cold))
    return found  # type: ignore[return-value]


def apply(store: Store, policy: Policy, settings: Settings, target: Target, items: list[dict],
          ready: dict[str, Catalog], wheel_of: Callable[[dict], Path], pip: list[str], forwarded: list[str],
          force_reinstall: bool, report: Report) -> None:
    """Carry out ``items`` (see the module's docstring); raises :class:`InstallError`, environment unchanged.

    ``ready`` holds the catalogs the store has already (by item name); the other ``store`` items are
    imported from ``wheel_of(item)``, the wheel in the store (fetched when missing).
    """
    from ...materialize.materializer import Materializer

    stored = [item for item in items if item["kind"] == "store"]
    local = [item for item in items if item["kind"] == "local"]
    by_pip = [item for item in items if item["kind"] == "pip"]
    cold = [item for item in stored if item["name"] not in ready]
    imported = dict(zip((item["name"] for item in cold),
                        catalogs_for(store, [wheel_of(item) for item in cold], target, report)))
    catalogs = [ready.get(item["name"]) or imported[item["name"]] for item in stored]
    if store.writable and catalogs:
        with store.lock():  # under the lock gc holds, before linking: gc keeps what this install uses
            store.extend_ref(target.env_dir, [c.key for c in catalogs])
    reclaim(target.env_dir)
    aside = SetAside(target.env_dir, target.site_dirs)
    installed: list[str] = []
    try:
        aside.take(item["name"] for item in stored + local)
        installed += [item["name"] for item in stored]
        # An object damaged since import is healed by importing its wheel again, once, as a seeding does.
        materialize_healing(catalogs, lambda found: Materializer(store, policy, report, strict=settings.strict).run(
            found, target.layout), lambda index: import_wheel(store, WheelRef.on_disk(wheel_of(stored[index])),
                                                              target.interpreter, report), "installing")
        for item, catalog in zip(stored, catalogs):
            root = target.layout.scheme_dirs(catalog.name)[catalog.root]
            add_metadata(os.path.join(root, catalog.dist_info), _extra_files(item))
            report.packages.append(f"{catalog.name} {catalog.version}")
        for item in local:
            installed.append(item["name"])
            install_local_wheel(item, target)
            report.packages.append(f"{item['name']} {item['version']}")
        if by_pip:
            _pip_install(pip, by_pip, forwarded, force_reinstall)
            for item in by_pip:
                if not item["requested"]:  # named on pip's command line only because a requirement needs it
                    _unrequest(item, target)
            report.packages += [f"{item['name']} {item['version']}" for item in by_pip]
        os.utime(target.layout.purelib)  # the import system's directory cache sees the new files
    except BaseException:
        from ...materialize.uninstall import remove_distribution

        removed = [path for name in installed for site in target.site_dirs
                   for path in remove_distribution(name, site, target.env_dir)]
        remove_emptied_folders(removed, target.env_dir, [target.env_dir, *target.site_dirs, target.layout.scripts])
        aside.restore()
        raise
    aside.commit()


def _extra_files(item: dict) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    if item["requested"]:
        files["REQUESTED"] = b""
    if item["direct_url"] is not None:
        files["direct_url.json"] = json.dumps(item["direct_url"], sort_keys=True).encode()
    return files


def add_metadata(dist_info: str, files: dict[str, bytes]) -> None:
    """Write ``files`` into an installed ``.dist-info`` and list them in its RECORD."""
    if not files:
        return
    from ...fsutil import write_atomic

    name = os.path.basename(dist_info)
    rows = []
    for file_name, data in files.items():
        write_atomic(os.path.join(dist_info, file_name), data, mode=0o644)
        rows.append((f"{name}/{file_name}", record.hash_of(data), len(data)))
    with open(os.path.join(dist_info, "RECORD"), "ab") as handle:
        handle.write(record.record_bytes(rows))


def install_local_wheel(item: dict, target: Target) -> None:
    """Install a wheel file named on the command line without pip and without keeping it in the store.

    ``installer`` writes it (checked against its RECORD first), with scripts for the environment's
    interpreter, INSTALLER, REQUESTED and ``direct_url.json``; bytecode is compiled when this
    process runs the environment's Python version, else on first import.  What it wrote before a
    failure is removed again.
    """
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    from installer import install
    from installer.destinations import SchemeDictionaryDestination
    from installer.sources import WheelFile
    from installer.utils import get_launcher_kind

    written: list[str] = []

    class Tracking(SchemeDictionaryDestination):
        def write_file(self, scheme, path, stream, is_executable):
            written.append(os.path.join(self.scheme_dict[scheme], os.fspath(path)))
            return super().write_file(scheme, path, stream, is_executable)

    path = item.get("wheel") or url2pathname(urlparse(item["url"]).path)  # a wheel holoclone built, or the named one
    layout = target.layout
    schemes = {**layout.scheme_dirs(item["name"])}
    destination = Tracking(schemes, interpreter=layout.executable, script_kind=get_launcher_kind(),
                           bytecode_optimization_levels=(0,) if target.interpreter.is_running else ())
    metadata = {"INSTALLER": _INSTALLER, **_extra_files(item)}
    try:
        with WheelFile.open(Path(path)) as source:
            source.validate_record()
            install(source, destination, metadata)
    except BaseException as error:
        for file in written:
            try:
                os.unlink(file)
            except OSError:
                pass
        if isinstance(error, (OSError, ValueError, KeyError)):
            raise InstallError(f"the wheel {path} could not be installed: {error}; nothing was changed.",
                               "Rebuild it.") from None
        raise


def _unrequest(item: dict, target: Target) -> None:
    """Remove the ``REQUESTED`` marker (and its RECORD row) pip wrote for a dependency it was handed."""
    from ...store.catalog import canonical_name

    wanted = (canonical_name(item["name"]), item["version"])
    for site in target.site_dirs:
        for entry in os.listdir(site):
            name, _, version = entry[: -len(".dist-info")].rpartition("-")
            if not entry.endswith(".dist-info") or (canonical_name(name), version) != wanted:
                continue
            marker = os.path.join(site, entry, "REQUESTED")
            if os.path.exists(marker):
                os.unlink(marker)
                path = os.path.join(site, entry, "RECORD")
                with open(path, "rb") as handle:
                    rows = [row for row in handle.read().splitlines(keepends=True)
                            if not row.startswith(f"{entry}/REQUESTED,".encode())]
                from ...fsutil import write_atomic

                write_atomic(path, b"".join(rows), mode=0o644)


def _pip_install(pip: list[str], items: list[dict], forwarded: list[str], force_reinstall: bool) -> None:
    """What holoclone does not build (editables, folders, sdists, VCS): the environment's pip, ``--no-deps``.

    When every item is an sdist from an index with the sha256 pip planned with, they are handed over as a
    requirements file with those hashes, so pip builds exactly the archive it planned with.
    """
    import tempfile

    hashed = all(item["sha256"] and item["direct_url"] is None and item["pip"] == [f"{item['name']}=={item['version']}"]
                 for item in items)
    with tempfile.TemporaryDirectory(prefix="holoclone-install-") as scratch:
        if hashed:
            listed = os.path.join(scratch, "planned.txt")
            with open(listed, "w", encoding="utf-8") as handle:
                handle.writelines(f"{item['name']}=={item['version']} --hash=sha256:{item['sha256']}\n" for item in items)
            specs = ["--require-hashes", "-r", listed]
        else:
            specs = [arg for item in items for arg in item["pip"]]
        cmd = [*pip, "install", "--no-deps", "--disable-pip-version-check",
               *(["--force-reinstall"] if force_reinstall else []), *forwarded, *specs]
        LOG.debug("holoclone: handing %s to pip: %s", ", ".join(item["name"] for item in items), " ".join(cmd))
        result = run_pip(cmd)
    LOG.debug("%s", result.stdout + result.stderr)
    if result.returncode:
        from ...seeding.dependencies import last_pip_error

        raise InstallError(f"pip could not install {', '.join(item['name'] for item in items)}: "
                           f"{last_pip_error(result.stderr, result.stdout)}",
                           "The environment was left as it was.")
