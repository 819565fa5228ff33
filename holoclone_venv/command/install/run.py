"""One ``holoclone install``: target, plan (cached or from pip), wheels from the store, applied.

A warm install (a stored plan that is still fresh, its wheels and catalogs in
the store) starts no pip at all; neither does ``--force-reinstall --no-deps``
with only wheel files, sdists and project folders (what tox installs a project with): holoclone builds
the latter itself (``build.py``).
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
    from ...policy import Policy
    from ...report import Report
    from ...settings import Settings
    from ...store import Store
    from .build import Builder

LOG = logging.getLogger("holoclone")


class Outcome:
    """What one install did: the report, whether the plan was the store's, the seconds it took."""

    def __init__(self, report: Report, planned_by: str, seconds: float = 0.0, built: list[str] | None = None) -> None:
        self.report = report
        self.planned_by = planned_by  # "store", "pip" or "files"
        self.seconds = seconds
        self.built = [] if built is None else built  # local projects holoclone built ("name version")

    def summary(self, env_dir: str) -> str:
        report = self.report
        if not report.packages:
            return f"holoclone: nothing to install into {env_dir} (plan from {self.planned_by})"
        counts = ", ".join(f"{n:,} {k}" for k, n in report.counts.items())
        packages = report.packages if len(report.packages) <= 5 else [
            *report.packages[:3], f"and {len(report.packages) - 3} more"]
        built = f", {len(self.built)} built from source ({', '.join(self.built[:3])})" if self.built else ""
        return (f"holoclone: installed {', '.join(packages)} into {env_dir}: {report.files:,} files from the store "
                f"({counts}, {report.generated:,} written per env){built} in {self.seconds * 1000:.0f} ms, "
                f"plan from {self.planned_by}" + (f" (imported {wheels_in_brief(report.imported)})" if report.imported else ""))


def install(target: Target, args: PipArgs, settings: Settings, options: Options, ttl: float, store: Store,
            policy: Policy, environ: Mapping[str, str] | None = None) -> Outcome:
    """Install what ``pip install ARGS`` would into ``target`` from ``store`` (opened and checked) with ``policy``;
    raises :class:`HoloCloneError` with the environment unchanged."""
    from .build import StalePlan

    environ = os.environ if environ is None else environ
    start = time.perf_counter()
    try:
        outcome = _install(target, args, settings, options.refresh, ttl, store, policy, environ, retry=False)
    except StalePlan as stale:  # a local project changed its version or dependencies since the stored plan
        LOG.debug("holoclone: %s Planning again with pip.", stale)
        outcome = _install(target, args, settings, True, ttl, store, policy, environ, retry=True)
    outcome.seconds = time.perf_counter() - start
    return outcome


def _install(target: Target, args: PipArgs, settings: Settings, refresh: bool, ttl: float, store: Store,
             policy: Policy, environ: Mapping[str, str], retry: bool) -> Outcome:
    from ...report import Report
    from .fetch import stored_catalog, store_wheels
    from .plan import ask_pip, fresh, items_of, keep_plan, new_plan, pip_command, plan_key, valid_items

    report = Report(store=str(store.root), strategy=policy.strategy.name)
    items = None if retry else local_items_only(args, target)
    planned_by, key, pip, plan = "files", None, None, None
    if items is None:
        pip = pip_command(target)
        key = plan_key(args, target, pip, environ, os.getcwd())
        plan = None if refresh else store.load_install_plan(key)
        planned_by = "the store"
        if plan is None and settings.remote and not refresh:  # a signed plan and its catalogs
            from ...remote.plans import find_install_plan

            plan, planned_by = find_install_plan(settings, store, key, target.interpreter.tag), "the remote store"
        items = valid_items(plan) if plan is not None and fresh(plan, ttl) else None
        if items is None:
            items, planned_by = items_of(ask_pip(pip, args, LOG.debug)), "pip"
            plan = new_plan(items, args, target.interpreter.tag)
    LOG.debug("holoclone: plan: %s", ", ".join(f"{i['name']} {i['version']} ({i['kind']})" for i in items) or "nothing")
    stored = [item for item in items if item["kind"] == "store"]
    # A wheel whose catalog the store has for this interpreter is not needed at all (it may be gone, or
    # never have been here when the catalog came from a remote store); the others are fetched once.
    ready = {item["name"]: catalog for item in stored
             if (catalog := stored_catalog(store, item, target.interpreter.tag)) is not None}
    missing = [item for item in stored if item["name"] not in ready]
    if pip is None and (missing or any(item["kind"] == "pip" for item in items)):
        pip = pip_command(target)
    wheels = store_wheels(store, missing, pip or [], args.forwarded) if missing else {}
    if planned_by == "pip" and key is not None and plan is not None:
        keep_plan(store, key, plan)  # after fetching: a sha256 the report lacked is filled in

    def wheel_of(item: dict) -> Path:
        if item["name"] not in wheels:  # a stored catalog found damaged while linking: its wheel heals it
            wheels.update(store_wheels(store, [item], pip or pip_command(target), args.forwarded))
        return wheels[item["name"]]

    to_apply: list[dict] | None = items
    builder = None
    if any(item["kind"] == "pip" for item in items):  # a local project may be built here (build.py)
        from .build import BuildContext, Builder

        builder = Builder(BuildContext(store, policy, settings, target, pip or [], args.forwarded, environ, ttl,
                                       refresh, report, check_requires=planned_by != "pip" and not retry))
    try:
        if builder is not None:
            to_apply = _built(builder, items, args, environ)
            if to_apply is None:  # a project named on the command line that pip must build: pip plans too
                return _install(target, args, settings, refresh, ttl, store, policy, environ, retry=True)
        if to_apply:
            from .apply import apply  # the materializer and installer: not needed when there is nothing to install

            apply(store, policy, settings, target, to_apply, ready, wheel_of, pip or [], args.forwarded,
                  args.force_reinstall, report)
    finally:
        if builder is not None:
            builder.close()
    if items and key is not None and plan is not None and not args.force_reinstall \
            and all(i["kind"] == "store" for i in items):
        # The same command on the environment as it is now: pip would find everything satisfied.
        # Kept too (as fresh as the plan it follows), so a repeated install starts no pip either.
        keep_plan(store, plan_key(args, target, pip or [], environ, os.getcwd()), {**plan, "items": []})
    for directory in {d for fb in report.fallbacks for d in (fb.source_dir, fb.target_dir)}:
        report.filesystems[directory] = policy.filesystem_name(directory) or "?"  # only fallbacks are explained
    built = [f"{i['name']} {i['version']}" for i in to_apply or () if "wheel" in i]
    return Outcome(report, planned_by, built=built)


