"""holoclone seeds the environments that tox, nox, hatch, poetry and pre-commit make.

Each test installs nothing itself: the real tools come from PyPI once per
session into their own venv (with this project installed editable beside them,
so the virtualenv they import finds the ``holoclone`` seeder).  A test copies
``examples/sample-project`` onto a real XFS filesystem, makes holoclone the
default seeder the way a user would (``VIRTUALENV_SEEDER``, a virtualenv.ini,
``holoclone enable`` or the tool's own configuration), runs the tool's normal
job and checks two things a user relies on: the job succeeded, and every
environment the tool made was seeded by holoclone from the chosen store
(``holoclone = <version>`` in its pyvenv.cfg, and pip's files reflinked from
the store).

Set ``HOLOCLONE_TOOLS_VENV`` to a venv that already holds the tools and this
project to skip the session install.
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from holoclone_venv import __version__
from holoclone_venv.platforms.linux import shares_extents

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "examples" / "sample-project"
TOOLS = ("tox>=4", "nox", "hatch", "poetry", "pre-commit")
PY = f"python{sys.version_info[0]}.{sys.version_info[1]}"

pytestmark = pytest.mark.slow

# Variables of the caller's shell that would change what the tools do.
_TOOL_PREFIXES = ("VIRTUALENV_", "TOX_", "NOX_", "HATCH_", "POETRY_", "PRE_COMMIT", "PIP_REQUIRE_VIRTUALENV",
                  "VIRTUAL_ENV", "UV_", "RCC_HOLOTREE")


@pytest.fixture(scope="session")
def tools(tmp_path_factory) -> Path:
    """The bin directory of a venv holding tox, nox, hatch, poetry, pre-commit and this project."""
    given = os.environ.get("HOLOCLONE_TOOLS_VENV")
    if given:
        return Path(given) / "bin"
    venv = tmp_path_factory.mktemp("tools") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    done = subprocess.run([*pip, *TOOLS, "-e", str(REPO)], capture_output=True, text=True, timeout=900)
    if done.returncode:
        pytest.fail(f"could not install {', '.join(TOOLS)} from PyPI:\n{done.stdout}\n{done.stderr}")
    return venv / "bin"


@pytest.fixture
def workspace(xfs, unique) -> Path:
    """A directory on XFS holding this test's project copy, store and tool homes."""
    root = xfs / f"tools-{unique}"
    root.mkdir()
    shutil.copytree(SAMPLE, root / "project",
                    ignore=shutil.ignore_patterns(".tox", ".nox", ".venv", "*.egg-info", "__pycache__", "poetry.lock"))
    return root


