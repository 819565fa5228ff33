"""One seeding run on plain values: wheels -> store import -> catalogs -> materializer -> report.

Imported by :meth:`HoloCloneSeeder.run` only, so its imports cost nothing to
virtualenv runs that use another seeder.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DamagedObject, RemovedWhileSeeding, os_error
from ..materialize.materializer import Materializer
from ..plugins import shared
from ..policy import resolve_policy
from ..report import Report
from ..store import Store

if TYPE_CHECKING:
    from ..store.catalog import Catalog
    from ..environment import SeedRequest
    from ..policy import Policy
    from ..settings import Settings

LOG = logging.getLogger("holoclone")


def seed(request: SeedRequest, settings: Settings) -> Report:
    """Seed the environment ``request`` describes; raise :class:`HoloCloneError` with one clear sentence on failure."""
    start = time.perf_counter()
    store = Store(settings.store, settings.lock_timeout)
    store.check(create=True)
    policy = resolve_policy(settings, shared(request.plugin_entry_points))
    report = Report(store=str(store.root), strategy=policy.strategy.name)
    if settings.remote:
        from ..remote import forget

        forget(settings.remote)

    wheels = list(request.seed_wheels)
    if settings.requirements or settings.packages:
        from .dependencies import resolve_wheels

        wheels.extend(resolve_wheels(settings, store, request))
    catalogs, inside = _catalogs_of_a_template(store, policy, wheels, request) or ([], None)
    progress = _ImportProgress(len(wheels))
    for index, wheel in enumerate([] if catalogs else wheels):
        if settings.remote:  # the store's catalog, else one pulled from the fleet's remote store (remote/)
            from ..remote import find_catalog

            catalog = find_catalog(settings, store, wheel, request.interpreter.tag)
        else:
            catalog = store.stored_catalog(wheel, request.interpreter.tag)  # objects are checked as they are linked
        if catalog is None:  # not imported yet: the importer (and its imports) only then
            from ..wheels.importer import ensure_catalog

            catalog, imported = ensure_catalog(store, wheel, request.interpreter, progress.for_wheel(index, wheel))
            if imported:
                report.imported.append(wheel.name)
        catalogs.append(catalog)
    progress.finish(bool(report.imported))

    template = None
    if policy.tree is not None:
        from ..materialize.tree_clone import template_id

        template = template_id([c.key for c in catalogs], request.layout)
    if store.writable:
        # Registered before materializing, under the lock gc holds, so gc never
        # removes what this environment is about to use.
        with store.lock():
            missing = [c.key for c in catalogs if not store.catalog_path(c.key).exists()]
            if missing:
                raise RemovedWhileSeeding(f"catalogs {', '.join(missing)} were removed while seeding.", "Run again.")
            store.add_ref(request.env_dir, [c.key for c in catalogs], template)

    materializer = Materializer(store, policy, report, strict=settings.strict)
    try:
        try:
            _materialize(store, policy, materializer, catalogs, request, report, inside)
        except DamagedObject as error:
            # Found while linking, before anything was linked from it (what the failed pass wrote
            # was removed again): import its wheel again, which heals the store, and materialize
            # once more, counting afresh.
            index = [c.key for c in catalogs].index(error.catalog_key)
            catalogs[index] = _imported_again(store, wheels[index], request, report)
            report = Report(store=report.store, strategy=report.strategy, imported=report.imported)
            materializer = Materializer(store, policy, report, strict=settings.strict)
            try:
                _materialize(store, policy, materializer, catalogs, request, report, inside)
            except DamagedObject as again:
                # Gone again right after a fresh import: something removes store objects while this
                # runs (a 'holoclone store gc --older-than 0', another tool), so healing cannot win.
                raise RemovedWhileSeeding(f"store objects (such as {again.path}) were removed while seeding.",
                                          "Run again.") from None
        for catalog in catalogs:
            report.packages.append(f"{catalog.name} {catalog.version}")
            report.catalogs.append(catalog.key)
        # Tell the import system's directory cache about the new files (as installers do).
        os.utime(request.layout.purelib)
    except OSError as error:
        raise os_error(error, f"writing into {request.env_dir}") from None
    if settings.remote:  # said in the summary, which virtualenv prints at its default verbosity
        from ..remote import not_used

        report.remote = not_used(settings.remote)
    report.seconds = time.perf_counter() - start
    # Filesystem names only explain fallbacks, so they are looked up only for those.
    for directory in {d for fb in report.fallbacks for d in (fb.source_dir, fb.target_dir)}:
        report.filesystems[directory] = policy.filesystem_name(directory) or "?"
    # virtualenv prints the summary itself, in its report's seeder line (the seeder's repr).
    LOG.info("holoclone: %s", report.summary())
    for actionable, line in report.fallback_lines():
        LOG.log(logging.WARNING if actionable else logging.INFO, "%s", line)
    policy.report(report)
    return report


def _catalogs_of_a_template(store: Store, policy: Policy, wheels: list[Path],
                            request: SeedRequest) -> tuple[list[Catalog], dict[str, tuple[int, int]] | None] | None:
    """The catalogs when a whole-tree clone will use a template that has them, and what its plan says
    lies inside the install root (None: the catalogs are whole); None when there is no template.

    The template holds every file of the install root, so reading 28,000
    entries of a big set on every snapshot seeding (or checking their objects)
    would cost more than the snapshot: its plan's cut-down catalogs are read
    instead, whole ones where it has none.  The few files written outside the
    template still come from objects, checked as they are linked.
    """
    if policy.tree is None:
        return None
    from ..store.catalog import catalog_key
    from ..materialize.tree_clone import template_id

    store.reclaim_tmp_once()
    keys = [catalog_key(store.wheel_digest(wheel), request.interpreter.tag) for wheel in wheels]
    identity = template_id(keys, request.layout)
    if not store.has_template(identity) or not all(store.catalog_path(key).exists() for key in keys):
        return None
    planned = store.template_plan(identity, keys)
    if planned is not None:
        return planned
    loaded = [store.load_catalog(key) for key in keys]
    whole = [catalog for catalog in loaded if catalog is not None]
    return (whole, None) if len(whole) == len(loaded) else None


def _materialize(store: Store, policy: Policy, materializer: Materializer, catalogs: list[Catalog], request: SeedRequest,
                 report: Report, inside: dict[str, tuple[int, int]] | None) -> None:
    """The environment's files from ``catalogs``: one whole-tree clone where the policy has one, else per file
    (with ``catalogs`` made whole first when they are a template plan's)."""
    if policy.tree is not None:
        from ..materialize.tree_clone import clone_or_fall_back

        if clone_or_fall_back(store, policy.tree, policy.strategy.whole_tree, materializer, catalogs, request.layout,
                              inside):
            return
    if inside is not None:
        catalogs[:] = [store.require_catalog(catalog.key) for catalog in catalogs]
    materializer.run(catalogs, request.layout)


def _imported_again(store: Store, wheel: Path, request: SeedRequest, report: Report) -> Catalog:
    """The catalog of ``wheel`` after importing it again (a damaged object is replaced by the import)."""
    from ..wheels.importer import ensure_catalog

    catalog, imported = ensure_catalog(store, wheel, request.interpreter)
    if imported:
        report.imported.append(wheel.name)
    return catalog


class _ImportProgress:
    """One progress line across every wheel a cold run imports (on a terminal only)."""

    def __init__(self, wheels: int) -> None:
        from ..progress import bar

        self.wheels = wheels
        self.bar = bar(f"holoclone: importing {wheels} wheel{'s' if wheels != 1 else ''} into the store")

    def for_wheel(self, index: int, wheel: Path):
        if self.bar is None:
            return None
        bar, wheels = self.bar, self.wheels

        def progress(done: int, total: int) -> None:
            bar(index * 1000 + 1000 * done // max(total, 1), wheels * 1000)

        return progress

    def finish(self, imported: bool) -> None:
        if self.bar is not None and imported:
            self.bar(1, 1)
