"""One owner for platform facts: ``platforms.current()``, without root or mounts."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pluggy
import pytest

from holoclone_venv import hookspecs, platforms
from holoclone_venv.platforms import Extent, Platform, base, current


@pytest.fixture
def fresh(monkeypatch):
    """Forget the cached Platform before and after, so a test can pretend another sys.platform."""
    current.cache_clear()
    yield monkeypatch
    current.cache_clear()


def test_importing_the_package_loads_no_platform_module():
    code = (
        "import sys, holoclone_venv.platforms as p\n"
        "assert not [m for m in sys.modules if m.startswith('holoclone_venv.platforms.') and m != 'holoclone_venv.platforms.base'], sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_current_is_computed_once():
    assert current() is current()


def test_platform_shape():
    platform = current()
    assert isinstance(platform, Platform)
    assert Platform._fields == ("name", "plugin", "extents", "pid_alive", "make_durable", "copy", "tree",
                                "forks_workers")
    assert Extent._fields == ("logical", "physical", "length", "shared", "located")
    assert platform.name in ("linux", "darwin", "windows", "other")
    assert callable(platform.pid_alive) and callable(platform.make_durable)


@pytest.mark.parametrize(("sys_platform", "name", "backend"), [
    ("linux", "linux", "linux-ficlone"),
    ("darwin", "darwin", "darwin-clonefile"),
    ("win32", "windows", "windows-duplicate-extents"),
    ("freebsd14", "other", None),
])
def test_each_platform_gets_its_own_facts(fresh, sys_platform, name, backend):
    fresh.setattr(sys, "platform", sys_platform)
    platform = current()
    assert platform.name == name
    if backend is None:
        assert platform.plugin is None and platform.extents is None and platform.copy is None
        return
    pm = pluggy.PluginManager("holoclone")
    pm.add_hookspecs(hookspecs)
    pm.register(platform.plugin, name="platform")
    found = pm.hook.holoclone_clone_backend()
    assert isinstance(found, hookspecs.CloneBackend) and found.name == backend
    # Only Linux reports extents; the native copy needs Windows' _winapi.CopyFile2, absent here.
    assert (platform.extents is not None) == (name == "linux")
    assert platform.copy is None
    # Linking forks workers only on Linux: macOS system libraries are not fork-safe, Windows cannot fork.
    assert platform.forks_workers == (name == "linux")


def test_pid_alive_for_this_process_and_a_finished_one():
    alive = current().pid_alive
    assert alive(os.getpid()) is True
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert alive(child.pid) is False
    assert alive(0) is False and alive(-1) is False


def test_pid_alive_counts_another_users_process_as_alive(monkeypatch):
    def refuse(pid, signal):
        assert signal == 0
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "kill", refuse)
    assert base.posix_pid_alive(12345) is True


def test_pid_alive_never_signals(monkeypatch):
    sent = []
    monkeypatch.setattr(os, "kill", lambda pid, signal: sent.append(signal))
    base.posix_pid_alive(os.getpid())
    assert sent == [0]


def test_make_durable_on_a_real_directory(tmp_path):
    paths = []
    for name in ("a", "b"):
        (tmp_path / name).write_bytes(os.urandom(100))
        paths.append(str(tmp_path / name))
    current().make_durable(str(tmp_path), paths + [str(tmp_path / "vanished")])
    assert [open(p, "rb").read() for p in paths] == [(tmp_path / n).read_bytes() for n in ("a", "b")]


def test_make_durable_of_every_platform_skips_a_vanished_path(fresh, tmp_path):
    for sys_platform in ("linux", "darwin", "freebsd14"):
        current.cache_clear()
        fresh.setattr(sys, "platform", sys_platform)
        current().make_durable(str(tmp_path), [str(tmp_path / "gone")])


def test_umask_is_read_when_the_platform_is_computed(fresh):
    fresh.setattr(base, "_umask", None)
    fresh.setattr(sys, "platform", "darwin")
    current()
    assert base._umask is not None
    mask = os.umask(0o022)
    os.umask(mask)
    assert base._umask == mask


def test_machine_names_the_architecture():
    assert platforms.machine() == os.uname().machine
