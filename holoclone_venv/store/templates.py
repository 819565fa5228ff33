"""Templates: a read-only install root per set of catalogs, cloned whole into new environments.

Part of :class:`~holoclone_venv.store.Store` (a mixin: the store stays the
one owner of its folder names)::

    templates/<id>/     the root scheme directory (site-packages) of one set of
                        catalogs for one interpreter and scheme layout, sealed
                        read-only (on btrfs: a read-only subvolume)
    templates/<id>.plan.json
                        what a clone of it still needs per environment (see
                        ``tree.py``), so a seeding need not read whole catalogs

A template is built beside the others under a staging name
(``templates/.stage-<id>.<pid>.<ns>``) and renamed into place only once
complete and sealed, so a half-built one is never used.  (Beside, not under
``tmp/``: a sealed btrfs subvolume cannot move to another folder, which would
rewrite its ``..``.)  A killed build is reclaimed like any staging leftover.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator

_TEMPLATE_ID = re.compile(r"^[0-9a-f]{32}\Z")


class Templates:
    """Where templates live and how they come and go (needs the store's folders)."""

    # Set by Store, with ``tmp_file`` and ``_lock``.
    root: Path
    templates: Path

    def template_path(self, template_id: str) -> Path:
        """Where the template ``template_id`` lives (it may not exist)."""
        if not _TEMPLATE_ID.match(template_id):
            raise ValueError(f"not a template id: {template_id!r}")
        return self.templates / template_id

    def has_template(self, template_id: str) -> bool:
        """True when the template is in place: a real directory (never a link) of a trusted owner."""
        try:
            st = os.lstat(self.template_path(template_id))
        except OSError:
            return False
        import stat

        return stat.S_ISDIR(st.st_mode) and self.trusted(st)  # type: ignore[attr-defined]

    def template_staging(self, template_id: str) -> str:
        """A fresh path beside the templates to build one in (reclaimed if the builder dies)."""
        import time

        self.make_folder(self.templates)  # type: ignore[attr-defined]
        return f"{self.templates}/.stage-{template_id[:12]}.{os.getpid()}.{time.monotonic_ns()}"

    def template_leftovers(self) -> Iterator[Path]:
        """Staging folders of template builds (reclaimed with ``tmp/`` when their process is gone)."""
        for name in self.list_folder(self.templates):  # type: ignore[attr-defined]
            if name.startswith(".stage-"):
                yield self.templates / name

    def adopt_template(self, staged: str, template_id: str) -> Path:
        """Rename a complete, sealed template into place; returns its path."""
        final = self.template_path(template_id)
        self.make_folder(final.parent)  # type: ignore[attr-defined]
        os.rename(staged, final)
        return final

    def template_plan_path(self, template_id: str) -> Path:
        """Where the plan of template ``template_id`` lives (it may not exist)."""
        return self.templates / f"{self.template_path(template_id).name}.plan.json"

    def iter_template_plans(self) -> Iterator[tuple[str, Path]]:
        """Yield ``(template id, path)`` of every template plan, its template present or not."""
        for name in sorted(self.list_folder(self.templates)):  # type: ignore[attr-defined]
            identity = name[: -len(".plan.json")]
            if name.endswith(".plan.json") and _TEMPLATE_ID.match(identity):
                yield identity, self.templates / name

    def iter_templates(self) -> Iterator[tuple[str, Path]]:
        """Yield ``(id, path)`` of every template."""
        for name in sorted(self.list_folder(self.templates)):  # type: ignore[attr-defined]
            if _TEMPLATE_ID.match(name):
                yield name, self.templates / name

    def template_lock(self, template_id: str):
        """Serializes building one template."""
        return self._lock(f"template-{template_id[:24]}", "another process building the same template")  # type: ignore[attr-defined]
