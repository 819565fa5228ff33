"""The plugin as tox sees it once installed: the default runner, the opt-out, the install command tox would run.

Run with ``python -m pytest plugins/tox-holoclone`` where tox and this plugin
are installed (the tests skip when the distribution is not).  They run the
real ``tox``: ``tox config``, and environments whose install command is read
from tox's log (their ``deps`` cannot be found: pip is offline), which needs
no root and no network.  One test makes a whole environment with
``virtualenv_spec``: tox bootstraps that virtualenv from the package registry
(the test skips on tox older than 4.42, where the key does not exist, and
when pip cannot get it).  The end-to-end tests with real installs on XFS are
the project's ``tests/test_integrations.py``.
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


def clean_env() -> dict[str, str]:
    """This process's environment without the caller's tox, virtualenv and pip settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("TOX_", "VIRTUALENV_", "PIP_"))}


def tox(project: Path, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = clean_env()
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


# A virtualenv the package registry has: tox bootstraps it and the env gets its embedded pip, which plans the install.
VIRTUALENV_SPEC = "virtualenv>=20.26"


def _pyvenv_cfg(env_dir: Path) -> dict[str, str]:
    lines = (env_dir / "pyvenv.cfg").read_text().splitlines()
    return {key.strip(): value.strip() for key, _, value in (line.partition("=") for line in lines) if value}


def test_an_env_with_virtualenv_spec_is_made_by_that_virtualenv_unseeded_by_holoclone_and_installs_from_the_store(
        tmp_path):
    # tox bootstraps the spec's virtualenv in a venv of its own, without holoclone: that virtualenv would refuse
    # VIRTUALENV_SEEDER=holoclone, so the plugin leaves the seeder alone there and only installs through holoclone.
    from packaging.requirements import Requirement  # tox depends on packaging
    from packaging.version import Version

    tox_version = distribution("tox").version
    if Version(tox_version) < Version("4.42"):
        pytest.skip(f"virtualenv_spec exists since tox 4.42; this is tox {tox_version}")
    # The bootstrap and the deps come from the package registry, with pip's own configuration (as tox gets it).
    probe = tmp_path / "probe"
    try:
        found = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--dest", str(probe),
                                VIRTUALENV_SPEC, "iniconfig"], env=clean_env(), capture_output=True, text=True,
                               timeout=300)
    except subprocess.TimeoutExpired:
        pytest.skip(f"the package registry did not give {VIRTUALENV_SPEC} and iniconfig within 300 s")
    if found.returncode:
        last = (found.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"pip cannot get {VIRTUALENV_SPEC} and iniconfig from the package registry ({last})")

    project, store = tmp_path / "project", tmp_path / "store"
    project.mkdir()
    (tmp_path / "virtualenv.ini").touch()  # virtualenv's defaults, not this machine's configuration
    (project / "tox.ini").write_text(textwrap.dedent(f"""
        [testenv:a]
        skip_install = true
        virtualenv_spec = {VIRTUALENV_SPEC}
        deps = iniconfig
        commands = python -c "import iniconfig, os, sys; print('iniconfig in', os.path.realpath(sys.prefix))"
    """))
    result = tox(project, "run", "-e", "a", extra_env={"VIRTUALENV_HOLOCLONE_STORE": str(store),
                                                       "VIRTUALENV_CONFIG_FILE": str(tmp_path / "virtualenv.ini")})
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    env_dir = project / ".tox" / "a"
    assert f"iniconfig in {env_dir.resolve()}" in out  # the command ran, in the env, with its dependency

    cfg = _pyvenv_cfg(env_dir)
    assert not [key for key in cfg if key.startswith("holoclone")], f"seeded by holoclone: {cfg}"
    assert Version(cfg["virtualenv"]) in Requirement(VIRTUALENV_SPEC).specifier  # made by the spec's virtualenv
    installers = list(env_dir.glob("lib/python*/site-packages/iniconfig-*.dist-info/INSTALLER"))
    assert len(installers) == 1 and installers[0].read_text().strip() == "holoclone", out
    assert store.is_dir() and any(store.iterdir()), "holoclone install did not use the given store"
