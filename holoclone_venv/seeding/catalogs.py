"""Where each catalog of a seeding comes from, decided in one place: :func:`find_catalogs`.

The chain, first answer wins:

1. the plan of a template a whole-tree clone will use (cut-down catalogs: the template holds the
   install root, so whole catalogs need not be read);
2. per wheel, the store's catalog;
3. with a remote store configured, the remote's (pulled into the store);
4. the importer, from the wheel's file (which heals a damaged store on the way).

A wheel is a :class:`~holoclone_venv.environment.WheelRef`: a wheel of a resolution pulled from a
remote store has a name and a digest but no file, and is found by its catalog alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, NamedTuple

from ..errors import RemovedWhileSeeding
from ..store.catalog import catalog_key

if TYPE_CHECKING:
    from ..environment import Interpreter, SeedRequest, WheelRef
    from ..policy import Policy
    from ..report import Report
    from ..settings import Settings
    from ..store import Store
    from ..store.catalog import Catalog


class Found(NamedTuple):
    """The catalogs of a seeding, in the order of its wheels, and, when they are a template plan's cut-down
    ones, the files and bytes each has inside the install root (None: the catalogs are whole)."""

    catalogs: list[Catalog]
    inside: dict[str, tuple[int, int]] | None = None


def find_catalogs(store: Store, policy: Policy, settings: Settings, request: SeedRequest, wheels: list[WheelRef],
                  report: Report) -> Found:
    """The catalog of every wheel for the request's interpreter, through the chain above; the wheels this
    imports are added to ``report.imported``."""
    planned = _from_template(store, policy, wheels, request)
    if planned is not None:
        return planned
    progress = ImportProgress(len(wheels))
    catalogs = [_catalog_of(store, settings, request, wheel, report, progress.for_wheel(index))
                for index, wheel in enumerate(wheels)]
    progress.finish(bool(report.imported))
    return Found(catalogs)


def import_wheel(store: Store, wheel: WheelRef, interpreter: Interpreter, report: Report,
                 progress: Callable[[int, int], None] | None = None) -> Catalog:
    """The catalog of ``wheel`` for ``interpreter`` from its file, imported if the store has none intact
    (the importer and its imports are loaded only here); ``holoclone install`` imports through it too."""
    from ..wheels.importer import ensure_catalog

    if wheel.path is None:  # known by its catalog only, and that catalog is gone
        raise RemovedWhileSeeding(f"the catalog of {wheel.name} was removed while seeding, and the store has "
                                  "no file of the wheel to import it from.", "Run again.")
    catalog, imported = ensure_catalog(store, wheel.path, interpreter, progress)
    if imported:
        report.imported.append(wheel.name)
    return catalog


def materialize_healing(catalogs: list[Catalog], materialize: Callable[[list[Catalog]], None],
                        reimport: Callable[[int], Catalog], doing: str) -> None:
    """Run ``materialize(catalogs)``.  A damaged object found while linking (nothing was linked from it, and
    what the failed pass wrote was removed again) is healed by ``reimport(index)`` of its catalog's wheel,
    whose catalog replaces it in ``catalogs``, and the pass runs once more.  Damaged again right after a
    fresh import, something removes store objects while this runs (a ``holoclone store gc --older-than 0``,
    another tool), so healing cannot win: :class:`RemovedWhileSeeding` names what ``doing`` was."""
    from ..errors import DamagedObject

    try:
        materialize(catalogs)
    except DamagedObject as error:
        index = [c.key for c in catalogs].index(error.catalog_key)
        catalogs[index] = reimport(index)
        try:
            materialize(catalogs)
        except DamagedObject as again:
            raise RemovedWhileSeeding(f"store objects (such as {again.path}) were removed while {doing}.",
                                      "Run again.") from None


def _catalog_of(store: Store, settings: Settings, request: SeedRequest, wheel: WheelRef, report: Report,
                progress: Callable[[int, int], None] | None) -> Catalog:
    tag = request.interpreter.tag
    if settings.remote:  # the store's catalog, else one pulled from the fleet's remote store (remote/)
        from ..remote import find_catalog

        catalog = find_catalog(settings, store, wheel, tag)
    elif wheel.path is not None:
        catalog = store.stored_catalog(wheel.path, tag)  # objects are checked as they are linked
    else:  # known by name and digest only (a remote's resolution)
        catalog = store.load_catalog(catalog_key(wheel.digest, tag)) if wheel.digest is not None else None
    return catalog if catalog is not None else import_wheel(store, wheel, request.interpreter, report, progress)


def _from_template(store: Store, policy: Policy, wheels: list[WheelRef], request: SeedRequest) -> Found | None:
    """The catalogs when a whole-tree clone will use a template that has them, and what its plan says
    lies inside the install root (None: the catalogs are whole); None when there is no template.

    The template holds every file of the install root, so reading every entry of a big set on
    every snapshot seeding (or checking their objects) would cost more than the snapshot: its
    plan's cut-down catalogs are read instead, whole ones where it has none.  The few files
    written outside the template still come from objects, checked as they are linked.
    """
    if policy.tree is None:
        return None
    from ..materialize.tree_clone import template_id

    store.reclaim_tmp_once()
    keys = []
    for wheel in wheels:
        digest = wheel.digest if wheel.digest is not None else store.wheel_digest(_file(wheel))
        keys.append(catalog_key(digest, request.interpreter.tag))
    identity = template_id(keys, request.layout)
    if not store.has_template(identity) or not all(store.catalog_path(key).exists() for key in keys):
        return None
    planned = store.template_plan(identity, keys)
    if planned is not None:
        return Found(*planned)
    loaded = [store.load_catalog(key) for key in keys]
    whole = [catalog for catalog in loaded if catalog is not None]
    return Found(whole) if len(whole) == len(loaded) else None


def _file(wheel: WheelRef) -> Path:
    assert wheel.path is not None, "a wheel without a digest is a file"  # WheelRef.on_disk
    return wheel.path


class ImportProgress:
    """One progress line across ``wheels`` imports (on a terminal only): ``for_wheel(i)`` is the callback
    of the i-th, ``finish`` completes the line when anything was imported."""

    def __init__(self, wheels: int) -> None:
        from ..progress import bar

        self.wheels = wheels
        self.bar = bar(f"holoclone: importing {wheels} wheel{'s' if wheels != 1 else ''} into the store")

    def for_wheel(self, index: int) -> Callable[[int, int], None] | None:
        if self.bar is None:
            return None
        bar, wheels = self.bar, self.wheels

        def progress(done: int, total: int) -> None:
            bar(index * 1000 + 1000 * done // max(total, 1), wheels * 1000)

        return progress

    def finish(self, imported: bool) -> None:
        if self.bar is not None and imported:
            self.bar(1, 1)
