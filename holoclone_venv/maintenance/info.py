"""``holoclone store info``: objects, catalogs, size and the environments using the store."""

from __future__ import annotations

from dataclasses import dataclass

from ..store import Store
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
class StoreInfo:
    root: str
    objects: int
    space: Space
    catalogs: list[CatalogInfo]
    environments: list[Ref]

    def as_dict(self) -> dict:
        return {
            "store": self.root,
            "objects": self.objects,
            "size": self.space.as_dict(),
            "catalogs": [c.as_dict() for c in self.catalogs],
            "environments": [r.as_dict() for r in self.environments if r.live],
            "dead_refs": [r.as_dict() for r in self.environments if not r.live],
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
    return StoreInfo(str(store.root), len(paths), space, catalogs, classify_refs(store))