def _built(builder: Builder, items: list[dict], args: PipArgs, environ: Mapping[str, str]) -> list[dict] | None:
    """``items`` with each local project pip would build (a folder, an sdist, an editable) built into a wheel
    by :class:`~.build.Builder`; the others, and every one when pip's options or settings decide how
    it builds, stay for pip.  None when a project planned without pip (no name yet) cannot be built here."""
    from .build import NotBuildable, pip_builds, source_of
    from .plan import pip_config_files

    sources = [item for item in items if source_of(item) is not None]
    if not sources:
        return items
    reason = pip_builds(args.args, environ, pip_config_files(environ, builder.context.target.env_dir))
    done: dict[int, dict] = {}
    for item in sources:
        try:
            if reason:
                raise NotBuildable(reason)
            done[id(item)] = builder.build(item)
        except NotBuildable as why:
            LOG.debug("holoclone: pip builds %s: %s", item["url"], why)
            if not item["name"]:
                return None
    return [done.get(id(item), item) for item in items]


def local_items_only(args: PipArgs, target: Target) -> list[dict] | None:
    """The plan of ``--force-reinstall --no-deps PATH...`` (how tox installs a project), made without pip:
    exactly those wheel files, sdists and project folders, each replacing its installed version (an sdist or
    folder has no name until it is built).  None for any other command line, and for a wheel that is not
    pure Python for the target's version (pip decides whether it fits, and says so when not)."""
    if not (args.no_deps and args.force_reinstall) or args.requirement_files or args.editables:
        return None
    if set(args.args) - set(args.specs) - {"--no-deps", "--force-reinstall"}:
        return None
    if not all(os.path.isdir(spec) or spec.endswith((".tar.gz", ".zip")) and os.path.isfile(spec)
               or spec.endswith(".whl") and os.path.isfile(spec) and _pure_for(os.path.basename(spec), target)
               for spec in args.specs):
        return None
    from ...fsutil import hash_file

    items = []
    for spec in args.specs:
        path = Path(spec).resolve()
        url = path.as_uri()
        item = {"name": "", "version": "", "url": url, "requested": True, "sha256": "", "filename": path.name,
                "kind": "pip", "pip": [str(path)], "direct_url": {"url": url, "dir_info": {}}}
        if path.is_file():
            digest = hash_file(path)[0]
            item.update(sha256=digest, direct_url={"url": url, "archive_info": {"hash": f"sha256={digest}",
                                                                                 "hashes": {"sha256": digest}}})
        if path.name.endswith(".whl"):
            name, version = path.name.split("-")[:2]
            item.update(name=name, version=version, kind="local", pip=[])
        items.append(item)
    return items


def _pure_for(filename: str, target: Target) -> bool:
    """Whether a wheel's tags include a pure-Python one the target's interpreter takes (``py3-none-any``,
    ``py311-none-any``, ``cp311-none-any``...)."""
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    try:
        tags = parse_wheel_filename(filename)[3]
    except InvalidWheelFilename:
        return False
    major, minor = target.interpreter.version
    short = {"cpython": "cp", "pypy": "pp"}.get(target.interpreter.implementation.lower(), "")
    wanted = {"py3" if major == 3 else f"py{major}", f"py{major}{minor}"} | ({f"{short}{major}{minor}"} if short else set())
    return any(tag.abi == "none" and tag.platform == "any" and tag.interpreter in wanted for tag in tags)


__all__ = ["HoloCloneError", "InstallError", "Outcome", "install", "local_items_only"]
