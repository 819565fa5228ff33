"""The plugin manager: built-in and third-party plugins, and typed calls of their hooks.

Third-party plugins come from the entry-point group ``holoclone``.  Every
plugin, built-in or not, is registered behind a guard: a hook that raises is
reported in one warning naming the plugin and its distribution, and the call
goes on without it (a broken plugin must not break every virtualenv on the
machine).  A plugin that fails to import, implements a hook that does not
exist (a misspelled name) or with arguments the hook does not have, is
reported the same way and not used.  Hooks are called through pluggy
(``pm.hook.NAME``), so ``firstresult`` and the call order are pluggy's.
"""

from __future__ import annotations

import functools
import logging
import types
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Sequence

import pluggy

from . import hookspecs
from .hookspecs import CloneBackend, LinkMethod, RuleSettings, Strategy, hookimpl
from .materialize.linking import builtin_strategies
from .rules import Rule, builtin_rules

if TYPE_CHECKING:
    from .report import Report

LOG = logging.getLogger("holoclone")
ENTRY_POINT_GROUP = "holoclone"
PROJECT = "holoclone"


class _Builtins:
    """The five built-in strategies and the built-in exclusion rules, registered like any plugin's."""

    @hookimpl
    def holoclone_strategies(self, methods):
        return builtin_strategies(methods)

    @hookimpl
    def holoclone_exclusion_rules(self, excludes):
        return builtin_rules(excludes)


class PluginInfo(NamedTuple):
    """What ``holoclone plugins`` shows about one plugin."""

    name: str
    distribution: str
    hooks: list[str]
    error: str = ""


class Tagged(NamedTuple):
    """A hook result with the name of the plugin that returned it (for messages about it)."""

    plugin: str
    value: Any


class Plugins:
    """A pluggy manager with holoclone's hooks, and the plugins that could not be used."""

    def __init__(self, load_external: bool = True, entry_points: EntryPoints | None = None) -> None:
        """``entry_points``: the group's entry points as the caller already found them (virtualenv has
        read every distribution's by the time a seeder runs); None: :func:`discover_entry_points`."""
        from .platforms import current

        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.distributions: dict[str, str] = {}
        self.broken: list[PluginInfo] = []
        platform = current().plugin
        if platform is not None:
            self.register(platform, "platform", "holoclone-venv")
        self.register(_Builtins(), "builtins", "holoclone-venv")
        if load_external:
            self._load_entry_points(discover_entry_points() if entry_points is None else entry_points)

    # -- registration ------------------------------------------------------------------------
    def register(self, plugin: Any, name: str, distribution: str) -> bool:
        """Register ``plugin`` behind a guard; report it as broken (and drop it) if pluggy refuses it."""
        guarded = self._guard(plugin, name, distribution)
        try:
            self.pm.register(guarded, name=name)
            # A hook name no spec knows (a misspelling) would silently never run.
            self.pm.check_pending()
        except (pluggy.PluginValidationError, ValueError) as error:  # ValueError: the name is taken
            if self.pm.is_registered(guarded):
                self.pm.unregister(guarded)
            self._broken(name, distribution, error)
            return False
        self.distributions[name] = distribution
        return True

    def _guard(self, plugin: Any, name: str, distribution: str) -> object:
        """A stand-in for ``plugin`` whose hook implementations catch their errors and tag their results."""
        guarded = types.SimpleNamespace()
        for attr in dir(plugin):
            function = getattr(plugin, attr, None)
            if not callable(function) or getattr(function, f"{PROJECT}_impl", None) is None:
                continue

            def call(*args: Any, _function: Callable = function, **kwargs: Any) -> Tagged | None:
                try:
                    result = _function(*args, **kwargs)
                except Exception as error:  # foreign code: any failure is the plugin's
                    self._broken(name, distribution, error)
                    return None
                return None if result is None else Tagged(name, result)

            # wraps keeps the hookimpl marker and the signature pluggy reads the argument names from.
            setattr(guarded, attr, functools.wraps(function)(call))
        return guarded

    def _load_entry_points(self, found: EntryPoints) -> None:
        for name, value, dist in found:
            if self.pm.is_blocked(name):
                continue
            if self.pm.get_plugin(name) is not None:
                # Skipping silently would leave the user wondering why their plugin does nothing.
                LOG.warning(
                    "holoclone: plugin %r from %s is ignored: %s already uses that name; rename its entry point",
                    name, dist, self.distributions.get(name, "another plugin"),
                )
                continue
            try:
                from importlib.metadata import EntryPoint

                plugin = EntryPoint(name, value, ENTRY_POINT_GROUP).load()
            except Exception as error:  # any import-time failure of foreign code
                self._broken(name, dist, error)
                continue
            self.register(plugin, name, dist)

    def _broken(self, name: str, dist: str, error: BaseException) -> None:
        if any(info.name == name for info in self.broken):
            return  # one warning per plugin and run
        message = f"{type(error).__name__}: {error}"
        self.broken.append(PluginInfo(name, dist, [], message))
        LOG.warning("holoclone: plugin %r from %s is broken (%s); continuing without it", name, dist, message)

    # -- typed hook calls --------------------------------------------------------------------
    def clone_backend(self) -> CloneBackend | None:
        """The clone backend of the newest plugin that offers one."""
        found = self.pm.hook.holoclone_clone_backend()
        return found.value if found is not None else None

    def filesystem_name(self, path: str) -> str | None:
        """The filesystem holding ``path`` (``xfs``, ``ext4``...), for messages."""
        found = self.pm.hook.holoclone_filesystem_name(path=path)
        return found.value if found is not None else None

    def exclusion_rules(self, excludes: Sequence[str] = ()) -> list[Rule]:
        """Every plugin's rules, given the user's ``excludes``; a result that is not a :class:`Rule` is
        dropped with a warning."""
        rules: list[Rule] = []
        given = tuple(excludes)
        for tagged in self.pm.hook.holoclone_exclusion_rules(excludes=given, settings=RuleSettings(given)):
            for rule in tagged.value:
                if isinstance(rule, Rule):
                    rules.append(rule)
                else:  # a rule dropped without a word would leave files unprotected unnoticed
                    LOG.warning("holoclone: plugin %r returned %r, not a holoclone Rule; ignored", tagged.plugin, rule)
        return rules

    def strategies(self, methods: dict[str, LinkMethod]) -> dict[str, Strategy]:
        """Every strategy by name; built-ins first, a later duplicate name is refused with a warning."""
        found: dict[str, Strategy] = {}
        # pluggy calls the newest plugin first; the oldest (the built-ins) must win a name.
        for tagged in reversed(self.pm.hook.holoclone_strategies(methods=methods)):
            for strategy in tagged.value:
                if not isinstance(strategy, Strategy) or not strategy.methods:
                    LOG.warning("holoclone: plugin %r returned an invalid strategy %r; ignored", tagged.plugin, strategy)
                elif strategy.name in found:
                    LOG.warning("holoclone: plugin %r redefines strategy %r; ignored", tagged.plugin, strategy.name)
                else:
                    found[strategy.name] = strategy
        return found

    def report(self, report: Report) -> None:
        """Show the finished run to every observer."""
        self.pm.hook.holoclone_report(report=report)

    def info(self) -> list[PluginInfo]:
        """Every registered plugin with the hooks it implements, then the broken ones."""
        hooks: dict[str, list[str]] = {}
        for caller_name, caller in vars(self.pm.hook).items():
            if caller_name.startswith(f"{PROJECT}_"):
                for impl in caller.get_hookimpls():
                    hooks.setdefault(impl.plugin_name, []).append(caller_name)
        plugins = [
            PluginInfo(name, self.distributions.get(name, "?"), sorted(hooks.get(name, [])))
            for name, _ in self.pm.list_name_plugin()
        ]
        return plugins + self.broken


