"""The one shared platform plugin: a clone backend and filesystem names, through pluggy."""

from __future__ import annotations

import pluggy

from holoclone_venv import hookspecs
from holoclone_venv.platforms.base import PlatformPlugin


def _manager(plugin) -> pluggy.PluginManager:
    pm = pluggy.PluginManager("holoclone")
    pm.add_hookspecs(hookspecs)
    pm.register(plugin, name="platform")
    pm.check_pending()
    return pm


def _clone(source, target, dir_fd, mode, mtime):
    raise AssertionError("not called")


def test_the_plugin_answers_both_hooks():
    asked = []
    plugin = PlatformPlugin("test-clone", _clone, lambda path: asked.append(path) or "testfs")
    pm = _manager(plugin)
    assert pm.hook.holoclone_clone_backend() == hookspecs.CloneBackend("test-clone", _clone)
    assert pm.hook.holoclone_filesystem_name(path="/somewhere") == "testfs"
    assert asked == ["/somewhere"]


def test_prepare_runs_when_the_backend_is_asked_for():
    prepared = []
    plugin = PlatformPlugin("test-clone", _clone, lambda path: None, prepare=lambda: prepared.append(True))
    pm = _manager(plugin)
    assert prepared == []
    pm.hook.holoclone_clone_backend()
    assert prepared == [True]


def test_a_later_plugin_overrides_the_platform_backend():
    pm = _manager(PlatformPlugin("test-clone", _clone, lambda path: None))

    class Override:
        @hookspecs.hookimpl
        def holoclone_clone_backend(self):
            return hookspecs.CloneBackend("override", _clone)

    pm.register(Override(), name="override")
    assert pm.hook.holoclone_clone_backend().name == "override"
