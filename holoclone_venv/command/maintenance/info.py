"""``holoclone store info``: objects, catalogs, size and the environments using the store."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ...store import Store
from . import Progress, file_size, read_catalogs
from .refs import Ref, classify_refs
from .space import Space, measure


@dataclass
class CatalogInfo:
    key: str
    name: str = ""
    version: str = ""
    tag: str = ""
    files: int = 0
    error: str = ""

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v != "" or k in ("key", "name")}


@dataclass
class TemplateInfo:
    id: str
    files: int
    space: Space
    environments: int  # live environments cloned from it

    def as_dict(self) -> dict:
        return {"id": self.id, "files": self.files, "size": self.space.as_dict(), "environments": self.environments}


@dataclass
class StoreInfo:
    root: str
    objects: int
    space: Space
    catalogs: list[CatalogInfo]
    environments: list[Ref]
    templates: list[TemplateInfo] = field(default_factory=list)
    wheels: int = 0  # wheels kept for dependency sets

    def as_dict(self) -> dict:
        return {
            "store": self.root,
            "objects": self.objects,
            "size": self.space.as_dict(),
            "catalogs": [c.as_dict() for c in self.catalogs],
            "environments": [r.as_dict() for r in self.environments if r.live],
            "dead_refs": [r.as_dict() for r in self.environments if not r.live],
            "templates": [t.as_dict() for t in self.templates],
            "wheels": self.wheels,
        }


def info(store: Store, progress: Progress | None = None) -> StoreInfo:
    """Objects, catalogs, size (apparent and physical) and the environments using the store."""
    paths = [str(path) for _, _, path in store.iter_objects()]
    total = sum(file_size(p) for p in paths) if progress else 0
    space = measure(paths, progress=progress, total=total)
    catalogs = []
    for key, catalog, error in read_catalogs(store):
        if catalog is None:
            catalogs.append(CatalogInfo(key, error=error))
        else:
            catalogs.append(CatalogInfo(key, catalog.name, catalog.version, catalog.tag, len(catalog.entries)))
    refs = classify_refs(store)
    templates = []
    for identity, path in store.iter_templates():
        files = [os.path.join(d, n) for d, _, names in os.walk(path) for n in names]
        users = sum(1 for ref in refs if ref.live and ref.template == identity)
        # Shared with the store's objects (reflinked from them): only what it holds alone.
        templates.append(TemplateInfo(identity, len(files), measure(files, exclusive=True), users))
    wheels = sum(1 for _ in store.iter_wheels())
    return StoreInfo(str(store.root), len(paths), space, catalogs, refs, templates, wheels)


def list_catalogs(store: Store) -> list[CatalogInfo]:
    """Every catalog, by name and then version in release order (9.0 before 10.0); unreadable ones last."""
    found = [CatalogInfo(key, catalog.name, catalog.version, catalog.tag, len(catalog.entries)) if catalog
             else CatalogInfo(key, error=error) for key, catalog, error in read_catalogs(store)]
    return sorted(found, key=lambda c: (bool(c.error), c.name.lower(), _release(c.version), c.tag, c.key))


def _release(version: str) -> tuple:
    """A sort key in release order (1.2rc1 before 1.2); a string that is no version after every version."""
    from packaging.version import InvalidVersion, Version

    try:
        return (0, Version(version))
    except InvalidVersion:
        return (1, version)
