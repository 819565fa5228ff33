"""The plugin manager: broken plugins are reported once and skipped, later backends win, names are kept."""

from __future__ import annotations

import logging
import sys

import pytest

from holoclone_venv.hookspecs import CloneBackend, hookimpl
from holoclone_venv.materialize.linking import Strategy
from holoclone_venv.plugins import Plugins
from holoclone_venv.rules import ALWAYS_COPY, Rule


def _clone(source, target, dir_fd, mode, mtime):
    raise AssertionError("never called here")


class RaisingRules:
    calls = 0

    @hookimpl
    def holoclone_exclusion_rules(self, settings):
        RaisingRules.calls += 1
        raise RuntimeError("boom in rules")


class GoodRules:
    @hookimpl
    def holoclone_exclusion_rules(self, excludes):
        return [Rule("*.secret")]


class SeesExcludes:
    """A plugin written against the hook's arguments as they are: the user's patterns."""

    seen: list = []

    @hookimpl
    def holoclone_exclusion_rules(self, excludes):
        SeesExcludes.seen.append(excludes)
        return [Rule(pattern + ".bak") for pattern in excludes]


class OldStyleRules:
    """A plugin written for holoclone 0.1, whose hook took the whole settings."""

    @hookimpl
    def holoclone_exclusion_rules(self, settings):
        return [Rule(pattern, ALWAYS_COPY, "old-style") for pattern in settings.excludes]


class Misspelled:
    @hookimpl
    def holoclone_strategys(self, methods):
        return []


class Backend:
    def __init__(self, name):
        self.name = name

    @hookimpl
    def holoclone_clone_backend(self):
        return CloneBackend(self.name, _clone)


class RaisingBackend:
    @hookimpl
    def holoclone_clone_backend(self):
        raise OSError("cannot load the clone library")


class Strategies:
    @hookimpl
    def holoclone_strategies(self, methods):
        return [Strategy("copy", (methods["hardlink"],), "hijack"), Strategy("linky", (methods["hardlink"], methods["copy"]))]


class Observer:
    @hookimpl
    def holoclone_report(self, report):
        pass

    @hookimpl
    def holoclone_filesystem_name(self, path):
        return None


EXCLUDES = ("*.so",)


@pytest.fixture
def plugins():
    return Plugins(load_external=False)


def test_a_raising_hook_is_reported_once_and_the_others_still_answer(plugins, caplog):
    RaisingRules.calls = 0
    assert plugins.register(RaisingRules(), "raiser", "raiser-dist")
    assert plugins.register(GoodRules(), "good", "good-dist")
    with caplog.at_level(logging.WARNING, logger="holoclone"):
        first = plugins.exclusion_rules(EXCLUDES)
        second = plugins.exclusion_rules(EXCLUDES)
    assert RaisingRules.calls == 2
    for rules in (first, second):
        patterns = {rule.pattern for rule in rules}
        assert {"*.secret", "*.so", "*.pyc"} <= patterns
    assert [(b.name, b.distribution) for b in plugins.broken] == [("raiser", "raiser-dist")]
    assert "boom in rules" in plugins.broken[0].error
    warnings = [r.getMessage() for r in caplog.records if "raiser" in r.getMessage()]
    assert len(warnings) == 1 and "raiser-dist" in warnings[0]


def test_a_misspelled_hook_is_refused_and_listed_as_broken(plugins):
    assert plugins.register(Misspelled(), "typo", "typo-dist") is False
    assert plugins.pm.get_plugin("typo") is None
    assert [b.name for b in plugins.broken] == ["typo"]
    assert "holoclone_strategys" in plugins.broken[0].error
    assert "typo" not in [info.name for info in plugins.info() if not info.error]
    assert plugins.strategies(_methods(plugins)).keys() >= {"smart", "reflink", "hardlink", "copy"}


def _methods(plugins):
    from holoclone_venv.policy import link_methods

    return link_methods(plugins)


def test_a_backend_registered_later_wins(plugins):
    plugins.register(Backend("first"), "first", "d1")
    plugins.register(Backend("third-party"), "third", "d2")
    backend = plugins.clone_backend()
    assert backend is not None and backend.name == "third-party"
    assert _methods(plugins)["reflink"].link is _clone


def test_a_raising_backend_is_skipped_for_the_one_before_it(plugins):
    plugins.register(Backend("good"), "good", "d1")
    plugins.register(RaisingBackend(), "bad", "d2")
    assert plugins.clone_backend().name == "good"
    assert [b.name for b in plugins.broken] == ["bad"]


