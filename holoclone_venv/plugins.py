"""The plugin manager: built-in plugins, third-party plugins, and the per-run policy they yield.

Third-party plugins come from the entry-point group ``holoclone``.  A plugin
that fails to import, or whose hook raises, is reported in one warning that
names it and its distribution; the run continues without it (a broken
plugin must not break every virtualenv on the machine).  A strategy the user
asked for that only a broken plugin provides is then an unknown strategy.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any, Callable

import pluggy

from . import hookspecs
from .rules import Matcher, Rule, compile_rules
from .strategies import LinkMethod, Strategy, builtin_methods, builtin_strategies

LOG = logging.getLogger("holoclone")
ENTRY_POINT_GROUP = "holoclone"


class _BuiltinStrategies:
    """The four built-in strategies, registered like any plugin's."""

    @hookspecs.hookimpl
    def holoclone_strategies(self, methods):
        return builtin_strategies(methods)


@dataclass
class PluginInfo:
    """What ``holoclone plugins`` shows about one plugin."""

    name: str
    distribution: str
    hooks: list[str]
    error: str = ""


class Plugins:
    """A pluggy manager with holoclone's hooks, and the errors met loading plugins."""

    def __init__(self, load_external: bool = True) -> None:
        self.pm = pluggy.PluginManager("holoclone")
        self.pm.add_hookspecs(hookspecs)
        self.distributions: dict[str, str] = {}
        self.broken: list[PluginInfo] = []
        from . import rules
        from .platforms import platform_module_name

        platform = platform_module_name()
        if platform:
            self._register(importlib.import_module(platform), "platform", "holoclone-venv")
        self._register(rules, "rules", "holoclone-venv")
        self._register(_BuiltinStrategies(), "strategies", "holoclone-venv")
        if load_external:
            self._load_entry_points()

    def _register(self, plugin: Any, name: str, distribution: str) -> None:
        self.pm.register(plugin, name=name)
        self.distributions[name] = distribution

    def _load_entry_points(self) -> None:
        for name, value, dist in discover_entry_points():
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
                self.pm.register(plugin, name=name)
            except Exception as error:  # any import-time failure of foreign code
                self._broken(name, dist, error)
                continue
            self.distributions[name] = dist

    def _broken(self, name: str, dist: str, error: BaseException) -> None:
        message = f"{type(error).__name__}: {error}"
        self.broken.append(PluginInfo(name, dist, [], message))
        LOG.warning("holoclone: plugin %r from %s is broken (%s); continuing without it", name, dist, message)

    def call_each(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call every implementation of ``hook`` separately, newest first.

        Returns ``(plugin name, result)`` for each that did not raise; one that
        raises is reported as broken and left out.
        """
        results = []
        for impl in reversed(getattr(self.pm.hook, hook).get_hookimpls()):
            args = {name: kwargs[name] for name in impl.argnames}
            try:
                result = impl.function(**args)
            except Exception as error:
                self._broken(impl.plugin_name, self.distributions.get(impl.plugin_name, "?"), error)
                continue
            if result is not None:
                results.append((impl.plugin_name, result))
        return results

    def first(self, hook: str, **kwargs: Any) -> Any:
        """The first non-None result of a ``firstresult`` hook, with errors isolated."""
        for _, result in self.call_each(hook, **kwargs):
            return result
        return None

    def strategies(self, methods: dict[str, LinkMethod]) -> dict[str, Strategy]:
        """Every strategy by name; built-ins first, a later duplicate name is refused."""
        found: dict[str, Strategy] = {}
        for plugin, strategies in reversed(self.call_each("holoclone_strategies", methods=methods)):
            for strategy in strategies:
                if not isinstance(strategy, Strategy) or not strategy.methods:
                    LOG.warning("holoclone: plugin %r returned an invalid strategy %r; ignored", plugin, strategy)
                elif strategy.name in found:
                    LOG.warning("holoclone: plugin %r redefines strategy %r; ignored", plugin, strategy.name)
                else:
                    found[strategy.name] = strategy
        return found

    def info(self) -> list[PluginInfo]:
        """Every registered plugin with the hooks it implements, then the broken ones."""
        hooks: dict[str, list[str]] = {}
        for name in dir(self.pm.hook):
            if name.startswith("holoclone_"):
                for impl in getattr(self.pm.hook, name).get_hookimpls():
                    hooks.setdefault(impl.plugin_name, []).append(name)
        plugins = [
            PluginInfo(name, self.distributions.get(name, "?"), sorted(hooks.get(name, [])))
            for name, _ in self.pm.list_name_plugin()
        ]
        return plugins + self.broken


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
    # The current directory ("" on sys.path) changes whenever an environment is
    # created in it; distributions are not installed there, so it is not watched.
    for entry in filter(None, sys.path):
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
    from importlib.metadata import entry_points

    found = [
        (ep.name, ep.value, getattr(getattr(ep, "dist", None), "name", None) or "?")
        for ep in entry_points(group=ENTRY_POINT_GROUP)
    ]
    try:
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        staged = f"{cache}.{os.getpid()}"
        with open(staged, "w", encoding="utf-8") as handle:
            json.dump({"stamp": stamp, "entry_points": found}, handle)
        os.replace(staged, cache)
    except OSError:
        pass  # only a cache
    return found


def _entry_point_cache() -> str:
    import hashlib
    import os
    import sys

    from platformdirs import user_cache_dir

    key = hashlib.sha256(f"{sys.executable}\0{sys.prefix}".encode()).hexdigest()[:16]
    return os.path.join(user_cache_dir("holoclone", appauthor=False), f"entry-points-{key}.json")


@dataclass
class Policy:
    """Everything the materializer needs from the plugins, resolved once per run."""

    strategy: Strategy
    backend_name: str
    never_hardlink: Matcher
    always_copy: Matcher
    copy_method: LinkMethod
    filesystem_name: Callable[[str], str | None]
    report_hooks: Callable[[Any], None]


def policy(settings: Any, plugins: Plugins | None = None) -> Policy:
    """Resolve strategy, backend and rules for ``settings``.

    Raises :class:`ConfigError` when the strategy name is unknown (listing the
    valid names, third-party ones included).
    """
    plugins = plugins or shared()
    backend = plugins.first("holoclone_clone_backend")
    methods = builtin_methods(getattr(backend, "clone", None))
    strategies = plugins.strategies(methods)
    strategy = strategies.get(settings.strategy)
    if strategy is None:
        from .config import check_strategy

        check_strategy(settings.strategy, settings.strategy_source, list(strategies))
    rules: list[Rule] = []
    for plugin, found in plugins.call_each("holoclone_exclusion_rules", settings=settings):
        for rule in found:
            if isinstance(rule, Rule):
                rules.append(rule)
            else:  # a rule dropped without a word would leave files unprotected unnoticed
                LOG.warning("holoclone: plugin %r returned %r, not a holoclone Rule; ignored", plugin, rule)
    never_hardlink, always_copy = compile_rules(rules)

    def filesystem_name(path: str) -> str | None:
        return plugins.first("holoclone_filesystem_name", path=path)

    def report_hooks(report: Any) -> None:
        plugins.call_each("holoclone_report", report=report)

    return Policy(
        strategy=strategy,
        backend_name=getattr(backend, "name", "none"),
        never_hardlink=never_hardlink,
        always_copy=always_copy,
        copy_method=methods["copy"],
        filesystem_name=filesystem_name,
        report_hooks=report_hooks,
    )


_SHARED: list[Plugins] = []


def shared() -> Plugins:
    """One plugin manager per process: plugins load (and warn about being broken) once."""
    if not _SHARED:
        _SHARED.append(Plugins())
    return _SHARED[0]


def strategy_names() -> list[str]:
    """Names of every strategy, built-in and from installed plugins."""
    plugins = shared()
    backend = plugins.first("holoclone_clone_backend")
    return list(plugins.strategies(builtin_methods(getattr(backend, "clone", None))))


__all__ = ["ENTRY_POINT_GROUP", "Plugins", "Policy", "policy", "strategy_names"]