#: ``(name, value, distribution)`` of each entry point of the ``holoclone`` group.
EntryPoints = Sequence[tuple[str, str, str]]


def discover_entry_points() -> list[tuple[str, str, str]]:
    """``(name, value, distribution)`` of every entry point in the ``holoclone`` group.

    importlib.metadata reads the metadata of every installed distribution,
    which costs more than the rest of a warm seeding run; the answer is cached
    and reused while no directory on ``sys.path`` has changed (installing or
    removing a distribution changes its directory's mtime).
    """
    import json
    import os
    import sys

    stamp = []
    try:
        here = os.getcwd()
    except OSError:  # the current directory was removed
        here = ""
    # The current directory ("" on sys.path, or its path with ``python -m``) changes whenever
    # an environment is created in it; distributions are not installed there, so it is not watched.
    for entry in sys.path:
        if not entry or entry == here:
            continue
        try:
            stamp.append([entry, os.stat(entry).st_mtime_ns])
        except OSError:
            stamp.append([entry, None])
    cache = _entry_point_cache()
    try:
        with open(cache, encoding="utf-8") as handle:
            cached = json.load(handle)
        if cached["stamp"] == stamp:
            return [tuple(item) for item in cached["entry_points"]]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    found = _entry_points(ENTRY_POINT_GROUP)
    try:
        from .fsutil import write_atomic

        os.makedirs(os.path.dirname(cache), exist_ok=True)
        write_atomic(cache, json.dumps({"stamp": stamp, "entry_points": found}).encode("utf-8"))
    except OSError:
        pass  # only a cache
    return found


def _entry_points(group: str) -> list[tuple[str, str, str]]:
    """``(name, value, distribution)`` of the entry points of ``group``.

    Python 3.9's importlib.metadata has neither ``entry_points(group=)`` nor
    ``EntryPoint.dist``, so there the distributions are walked instead.
    """
    from importlib import metadata

    if hasattr(metadata.EntryPoint, "dist"):
        return [(ep.name, ep.value, getattr(ep.dist, "name", None) or "?")
                for ep in metadata.entry_points().select(group=group)]
    found: dict[str, tuple[str, str, str]] = {}
    for dist in metadata.distributions():
        for ep in dist.entry_points:
            if ep.group == group:
                found.setdefault(ep.name, (ep.name, ep.value, dist.metadata["Name"] or "?"))
    return list(found.values())


def _entry_point_cache() -> str:
    import hashlib
    import os
    import sys

    from platformdirs import user_cache_dir

    key = hashlib.sha256(f"{sys.executable}\0{sys.prefix}".encode()).hexdigest()[:16]
    return os.path.join(user_cache_dir("holoclone", appauthor=False), f"entry-points-{key}.json")


_SHARED: list[Plugins] = []


def shared(entry_points: EntryPoints | None = None) -> Plugins:
    """One plugin manager per process: plugins load (and warn about being broken) once.

    ``entry_points`` are used only by the call that makes it (see :class:`Plugins`).
    """
    if not _SHARED:
        _SHARED.append(Plugins(entry_points=entry_points))
    return _SHARED[0]


__all__ = ["ENTRY_POINT_GROUP", "PluginInfo", "Plugins", "Tagged", "discover_entry_points", "shared"]
