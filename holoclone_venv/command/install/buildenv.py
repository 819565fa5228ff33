"""A build environment's requirements: planned by pip as pip's build isolation would install them, from the store.

pip installs a project's ``[build-system] requires`` into an empty prefix
(``--ignore-installed``) with the index and find-links options of the
command line.  The same command, as a dry run, plans them here; the plan is
kept in the store like every install plan (a build environment starts from
nothing, so what the target has installed is not part of its key).  Every
planned requirement must be a wheel; each is materialized from the store
with the environment's strategy into the build environment.

:class:`BuildContext` (what a build gets of its install) and :class:`NotBuildable` live here, the
lower module, so that ``build.py`` imports this one and never the other way round.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, NamedTuple

from ...environment import Layout
from ...store.catalog import canonical_name
from .fetch import BUILD_ENV_OPTIONS, network_options, store_wheels, stored_catalog
from .pipargs import read_pip_args
from .plan import ask_pip, fresh, items_of, keep_plan, new_plan, plan_key, valid_items

from .target import Target

if TYPE_CHECKING:
    from ...policy import Policy
    from ...report import Report
    from ...settings import Settings
    from ...store import Store

LOG = logging.getLogger("holoclone")


class NotBuildable(Exception):
    """holoclone does not build this project as pip would: pip builds it (``str()`` says why, at ``-v``)."""


class BuildContext(NamedTuple):
    """What a build needs of the install it is part of."""

    store: Store
    policy: Policy
    settings: Settings
    target: Target
    pip: list[str]
    forwarded: list[str]
    environ: Mapping[str, str]
    ttl: float
    refresh: bool
    report: Report
    #: Compare a built project's dependencies with the plan's (a stored plan may predate a change to them).
    check_requires: bool = True


def build_requirements(context: BuildContext, where: Path, requires: list[str],
                       installed: dict[str, str]) -> dict[str, str]:
    """Put the plan of ``requires`` into the build environment ``where`` (``site/``, ``bin/``), which has
    ``installed`` (canonical name -> version) already; returns what it has afterwards.

    Raises :class:`NotBuildable` when a requirement is not a wheel or needs another version of one
    installed; :class:`~.plan.InstallError` when pip cannot plan or fetch them.
    """
    from ...materialize.materializer import Materializer
    from ...report import Report
    from .apply import catalogs_for

    store, target = context.store, context.target
    (where / "site").mkdir(parents=True, exist_ok=True)
    if not requires:  # a backend that needs nothing (an in-tree one, often)
        return installed
    items = _plan(context, requires)
    for item in items:
        if item["kind"] != "store":
            raise NotBuildable(f"the build requirement {item['name']} {item['version']} is not a wheel")
    new = [item for item in items if installed.get(canonical_name(item["name"])) != item["version"]]
    for item in new:
        if canonical_name(item["name"]) in installed:
            raise NotBuildable(f"the backend needs {item['name']} {item['version']} beside another version")
    ready = {item["name"]: catalog for item in new
             if (catalog := stored_catalog(store, item, target.interpreter.tag)) is not None}
    missing = [item for item in new if item["name"] not in ready]
    wheels = store_wheels(store, missing, context.pip, context.forwarded) if missing else {}
    cold = catalogs_for(store, [wheels[item["name"]] for item in missing], target, context.report)
    catalogs = [*ready.values(), *cold]
    if store.writable and catalogs:
        with store.lock():  # gc keeps what the environment's builds use, as it keeps what it has installed
            store.extend_ref(target.env_dir, [c.key for c in catalogs])
    layout = Layout(purelib=str(where / "site"), platlib=str(where / "site"), scripts=str(where / "bin"),
                    data=str(where), include=str(where / "include"), executable=target.python)
    report = Report(store=str(store.root), strategy=context.policy.strategy.name)
    Materializer(store, context.policy, report, strict=context.settings.strict).run(catalogs, layout)
    LOG.debug("holoclone: build environment: %s (%s)", ", ".join(f"{i['name']} {i['version']}" for i in new) or
              "as it was", ", ".join(f"{n} {k}" for k, n in report.counts.items()))
    return {**installed, **{canonical_name(item["name"]): item["version"] for item in new}}


def _plan(context: BuildContext, requires: list[str]) -> list[dict]:
    """The planned items of ``pip install --ignore-installed REQUIRES`` with the command line's index options."""
    args = read_pip_args(["--ignore-installed", *network_options(context.forwarded, BUILD_ENV_OPTIONS), *requires])
    key = plan_key(args, context.target, context.pip, context.environ, os.getcwd(), installed=[])
    plan = None if context.refresh else context.store.load_install_plan(key)
    items = valid_items(plan) if plan is not None and fresh(plan, context.ttl) else None
    if items is not None:
        return items
    items = items_of(ask_pip(context.pip, args, LOG.debug))
    stored = [item for item in items if item["kind"] == "store"]
    if len(stored) == len(items):  # fetched before the plan is kept: a sha256 the report lacked is filled in
        store_wheels(context.store, stored, context.pip, context.forwarded)
        keep_plan(context.store, key, new_plan(items, args, context.target.interpreter.tag))
    return items
