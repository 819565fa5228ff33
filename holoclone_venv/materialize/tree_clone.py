"""Whole-tree materialization: an environment's site-packages as one clone of a template.

Where the platform can clone a directory tree in one call (a btrfs
snapshot, a macOS directory clone), the store keeps a sealed template of the
install root per (interpreter, set of catalogs, scheme layout), built once
by the per-file path.  A new environment then gets its site-packages as one
clone of it, plus what differs per environment: files outside the install
root (console scripts, ``.data`` scripts, headers, data), RECORD, and
virtualenv's own files.

Beside each template the store keeps its *plan*: the catalogs cut down to
what a clone still needs (entries outside the install root, scripts, the
header that names the RECORD object) with the number and size of the files
inside it.  A seeding from a template reads the plan instead of whole
catalogs (for torch+numpy+pandas+scipy: 16 small documents instead of
28,000 entries); the plan is validated like any catalog, and without one
(or with one that does not fit) the whole catalogs are read as before.

The clone is made beside site-packages, finished there, and swapped in last,
so a killed run never leaves a site-packages that looks seeded.  Anything
that prevents the clone (another filesystem, a template of another account,
a site-packages that already holds packages) is an :class:`Unsupported`
with the reason; the caller falls back to the per-file path.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from typing import TYPE_CHECKING

from ..errors import StrictModeError, Unsupported
from ..report import Fallback

if TYPE_CHECKING:
    from ..store.catalog import Catalog
    from ..environment import Layout
    from .materializer import Materializer
    from ..platforms import TreeCloner
    from ..store import Store

LOG = logging.getLogger("holoclone")

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


def clone_or_fall_back(store: Store, tree: TreeCloner, whole_tree: bool, materializer: Materializer,
                       catalogs: list[Catalog], layout: Layout, inside: dict[str, tuple[int, int]] | None) -> bool:
    """Seed site-packages as one clone of a template (:func:`clone_install_root`); False when it cannot be
    made here, with the fallback recorded, so the caller goes on file by file.

    ``whole_tree``: the strategy asked for whole trees (``snapshot``); then the fallback is reported
    (and refused under ``--holoclone-strict``).  Otherwise the clone was smart's opportunistic try,
    whose per-file path is what smart promises, and its failure is only logged.
    """
    try:
        clone_install_root(store, tree, materializer, catalogs, layout, inside)
    except Unsupported as error:
        if not whole_tree:
            LOG.info("holoclone: no whole-tree clone here (%s); cloning file by file", error.reason)
            return False
        if materializer.linker.strict:
            raise StrictModeError(
                f"a whole-tree clone of site-packages failed ({error.reason}) and --holoclone-strict forbids "
                "falling back to the per-file path.",
                "Keep the store and the environment on one btrfs filesystem, or drop --holoclone-strict.",
            ) from None
        materializer.linker.record_fallback(
            Fallback("snapshot", "per-file", error.reason, error.errno, str(store.templates), layout.purelib, 1))
        materializer.report.fallbacks = materializer.linker.fallbacks
        return False
    return True


def clone_install_root(store: Store, tree: TreeCloner, materializer: Materializer, catalogs: list[Catalog], layout: Layout,
                       inside: dict[str, tuple[int, int]] | None = None) -> str:
    """Give the environment its site-packages as one clone of the template, then finish it per environment.

    ``catalogs`` are whole, or the cut-down ones of the template's plan with
    ``inside`` (catalog key -> files and bytes in the install root).  Returns
    the template id (the environment's ref names it, so gc keeps it).  Raises
    :class:`Unsupported` (nothing changed in the environment) when a
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
    if inside is not None and not store.has_template(identity):
        raise Unsupported("the template was removed while seeding")  # a plan's catalogs cannot build one
    parent = os.path.dirname(root)
    new, old = os.path.join(parent, _NEW), os.path.join(parent, _OLD)
    for leftover in (new, old):  # of a killed run
        if os.path.lexists(leftover):
            tree.remove(leftover)
    template = _template(store, tree, materializer, catalogs, layout, identity, new)
    # In use while cloned: gc skips a template whose use lock it cannot take (a sealed
    # template's mtime never changes, so its age says nothing about a clone in progress).
    with store.template_in_use(identity):
        if not store.has_template(identity):
            raise Unsupported("the template was removed while seeding")
        tree.clone(str(template), new)
    try:
        _check_clone(store, tree, identity, new)
        in_clone = layout._replace(purelib=new, platlib=new)
        for catalog in catalogs:
            materializer.finish_clone(catalog, in_clone, inside.get(catalog.key) if inside else None)
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


def _template(store: Store, tree: TreeCloner, materializer: Materializer, catalogs: list[Catalog], layout: Layout,
              identity: str, probe: str):
    """The sealed template, built now (once, under a lock) when the store has none.

    Before building, the empty template is cloned to ``probe`` (absent; beside
    the environment's site-packages) and that clone removed: a target on
    another volume or filesystem fails there, at the cost of one empty clone,
    not after a whole per-file build, and no template is left behind.
    """
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
            tree.clone(staging, probe)  # Unsupported where cloning into the environment cannot work
            tree.remove(probe)
            # Files outside the install root go to a scratch folder: they are written per environment.
            outside = layout._replace(purelib=staging, platlib=staging, scripts=os.path.join(scratch, "bin"),
                              data=scratch, include=os.path.join(scratch, "include"))
            builder = materializer.for_template()
            builder.run(catalogs, outside)
            from ..platforms import current
            from ..store.templates import listing, walk_files

            # On disk before anything names it: the files written into the template (RECORD,
            # INSTALLER, copies) are trusted from now on, and no later call flushes them.
            current().make_durable(staging, walk_files(staging))
            tree.seal(staging)
            files = listing(staging)
            store.write_atomically(store.template_files_path(identity), files.to_json())
            adopted = store.adopt_template(staging, identity)
            store.write_template_plan(identity, catalogs, len(files.entries))
            return adopted
        except BaseException:
            tree.remove(staging)
            raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def _check_clone(store: Store, tree: TreeCloner, identity: str, clone: str) -> None:
    """Count the entries of a fresh clone against the template's plan (raises :class:`Unsupported` when short).

    A clone made while the template was being removed (by a gc that did not
    see the use lock: an older holoclone) is partial; it must never become an
    environment's site-packages.  Where clones keep the template's sealed
    modes (a macOS directory clone), the owner's write bits come back here,
    as a per-file clone would have made them.
    """
    from ..store.templates import count_entries

    expected = store.template_plan_entries(identity)
    found = count_entries(clone, writable=tree.clones_keep_seal)
    if expected is not None and found != expected:
        raise Unsupported(f"the clone of the template holds {found} of its {expected} entries "
                          "(the template was removed while it was cloned)")
