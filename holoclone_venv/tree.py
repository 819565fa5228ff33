"""Whole-tree materialization: an environment's site-packages as one clone of a template.

Where the platform can clone a directory tree in one call (a btrfs
snapshot, a macOS directory clone), the store keeps a sealed template of the
install root per (interpreter, set of catalogs, scheme layout), built once
by the per-file path.  A new environment then gets its site-packages as one
clone of it, plus what differs per environment: files outside the install
root (console scripts, ``.data`` scripts, headers, data), RECORD, and
virtualenv's own files.

The clone is made beside site-packages, finished there, and swapped in last,
so a killed run never leaves a site-packages that looks seeded.  Anything
that prevents the clone (another filesystem, a template of another account,
a site-packages that already holds packages) is an :class:`Unsupported`
with the reason; the caller falls back to the per-file path.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from typing import TYPE_CHECKING

from .errors import Unsupported

if TYPE_CHECKING:
    from .catalog import Catalog
    from .environment import Layout
    from .materializer import Materializer
    from .store import Store

#: Files virtualenv itself puts into site-packages before seeding (kept in the clone).
_VIRTUALENV_FILES = ("_virtualenv.pth", "_virtualenv.py")
_NEW = ".site-packages.holoclone-new"
_OLD = ".site-packages.holoclone-old"


def template_id(catalog_keys: list[str], layout: Layout) -> str:
    """Names the template for these catalogs in this scheme layout (paths relative to the install root)."""
    root = layout.purelib
    relative = {name: os.path.relpath(path, root) for name, path in
                (("scripts", layout.scripts), ("data", layout.data), ("include", layout.include))}
    document = {"format": 1, "catalogs": sorted(catalog_keys), "layout": relative}
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:32]


def clone_install_root(store: Store, tree, materializer: Materializer, catalogs: list[Catalog], layout: Layout) -> str:
    """Give the environment its site-packages as one clone of the template, then finish it per environment.

    Returns the template id (the environment's ref names it, so gc keeps it).
    Raises :class:`Unsupported` (nothing changed in the environment) when a
    whole-tree clone cannot be made here; other errors after the clone was
    made remove it again.
    """
    root = layout.purelib
    if layout.platlib != root:
        raise Unsupported("purelib and platlib are different directories here")
    if any(catalog.root not in ("purelib", "platlib") for catalog in catalogs):
        raise Unsupported("a catalog installs outside site-packages")
    extra = sorted(set(os.listdir(root)) - set(_VIRTUALENV_FILES))
    if extra:
        raise Unsupported(f"{root} already holds {extra[0]} (a whole-tree clone only fills a new environment)")
    identity = template_id([c.key for c in catalogs], layout)
    template = _template(store, tree, materializer, catalogs, layout, identity)
    parent = os.path.dirname(root)
    new, old = os.path.join(parent, _NEW), os.path.join(parent, _OLD)
    for leftover in (new, old):  # of a killed run
        if os.path.lexists(leftover):
            tree.remove(leftover)
    tree.clone(str(template), new)
    try:
        in_clone = layout._replace(purelib=new, platlib=new)
        for catalog in catalogs:
            materializer.finish_clone(catalog, in_clone)
        for name in _VIRTUALENV_FILES:
            source = os.path.join(root, name)
            if os.path.exists(source):
                shutil.copy2(source, os.path.join(new, name))
        # Swap last: until here the environment's site-packages is virtualenv's, untouched.
        os.rename(root, old)
        os.rename(new, root)
    except BaseException:
        if not os.path.exists(root) and os.path.exists(old):
            os.rename(old, root)
        tree.remove(new)
        raise
    tree.remove(old)
    return identity


def _template(store: Store, tree, materializer: Materializer, catalogs: list[Catalog], layout: Layout,
              identity: str):
    """The sealed template, built now (once, under a lock) when the store has none."""
    if store.has_template(identity):
        return store.template_path(identity)
    store.require_writable("a template")
    with store.template_lock(identity):
        if store.has_template(identity):
            return store.template_path(identity)
        staging = store.template_staging(identity)
        tree.prepare_template(staging)  # Unsupported where the filesystem cannot clone trees
        scratch = f"{staging}.outside"
        try:
            # Files outside the install root go to a scratch folder: they are written per environment.
            outside = layout._replace(purelib=staging, platlib=staging, scripts=os.path.join(scratch, "bin"),
                              data=scratch, include=os.path.join(scratch, "include"))
            builder = materializer.for_template()
            for catalog in catalogs:
                builder.run(catalog, outside)
            from .platforms import current

            current().make_durable(staging, [])  # on disk before anything names it
            tree.seal(staging)
            return store.adopt_template(staging, identity)
        except BaseException:
            tree.remove(staging)
            raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
