"""Which environments keep store content alive.

A ref ``refs/<id>.json`` is *live* when its environment directory exists and

* its ``pyvenv.cfg`` has a ``holoclone`` key (written at the end of seeding)
  and, when it names a ``holoclone_store``, that store is this one; or
* the ref is younger than :data:`REF_GRACE` seconds: seeding writes the ref
  before it materializes and ``pyvenv.cfg`` gets its ``holoclone`` key only
  at the end, so an environment being created right now is kept.

An environment deleted, or re-created by another seeder or from another
store, no longer keeps anything.  Link counts are never consulted: a reflinked
or copied environment does not raise them.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from ...store import Store

#: Seconds during which a ref counts as live although its pyvenv.cfg has no ``holoclone`` key yet.
REF_GRACE = 3600.0


@dataclass
class Ref:
    """One ``refs/*.json``: the environment, its catalogs, and whether it still counts."""

    path: Path
    env: str
    catalogs: list[str]
    live: bool
    why: str
    template: str = ""  # the template its site-packages was cloned from, if any

    def as_dict(self) -> dict:
        return {"ref": self.path.name, "env": self.env, "catalogs": self.catalogs, "template": self.template,
                "live": self.live, "why": self.why}


def _pyvenv_cfg(env: str) -> dict[str, str] | None:
    try:
        text = Path(env, "pyvenv.cfg").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip().lower()] = value.strip()
    return values


def classify_refs(store: Store, now: float | None = None, grace: float = REF_GRACE) -> list[Ref]:
    """Every ref with its liveness decided by the rule in this module's docstring (``grace`` for REF_GRACE)."""
    now = time.time() if now is None else now
    refs = []
    for path, document in store.iter_refs():
        env = str(document.get("env") or "")
        listed = document.get("catalogs")
        catalogs = [c for c in listed if isinstance(c, str)] if isinstance(listed, list) else []
        young = now - _created(document) < grace
        if not env:
            live, why = False, "unreadable ref"
        elif not os.path.isdir(env):
            live, why = False, "environment is gone"
        else:
            cfg = _pyvenv_cfg(env) or {}
            named = cfg.get("holoclone_store")
            if "holoclone" in cfg and named and os.path.realpath(named) != os.path.realpath(store.root):
                live, why = False, f"environment now uses the store {named}"
            elif "holoclone" in cfg:
                live, why = True, "holoclone environment"
            elif young:
                live, why = True, "being created (ref is recent)"
            else:
                live, why = False, "no longer a holoclone environment (no holoclone key in pyvenv.cfg)"
        template = document.get("template")
        refs.append(Ref(path, env, catalogs, live, why, template if isinstance(template, str) else ""))
    return refs


def _created(document: dict) -> float:
    try:
        return float(document.get("created") or 0)
    except (TypeError, ValueError):
        return 0.0
