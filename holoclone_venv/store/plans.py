"""Install plans: what ``holoclone install`` learnt from pip for one set of inputs, kept to skip pip next time.

Part of :class:`~holoclone_venv.store.Store` (a mixin).  ``install-plans/<key>.json``
holds one plan document (``{"format", "created", "pinned", "tag", "items"}``, the
items as ``install/plan.py`` makes them); the key is the sha256 of everything
that can change pip's answer.  A plan is read like the store's other
documents: the owner's regular file, never through a symlink, and a document
that does not parse is no plan (pip is asked again and it is rewritten).
(Template plans, ``templates/<id>.plan.json``, are another thing: see ``templates.py``.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from .catalog import is_sha256
from .parts import StoreParts

INSTALL_PLAN_FORMAT = 1


class Plans(StoreParts):
    """The ``install-plans/`` folder of a store (needs the store's ``read_trusted`` and ``write_atomically``)."""

    root: Path

    @property
    def install_plans(self) -> Path:
        return self.root / "install-plans"

    def load_install_plan(self, key: str) -> dict | None:
        """The plan stored under ``key`` when it is the owner's regular file of this format; else None."""
        if not is_sha256(key):
            return None
        data = self.read_trusted(self.install_plans / f"{key}.json")
        if data is None:
            return None
        try:
            document = json.loads(data.decode("utf-8"))
        except (UnicodeError, ValueError, RecursionError):
            return None
        if not isinstance(document, dict) or document.get("format") != INSTALL_PLAN_FORMAT:
            return None
        return document

    def write_install_plan(self, key: str, document: dict) -> None:
        """Record a plan atomically (a reader sees the old one or the new one, whole)."""
        document = {**document, "format": INSTALL_PLAN_FORMAT}
        self.write_atomically(self.install_plans / f"{key}.json",
                              json.dumps(document, indent=1, sort_keys=True).encode("utf-8"))

    def iter_install_plans(self) -> Iterator[tuple[Path, dict | None]]:
        """Yield ``(path, document or None)`` for every install plan (for gc)."""
        for name in sorted(self.list_folder(self.install_plans)):
            if name.endswith(".json"):
                yield self.install_plans / name, self.load_install_plan(name[:-len(".json")])
