"""One ``holoclone install``: target, plan (cached or from pip), wheels from the store, applied.

A warm install (a stored plan that is still fresh, its wheels and catalogs in
the store) starts no pip at all; neither does ``--force-reinstall --no-deps``
with only wheel files (what tox installs a project with).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from ...errors import HoloCloneError
from ...report import wheels_in_brief
from .pipargs import Options, PipArgs
from .plan import InstallError
from .target import Target

if TYPE_CHECKING:
    from ...store.catalog import Catalog
    from ...policy import Policy
    from ...report import Report
    from ...settings import Settings
    from ...store import Store

LOG = logging.getLogger("holoclone")
_ITEM_FIELDS = {"name": str, "version": str, "url": str, "requested": bool, "sha256": str, "filename": str,
                "kind": str, "pip": list}


class Outcome:
    """What one install did: the report, whether the plan was the store's, the seconds it took."""

    def __init__(self, report: Report, planned_by: str, seconds: float = 0.0) -> None:
        self.report = report
        self.planned_by = planned_by  # "store", "pip" or "files"
        self.seconds = seconds

    def summary(self, env_dir: str) -> str:
        report = self.report
        if not report.packages:
            return f"holoclone: nothing to install into {env_dir} (plan from {self.planned_by})"
        counts = ", ".join(f"{n:,} {k}" for k, n in report.counts.items())
        packages = report.packages if len(report.packages) <= 5 else [
            *report.packages[:3], f"and {len(report.packages) - 3} more"]
        return (f"holoclone: installed {', '.join(packages)} into {env_dir}: {report.files:,} files "
                f"({counts}, {report.generated:,} written per env) in {self.seconds * 1000:.0f} ms, "
                f"plan from {self.planned_by}" + (f" (imported {wheels_in_brief(report.imported)})" if report.imported else ""))


def install(target: Target, args: PipArgs, settings: Settings, options: Options, ttl: float, store: Store,
            policy: Policy, environ: Mapping[str, str] | None = None) -> Outcome:
    """Install what ``pip install ARGS`` would into ``target`` from ``store`` (opened and checked) with ``policy``;
    raises :class:`HoloCloneError` with the environment unchanged."""
    from ...report import Report
    from .fetch import store_wheels
    from .plan import ask_pip, fresh, is_pinned, items_of, pip_command, plan_key

    start = time.perf_counter()
    environ = os.environ if environ is None else environ
    report = Report(store=str(store.root), strategy=policy.strategy.name)
    items = local_wheels_only(args)
    planned_by, key, pip, plan = "files", None, None, None
    if items is None:
        pip = pip_command(target)
        key = plan_key(args, target, pip, environ, os.getcwd())
        plan = None if options.refresh else store.load_install_plan(key)
        planned_by = "the store"
        if plan is None and settings.remote and not options.refresh:  # a signed plan and its catalogs
            from ...remote.plans import find_install_plan

            plan, planned_by = find_install_plan(settings, store, key, target.interpreter.tag), "the remote store"
        items = _items(plan) if plan is not None and fresh(plan, ttl) else None
        if items is None:
            items, planned_by = items_of(ask_pip(pip, args, LOG.debug)), "pip"
            plan = {"created": time.time(), "pinned": is_pinned(items, args), "tag": target.interpreter.tag,
                    "items": items}
    LOG.debug("holoclone: plan: %s", ", ".join(f"{i['name']} {i['version']} ({i['kind']})" for i in items) or "nothing")
    stored = [item for item in items if item["kind"] == "store"]
    # A wheel whose catalog the store has for this interpreter is not needed at all (it may be gone, or
    # never have been here when the catalog came from a remote store); the others are fetched once.
    ready = {item["name"]: catalog for item in stored
             if (catalog := _stored_catalog(store, item, target.interpreter.tag)) is not None}
    missing = [item for item in stored if item["name"] not in ready]
    if pip is None and (missing or any(item["kind"] == "pip" for item in items)):
        pip = pip_command(target)
    wheels = store_wheels(store, missing, pip or [], args.forwarded) if missing else {}
    if planned_by == "pip" and key is not None and plan is not None:
        _keep(store, key, plan)  # after fetching: a sha256 the report lacked is filled in

    def wheel_of(item: dict) -> Path:
        if item["name"] not in wheels:  # a stored catalog found damaged while linking: its wheel heals it
            wheels.update(store_wheels(store, [item], pip or pip_command(target), args.forwarded))
        return wheels[item["name"]]

    if items:
        from .apply import apply  # the materializer and installer: not needed when there is nothing to install

        apply(store, policy, settings, target, items, ready, wheel_of, pip or [], args.forwarded,
              args.force_reinstall, report)
        if key is not None and plan is not None and not args.force_reinstall and all(i["kind"] == "store" for i in items):
            # The same command on the environment as it is now: pip would find everything satisfied.
            # Kept too (as fresh as the plan it follows), so a repeated install starts no pip either.
            _keep(store, plan_key(args, target, pip or [], environ, os.getcwd()), {**plan, "items": []})
    for directory in {d for fb in report.fallbacks for d in (fb.source_dir, fb.target_dir)}:
        report.filesystems[directory] = policy.filesystem_name(directory) or "?"  # only fallbacks are explained
    return Outcome(report, planned_by, time.perf_counter() - start)