def test_a_strategy_redefining_a_built_in_name_is_ignored_and_new_names_are_added(plugins, caplog):
    plugins.register(Strategies(), "strats", "strats-dist")
    methods = _methods(plugins)
    with caplog.at_level(logging.WARNING, logger="holoclone"):
        strategies = plugins.strategies(methods)
    assert [m.name for m in strategies["copy"].methods] == ["copy"]
    assert [m.name for m in strategies["linky"].methods] == ["hardlink", "copy"]
    assert any("redefines strategy 'copy'" in r.getMessage() for r in caplog.records)


def test_info_lists_the_hooks_of_each_plugin(plugins):
    plugins.register(Observer(), "observer", "observer-dist")
    plugins.register(Misspelled(), "typo", "typo-dist")
    info = {entry.name: entry for entry in plugins.info()}
    assert info["observer"].hooks == ["holoclone_filesystem_name", "holoclone_report"]
    assert info["observer"].distribution == "observer-dist"
    assert info["builtins"].hooks == ["holoclone_exclusion_rules", "holoclone_strategies"]
    assert info["typo"].error and info["typo"].hooks == []


class ExtraArgument:
    @hookimpl
    def holoclone_report(self, report, verbose):
        pass


def test_a_hook_with_an_argument_the_spec_lacks_is_refused(plugins):
    assert plugins.register(ExtraArgument(), "extra", "extra-dist") is False
    assert plugins.pm.get_plugin("extra") is None
    assert "verbose" in plugins.broken[0].error


def test_registering_a_taken_name_reports_the_plugin_as_broken(plugins):
    assert plugins.register(Observer(), "builtins", "impostor-dist") is False
    assert [b.name for b in plugins.broken] == ["builtins"]
    assert "holoclone_strategies" in plugins.pm.hook.__dict__ and plugins.strategies(_methods(plugins))


def _installed_plugin(root, module="holoclone_probe"):
    """A distribution on ``root`` whose entry point names ``module`` (which adds a strategy) as a plugin."""
    info = root / "holoclone_probe-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: holoclone-probe\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[holoclone]\nprobe = {module}\n")
    (root / f"{module}.py").write_text(
        "from holoclone_venv.hookspecs import hookimpl\n"
        "from holoclone_venv.materialize.linking import Strategy\n\n"
        "@hookimpl\n"
        "def holoclone_strategies(methods):\n"
        "    return [Strategy('probe-copy', (methods['copy'],), 'copies, from an installed plugin')]\n"
    )


def test_a_seeding_takes_plugins_from_the_entry_points_virtualenv_read(tmp_path, monkeypatch):
    from virtualenv.run.plugin.base import PluginLoader

    from holoclone_venv.policy import strategy_names
    from holoclone_venv.seeding.request import plugin_entry_points

    _installed_plugin(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(PluginLoader, "_ENTRY_POINTS", None)  # virtualenv reads them afresh, as in a new process
    found = plugin_entry_points()
    if sys.version_info < (3, 10):  # entry points there do not name their distribution: discovered instead
        assert found is None
        return
    assert found == (("probe", "holoclone_probe", "holoclone-probe"),)
    plugins = Plugins(entry_points=found)
    assert "probe-copy" in strategy_names(plugins)
    assert plugins.distributions["probe"] == "holoclone-probe"


def test_discovery_is_cached_across_new_environments_in_the_current_directory(tmp_path, monkeypatch):
    from holoclone_venv import plugins as module

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    project, site = tmp_path / "project", tmp_path / "site"
    project.mkdir()
    site.mkdir()
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(project))  # as with 'python -m virtualenv .venv' run in the project
    module.discover_entry_points()
    scans = []
    real = module._entry_points
    monkeypatch.setattr(module, "_entry_points", lambda group: scans.append(group) or real(group))
    (project / ".venv").mkdir()  # the new environment changes the current directory
    module.discover_entry_points()
    assert scans == [], "a new environment in the current directory made plugin discovery read every distribution"
    _installed_plugin(site)  # a distribution installed on sys.path is seen on the next run
    assert ("probe", "holoclone_probe", "holoclone-probe") in module.discover_entry_points()
    assert scans == [module.ENTRY_POINT_GROUP]


def test_the_exclusion_rules_hook_gets_the_excludes_and_an_old_plugin_still_works(plugins):
    SeesExcludes.seen = []
    assert plugins.register(SeesExcludes(), "sees", "sees-dist")
    assert plugins.register(OldStyleRules(), "old", "old-dist")
    rules = plugins.exclusion_rules(("*.so", "data/*"))
    assert SeesExcludes.seen == [("*.so", "data/*")]
    assert Rule("*.so.bak") in rules and Rule("data/*.bak") in rules
    # The old plugin's settings hold the excludes and nothing more: settings are not plugin API.
    assert Rule("*.so", ALWAYS_COPY, "old-style") in rules and Rule("data/*", ALWAYS_COPY, "old-style") in rules
    assert not plugins.broken
