"""The plugin as tox sees it once installed: the default runner, the opt-out, the install command tox would run.

Run with ``python -m pytest plugins/tox-holoclone`` where tox and this plugin
are installed (the tests skip when the distribution is not).  They run the
real ``tox`` (``tox config``, and one environment whose only install is its
``deps`` while holoclone's ``install`` command is replaced by a recorder), so
they need no root and no network.  The end-to-end tests with real installs on
XFS are the project's ``tests/test_integrations.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest

try:
    distribution("tox-holoclone")
except PackageNotFoundError:  # pragma: no cover - depends on the environment running the tests
    pytest.skip("tox-holoclone is not installed (pip install ./plugins/tox-holoclone)", allow_module_level=True)


def tox(project: Path, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOX_", "VIRTUALENV_", "PIP_"))}
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-m", "tox", *args], cwd=project, env=env, capture_output=True,
                          text=True, timeout=600)


def config(project: Path, envs: str, *keys: str) -> dict[str, dict[str, str]]:
    """``tox config`` of ``envs``: env name -> key -> value."""
    result = tox(project, "config", "-e", envs, "-k", *keys)
    assert result.returncode == 0, result.stdout + result.stderr
    found: dict[str, dict[str, str]] = {}
    current = ""
    for line in result.stdout.splitlines():
        if line.startswith("[testenv:"):
            current = line[len("[testenv:"):-1]
            found[current] = {}
        elif " = " in line and current:
            key, _, value = line.partition(" = ")
            found[current][key] = value
    return found


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project directory (no build files unless a test writes them: tox packages nothing)."""
    return tmp_path


def test_tox_lists_the_plugin(project):
    result = tox(project, "--version")
    assert "tox-holoclone-" in result.stdout  # tox 4.12+ also shows "with holoclone-venv==<version>"


def test_every_env_runs_on_holoclone_and_one_opts_out_with_runner_virtualenv(project):
    (project / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools"]\n')  # a package to build
    (project / "tox.ini").write_text(textwrap.dedent("""
        [tox]
        env_list = a, b
        [testenv:b]
        runner = virtualenv
        package_env = .pkg-plain
    """))
    found = config(project, "a,b", "runner", "package_tox_env_type", "holoclone_install")
    assert found["a"]["runner"] == "holoclone"
    assert found["a"]["package_tox_env_type"] == "holoclone-pep-517"
    assert found["a"]["holoclone_install"] == "True"
    assert found["b"]["runner"] == "virtualenv"
    assert found["b"]["package_tox_env_type"] == "virtualenv-pep-517"


def _install_commands(project: Path, ini: str, extra_env: dict[str, str] | None = None) -> list[str]:
    """The install lines tox logs for env ``a`` (tox echoes every command it runs)."""
    (project / "tox.ini").write_text(textwrap.dedent(ini))
    result = tox(project, "-e", "a", "--notest", "-vv", extra_env={"VIRTUALENV_SEEDER": "app-data",
                                                                   "PIP_NO_INDEX": "1", **(extra_env or {})})
    return [line for line in (result.stdout + result.stderr).splitlines() if "install_deps>" in line]


def test_deps_go_to_holoclone_install_with_the_envs_interpreter(project):
    lines = _install_commands(project, """
        [testenv:a]
        skip_install = true
        deps = nothing-to-find-here
    """)
    assert lines, "tox ran no install"
    assert "-m holoclone_venv install --python " in lines[0]
    assert f"{project / '.tox' / 'a'}" in lines[0]
    assert "/bin/python nothing-to-find-here" in lines[0]


@pytest.mark.parametrize("ini_extra, expected", [
    ("install_command = python -m pip install {opts} {packages}", "python -m pip install nothing-to-find-here"),
    ("holoclone_install = false", "python -I -m pip install nothing-to-find-here"),
])
def test_a_user_set_install_command_or_holoclone_install_false_runs_pip_as_tox_would(project, ini_extra, expected):
    lines = _install_commands(project, f"""
        [testenv:a]
        skip_install = true
        deps = nothing-to-find-here
        {ini_extra}
    """)
    assert lines and expected in lines[0]
    assert "holoclone_venv" not in lines[0]


def test_pip_pre_reaches_holoclone_install(project):
    lines = _install_commands(project, """
        [testenv:a]
        skip_install = true
        pip_pre = true
        deps = nothing-to-find-here
    """)
    assert lines and "install --python" in lines[0] and " --pre nothing-to-find-here" in lines[0]
