"""``holoclone store gc``: remove what no live environment needs."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ...store import Store
from . import Progress, file_size, held, read_catalogs
from .refs import REF_GRACE, Ref, classify_refs
from .space import Space, measure


def _age(path: Path, now: float) -> float:
    try:
        return now - path.lstat().st_mtime  # a link's own age: nothing is followed out of the store
    except OSError:
        return float("inf")


@dataclass
class GcResult:
    dry_run: bool
    live: list[Ref]
    dead: list[Ref]
    catalogs: list[str]
    objects: int
    index: int
    tmp_reclaimed: int
    frees: Space
    #: Catalogs no live environment uses, kept because they are younger than the grace period.
    kept_young: list[str]
    grace: float = REF_GRACE
    resolutions: int = 0
    templates: list[str] = field(default_factory=list)
    install_plans: int = 0

    def as_dict(self) -> dict:
        return {
            "dry_run": self.dry_run,
            "live_environments": [r.as_dict() for r in self.live],
            "dead_refs": [r.as_dict() for r in self.dead],
            "catalogs_removed": self.catalogs,
            "catalogs_kept_young": self.kept_young,
            "grace_seconds": self.grace,
            "objects_removed": self.objects,
            "index_removed": self.index,
            "resolutions_removed": self.resolutions,
            "templates_removed": self.templates,
            "install_plans_removed": self.install_plans,
            "tmp_reclaimed": self.tmp_reclaimed,
            "frees": self.frees.as_dict(),
        }


def gc(store: Store, dry_run: bool = False, progress: Progress | None = None, older_than: float = REF_GRACE) -> GcResult:
    """Remove everything no live environment needs; with ``dry_run`` only say what would go.

    Keeps the catalogs named by live refs (and catalogs that cannot be read,
    which are ``verify --repair``'s business) and the objects they name.
    Removes dead refs, every other catalog, objects no kept catalog names,
    wheel-index entries, kept wheels and resolutions no kept catalog comes
    from, and stale ``tmp/`` entries.  ``frees`` estimates the space
    returned: physical extents of the removed objects that nothing else
    shares.  A catalog, wheel or resolution younger than ``older_than``
    seconds is kept even when unused: a seeder may have just imported it and
    not yet written its ref (with ``older_than=0`` nothing young is spared,
    which is safe only when no seeder runs).  It holds the store lock
    throughout, except a ``dry_run`` on a store this process cannot write
    (:func:`~holoclone_venv.command.maintenance.held`).
    """
    with held(store, changes=not dry_run):
        refs = classify_refs(store, grace=older_than)
        live = [r for r in refs if r.live]
        dead = [r for r in refs if not r.live]
        wanted = {key for ref in live for key in ref.catalogs}
        keep_objects: set[tuple[str, bool]] = set()
        keep_wheels: set[str] = set()
        drop_catalogs: list[str] = []
        kept_young: list[str] = []
        now = time.time()
        for key, catalog, _ in read_catalogs(store):
            if catalog is None:
                continue
            young = _age(store.catalog_path(key), now) < older_than
            if key in wanted or young:
                if key not in wanted:
                    kept_young.append(key)
                keep_objects |= catalog.objects()
                keep_objects |= {(digest, False) for digest in store.record_digests(key)}
                keep_wheels.add(catalog.wheel_sha256)
            else:
                drop_catalogs.append(key)
        drop_objects = [path for digest, exe, path in store.iter_objects() if (digest, exe) not in keep_objects]
        drop_index = [path for path, digest in store.iter_wheel_index() if digest not in keep_wheels]
        drop_index += [path for digest, path in store.iter_wheels()
                       if digest not in keep_wheels and _age(path, now) >= older_than]
        # A resolution whose wheels are not all kept would send the next seeder to pip anyway.
        drop_resolutions = [
            path for _, path, document in store.iter_resolutions()
            if _age(path, now) >= older_than and not _all_kept(document, keep_wheels)
        ]
        # A template only a dead environment (or none) was cloned from; a young one may be about to be used.
        wanted_templates = {ref.template for ref in live if ref.template}
        drop_templates = [(identity, path) for identity, path in store.iter_templates()
                          if identity not in wanted_templates and _age(path, now) >= older_than]
        dropped = {identity for identity, _ in drop_templates}
        drop_plans = [path for identity, path in store.iter_template_plans()
                      if identity in dropped or not store.has_template(identity)]
        drop_plans += [path for identity, path in store.iter_template_listings()
                       if identity in dropped or not store.has_template(identity)]
        # An install plan past the grace that is not pinned has expired by any usual TTL; one naming a
        # wheel no longer kept would fetch it again: both cost the next 'holoclone install' one pip run.
        drop_install_plans = [path for path, document in store.iter_install_plans()
                              if _age(path, now) >= older_than and not _plan_kept(document, keep_wheels)]
        paths = [str(p) for p in drop_objects]
        total = sum(file_size(p) for p in paths) if progress else 0
        frees = measure(paths, exclusive=True, progress=progress, total=total)
        reclaimed = 0
        in_use: set[str] = set()
        if not dry_run:
            for ref in dead:
                store.remove(ref.path)
            # Catalogs first, objects after: a catalog never names a missing object.
            for key in drop_catalogs:
                store.remove_catalog(key)
            in_use = _remove_templates(store, drop_templates)
            drop_plans = [path for path in drop_plans if not any(path.name.startswith(i) for i in in_use)]
            for path in drop_resolutions + drop_objects + drop_index + drop_plans + drop_install_plans:
                store.remove(path)
            store.remove_empty_folders(store.objects)
            reclaimed = store.reclaim_tmp()
    return GcResult(dry_run, live, dead, drop_catalogs, len(drop_objects), len(drop_index), reclaimed, frees,
                    kept_young, older_than, len(drop_resolutions),
                    [identity for identity, _ in drop_templates if identity not in in_use], len(drop_install_plans))


def _remove_templates(store: Store, templates: list[tuple[str, Path]]) -> set[str]:
    """Remove each template no process is cloning (a seeding holds its use lock while it clones, and a
    sealed template's age says nothing about that); returns the ids of those kept because in use."""
    in_use = set()
    for identity, path in templates:
        with store.template_claim(identity) as free:
            if free:
                store.remove(path)
            else:
                in_use.add(identity)
    return in_use


def _plan_kept(document: dict | None, keep_wheels: set[str]) -> bool:
    """A pinned install plan whose store wheels are all kept."""
    try:
        return document is not None and bool(document) and document["pinned"] is True and all(
            str(item["sha256"]) in keep_wheels for item in document["items"] if item["kind"] == "store")
    except (KeyError, TypeError):
        return False


def _all_kept(document: dict | None, keep_wheels: set[str]) -> bool:
    try:
        return document is not None and bool(document) and all(
            str(digest) in keep_wheels for _, digest in document["wheels"])
    except (KeyError, TypeError, ValueError):
        return False