def _stored_catalog(store: Store, item: dict, tag: str) -> Catalog | None:
    """The store's catalog of a planned wheel for ``tag``, by the wheel's sha256 (its objects are checked as
    they are linked); None when there is none yet."""
    from ...store.catalog import catalog_key, is_sha256

    return store.load_catalog(catalog_key(item["sha256"], tag)) if is_sha256(item["sha256"]) else None


def _keep(store: Store, key: str, plan: dict) -> None:
    if not store.writable:
        return
    try:
        store.write_install_plan(key, plan)
    except OSError as error:  # only a cache: the next run asks pip again
        LOG.debug("holoclone: the plan was not kept: %s", error)


def local_wheels_only(args: PipArgs) -> list[dict] | None:
    """The plan of ``--force-reinstall --no-deps WHEEL...`` (how tox installs a project), made without pip:
    exactly those wheels, each replacing its installed version.  None for any other command line."""
    if not (args.no_deps and args.force_reinstall) or args.requirement_files or args.editables:
        return None
    if set(args.args) - set(args.specs) - {"--no-deps", "--force-reinstall"}:
        return None
    if not all(spec.endswith(".whl") and os.path.isfile(spec) for spec in args.specs):
        return None
    from pathlib import Path

    from ...fsutil import hash_file

    items = []
    for spec in args.specs:
        path = Path(spec).resolve()
        name, version = path.name.split("-")[:2]
        digest = hash_file(path)[0]
        url = path.as_uri()
        items.append({"name": name, "version": version, "url": url, "requested": True, "sha256": digest,
                      "filename": path.name, "kind": "local", "pip": [],
                      "direct_url": {"url": url, "archive_info": {"hash": f"sha256={digest}",
                                                                   "hashes": {"sha256": digest}}}})
    return items


def _items(plan: dict) -> list[dict] | None:
    """A stored plan's items when every one has the fields and types this version writes; else None (ask pip)."""
    items = plan.get("items")
    if not isinstance(items, list):
        return None
    for item in items:
        if not isinstance(item, dict) or any(not isinstance(item.get(k), t) for k, t in _ITEM_FIELDS.items()):
            return None
        if item["kind"] not in ("store", "local", "pip") or not (item["direct_url"] is None
                                                                  or isinstance(item["direct_url"], dict)):
            return None
        if item["kind"] == "store" and ("/" in item["filename"] or not item["filename"].endswith(".whl")):
            return None
    return items


__all__ = ["HoloCloneError", "InstallError", "Outcome", "install", "local_wheels_only"]