def tool_env(tools: Path, workspace: Path, **extra: str) -> dict[str, str]:
    """The environment of a shell where the user runs the tools: their venv on PATH, homes under ``workspace``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_TOOL_PREFIXES)}
    env["PATH"] = f"{tools}{os.pathsep}{env.get('PATH', '')}"
    # An empty virtualenv.ini unless a test writes one: the user's own must not count.
    config = workspace / "virtualenv.ini"
    config.touch()
    env["VIRTUALENV_CONFIG_FILE"] = str(config)
    env.update(extra)
    return env


def run(tools: Path, tool: str, *args: str, cwd: Path, env: dict[str, str], check: bool = True):
    result = subprocess.run([str(tools / tool), *args], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=900)
    if check and result.returncode:
        raise AssertionError(f"{tool} {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def pyvenv_cfg(env_dir: Path) -> dict[str, str]:
    parser = configparser.ConfigParser()
    parser.read_string("[env]\n" + (env_dir / "pyvenv.cfg").read_text())
    return dict(parser["env"])


def environments(root: Path) -> list[Path]:
    """Every virtual environment under ``root``."""
    return sorted(cfg.parent for cfg in root.rglob("pyvenv.cfg"))


def assert_seeded(env_dir: Path, store: Path) -> None:
    """``env_dir`` was seeded by this holoclone from ``store``, its pip reflinked from the store."""
    cfg = pyvenv_cfg(env_dir)
    assert cfg.get("holoclone") == __version__, f"{env_dir} was not seeded by holoclone: {cfg}"
    assert Path(cfg["holoclone_store"]) == store
    pip_init = env_dir / "lib" / PY / "site-packages" / "pip" / "__init__.py"
    assert shares_extents(str(pip_init)), f"{pip_init} is not a reflink"


def test_tox_runs_a_test_env_seeded_by_holoclone(tools, workspace):
    project, store = workspace / "project", workspace / "store"
    env = tool_env(tools, workspace, VIRTUALENV_SEEDER="holoclone", VIRTUALENV_HOLOCLONE_STORE=str(store))
    result = run(tools, "tox", "-e", "py", cwd=project, env=env)
    assert "Ran 1 test" in result.stdout + result.stderr
    made = environments(project / ".tox")
    # The test env and the env that builds the package.
    assert {p.name for p in made} == {"py", ".pkg"}
    for env_dir in made:
        assert_seeded(env_dir, store)


def test_tox_project_opts_in_with_set_env_in_testenv_and_pkgenv(tools, workspace):
    project, store = workspace / "project", workspace / "store"
    with open(project / "tox.ini", "a") as ini:
        ini.write(f"set_env =\n    VIRTUALENV_SEEDER = holoclone\n    VIRTUALENV_HOLOCLONE_STORE = {store}\n\n"
                  f"[pkgenv]\nset_env =\n    VIRTUALENV_SEEDER = holoclone\n    VIRTUALENV_HOLOCLONE_STORE = {store}\n")
    run(tools, "tox", "-e", "py", cwd=project, env=tool_env(tools, workspace))
    made = environments(project / ".tox")
    assert {p.name for p in made} == {"py", ".pkg"}
    for env_dir in made:
        assert_seeded(env_dir, store)


def test_holoclone_enable_makes_tox_envs_holoclone_seeded_and_disable_undoes_it(tools, workspace):
    project, store = workspace / "project", workspace / "store"
    env = tool_env(tools, workspace, VIRTUALENV_HOLOCLONE_STORE=str(store))
    run(tools, "holoclone", "enable", cwd=workspace, env=env)
    run(tools, "tox", "-e", "py", cwd=project, env=env)
    assert_seeded(project / ".tox" / "py", store)

    run(tools, "holoclone", "disable", cwd=workspace, env=env)
    run(tools, "tox", "-r", "-e", "py", cwd=project, env=env)
    assert "holoclone" not in pyvenv_cfg(project / ".tox" / "py")


def test_nox_session_env_seeded_via_the_example_virtualenv_ini(tools, workspace):
    project, store = workspace / "project", workspace / "store"
    env = tool_env(tools, workspace)
    # The shipped example, with the store line a user fills in.
    shipped = (REPO / "examples" / "virtualenv.ini").read_text()
    Path(env["VIRTUALENV_CONFIG_FILE"]).write_text(f"{shipped}holoclone_store = {store}\n")
    result = run(tools, "nox", cwd=project, env=env)
    assert "Session tests was successful" in result.stdout + result.stderr
    made = environments(project / ".nox")
    assert [p.name for p in made] == ["tests"]
    assert_seeded(made[0], store)


def test_hatch_run_creates_and_runs_an_env_seeded_by_holoclone(tools, workspace):
    project, store = workspace / "project", workspace / "store"
    env = tool_env(tools, workspace, VIRTUALENV_SEEDER="holoclone", VIRTUALENV_HOLOCLONE_STORE=str(store),
                   HATCH_DATA_DIR=str(workspace / "hatch-data"), HATCH_CACHE_DIR=str(workspace / "hatch-cache"),
                   HATCH_CONFIG=str(workspace / "hatch-config.toml"))
    (workspace / "hatch-config.toml").touch()  # hatch's defaults, not the user's config
    result = run(tools, "hatch", "run", "check", cwd=project, env=env)
    assert "Ran 1 test" in result.stdout + result.stderr
    made = environments(workspace / "hatch-data")
    assert len(made) == 1
    assert_seeded(made[0], store)


def test_poetry_install_env_seeded_by_holoclone(tools, workspace):
    project, store = workspace / "project", workspace / "store"
    env = tool_env(tools, workspace, VIRTUALENV_SEEDER="holoclone", VIRTUALENV_HOLOCLONE_STORE=str(store),
                   POETRY_VIRTUALENVS_IN_PROJECT="true", POETRY_CONFIG_DIR=str(workspace / "poetry-config"),
                   POETRY_CACHE_DIR=str(workspace / "poetry-cache"), POETRY_DATA_DIR=str(workspace / "poetry-data"))
    run(tools, "poetry", "install", cwd=project, env=env)
    venv = project / ".venv"
    assert_seeded(venv, store)
    # The project really is installed in that env.
    tested = subprocess.run([str(venv / "bin" / "python"), "-m", "unittest", "discover", "-s", "tests"],
                            cwd=project, capture_output=True, text=True)
    assert tested.returncode == 0, tested.stderr


def test_pre_commit_python_hook_env_seeded_by_holoclone(tools, workspace):
    project, store = workspace / "project", workspace / "store"
    home = workspace / "pre-commit-home"
    env = tool_env(tools, workspace, VIRTUALENV_SEEDER="holoclone", VIRTUALENV_HOLOCLONE_STORE=str(store),
                   PRE_COMMIT_HOME=str(home))
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    result = run(tools, "pre-commit", "run", "--all-files", cwd=project, env=env)
    assert "Passed" in result.stdout
    made = environments(home)
    assert len(made) == 1
    assert_seeded(made[0], store)

    # The hook really runs in that env: it catches a tab.
    (project / "src" / "sample" / "bad.py").write_text("if True:\n\tpass\n")
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    failed = run(tools, "pre-commit", "run", "--all-files", cwd=project, env=env, check=False)
    assert failed.returncode == 1
    assert "bad.py:2: indented with a tab" in failed.stdout


def test_ci_example_caches_the_store_it_seeds_from_under_the_workspace(tools):
    # pre-commit brings PyYAML into the tools venv; read the example with it.
    read = subprocess.run(
        [str(tools / "python"), "-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
         str(REPO / "examples" / "github-actions.yml")], capture_output=True, text=True, check=True)
    job = next(iter(json.loads(read.stdout)["jobs"].values()))
    assert job["env"]["VIRTUALENV_SEEDER"] == "holoclone"
    store = job["env"]["VIRTUALENV_HOLOCLONE_STORE"]
    # Under the workspace: the same filesystem as the checkout and .tox.
    assert store.startswith("${{ github.workspace }}/")
    cached = [step["with"]["path"] for step in job["steps"] if step.get("uses", "").startswith("actions/cache@")]
    assert cached == [store.removeprefix("${{ github.workspace }}/")]
