"""One seeding run on plain values: wheels -> catalogs -> registration -> materializer -> report.

Imported by :meth:`HoloCloneSeeder.run` only, so its imports cost nothing to
virtualenv runs that use another seeder.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING

from ..environment import WheelRef
from ..errors import RemovedWhileSeeding, os_error
from ..materialize.materializer import Materializer
from ..plugins import shared
from ..policy import resolve_policy
from ..report import Report
from ..store import Store
from .catalogs import Found, find_catalogs, import_wheel, materialize_healing

if TYPE_CHECKING:
    from ..environment import SeedRequest
    from ..policy import Policy
    from ..settings import Settings
    from ..store.catalog import Catalog

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
    wheels = _wheels(settings, store, request)
    found = find_catalogs(store, policy, settings, request, wheels, report)
    _register(store, policy, request, found.catalogs)
    report = _materialize_healing(store, policy, settings, request, wheels, found, report)
    _finish(report, policy, settings, start)
    return report


def _wheels(settings: Settings, store: Store, request: SeedRequest) -> list[WheelRef]:
    """The seed's wheels (pip, setuptools), then those of the requirements and packages, resolved once."""
    wheels = [WheelRef.on_disk(path) for path in request.seed_wheels]
    if settings.requirements or settings.packages:
        from .dependencies import resolve_wheels

        wheels.extend(resolve_wheels(settings, store, request))
    return wheels


def _register(store: Store, policy: Policy, request: SeedRequest, catalogs: list[Catalog]) -> None:
    """Record the environment's catalogs (and template) in its ref before materializing, under the lock gc
    holds, so gc never removes what this environment is about to use (a read-only store keeps no refs)."""
    if not store.writable:
        return
    template = None
    if policy.tree is not None:
        from ..materialize.tree_clone import template_id

        template = template_id([c.key for c in catalogs], request.layout)
    with store.lock():
        missing = [c.key for c in catalogs if not store.catalog_path(c.key).exists()]
        if missing:
            raise RemovedWhileSeeding(f"catalogs {', '.join(missing)} were removed while seeding.", "Run again.")
        store.add_ref(request.env_dir, [c.key for c in catalogs], template)


def _materialize_healing(store: Store, policy: Policy, settings: Settings, request: SeedRequest,
                         wheels: list[WheelRef], found: Found, report: Report) -> Report:
    """Materialize the catalogs; a damaged object found while linking (nothing was linked from it, and what
    the failed pass wrote was removed again) is healed by importing its wheel again, then the whole pass
    runs once more, counting afresh.  Returns the report of the pass that succeeded."""
    catalogs = found.catalogs
    passes = 0

    def one_pass(catalogs: list[Catalog]) -> None:
        nonlocal report, passes
        if passes:  # a pass after a heal counts afresh (what the failed one linked was removed)
            report = Report(store=report.store, strategy=report.strategy, imported=report.imported)
        passes += 1
        _materialize(store, policy, Materializer(store, policy, report, strict=settings.strict), catalogs, request,
                     found.inside)

    try:
        materialize_healing(catalogs, one_pass,
                            lambda index: import_wheel(store, wheels[index], request.interpreter, report), "seeding")
        for catalog in catalogs:
            report.packages.append(f"{catalog.name} {catalog.version}")
            report.catalogs.append(catalog.key)
        # Tell the import system's directory cache about the new files (as installers do).
        os.utime(request.layout.purelib)
    except OSError as error:
        raise os_error(error, f"writing into {request.env_dir}") from None
    return report


def _materialize(store: Store, policy: Policy, materializer: Materializer, catalogs: list[Catalog], request: SeedRequest,
                 inside: dict[str, tuple[int, int]] | None) -> None:
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


def _finish(report: Report, policy: Policy, settings: Settings, start: float) -> None:
    """Complete the report (the remote's account, time, filesystems of fallbacks), say it, hand it to plugins."""
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
