"""The plugin as hatch sees it once installed: the environment type, and the install command hatch runs.

Run with ``python -m pytest plugins/hatch-holoclone`` where hatch and this
plugin are installed (the tests skip when the distribution is not).  They run
the real ``hatch``; the command hatch runs for installs is recorded by a
stand-in ``holoclone_venv`` package put first on ``PYTHONPATH`` (this plugin
imports nothing from holoclone-venv, and the environments are seeded by
virtualenv's default seeder, a user's choice the plugin must keep), so they
need no root, no store and no network.  The end-to-end tests with real
installs on XFS are the project's ``tests/test_integrations.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest

try:
    distribution("hatch-holoclone")
except PackageNotFoundError:  # pragma: no cover - depends on the environment running the tests
    pytest.skip("hatch-holoclone is not installed (pip install ./plugins/hatch-holoclone)", allow_module_level=True)

PYPROJECT = """\
[project]
name = "demo"
version = "0.1"

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[tool.hatch.envs.default]
type = "holoclone"
skip-install = true
dependencies = ["demo-dependency"]
{extra}
"""

RECORDER = """\
import json, os, sys
with open(os.environ["RECORDED"], "a") as out:
    out.write(json.dumps(sys.argv[1:]) + "\\n")
"""


@pytest.fixture
def hatch(tmp_path: Path):
    """``hatch(*args, extra="")``: run hatch in a fresh project; returns (result, recorded install argv lists)."""
    shadow = tmp_path / "shadow" / "holoclone_venv"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("")
    (shadow / "__main__.py").write_text(RECORDER)
    (tmp_path / "hatch.toml").touch()
    recorded = tmp_path / "recorded.jsonl"

    def run(*args: str, extra: str = "") -> tuple[subprocess.CompletedProcess, list[list[str]]]:
        (tmp_path / "pyproject.toml").write_text(PYPROJECT.format(extra=textwrap.dedent(extra)))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HATCH_", "VIRTUALENV_", "PIP_"))}
        env.update(HATCH_CONFIG=str(tmp_path / "hatch.toml"), HATCH_DATA_DIR=str(tmp_path / "data"),
                   VIRTUALENV_SEEDER="app-data", PYTHONPATH=str(shadow.parent), RECORDED=str(recorded))
        result = subprocess.run([sys.executable, "-m", "hatch", *args], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=600)
        lines = recorded.read_text().splitlines() if recorded.exists() else []
        return result, [json.loads(line) for line in lines]

    return run


def test_the_environment_type_is_holoclone(hatch):
    result, _ = hatch("env", "show", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["default"]["type"] == "holoclone"


def test_dependencies_go_to_holoclone_install_into_the_env_and_the_users_seeder_is_kept(hatch, tmp_path):
    result, recorded = hatch("env", "create")
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(recorded) == 1
    argv = recorded[0]
    assert argv[:2] == ["install", "--python"]
    env_dir = Path(argv[2])
    assert tmp_path / "data" in env_dir.parents and (env_dir / "pyvenv.cfg").is_file()
    assert argv[3:] == ["-q", "demo-dependency"]
    keys = {line.split("=")[0].strip() for line in (env_dir / "pyvenv.cfg").read_text().splitlines()}
    assert "holoclone" not in keys  # VIRTUALENV_SEEDER=app-data was kept


@pytest.mark.parametrize("verbosity, flags", [([], ["-q"]), (["-v"], []), (["-vv"], ["-v"])])
def test_installs_are_one_level_quieter_than_hatch_as_with_pip(hatch, verbosity, flags):
    result, recorded = hatch(*verbosity, "env", "create")
    assert result.returncode == 0, result.stdout + result.stderr
    assert recorded[0][3:] == [*flags, "demo-dependency"]
