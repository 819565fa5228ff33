"""tox-holoclone, ``holoclone_venv.nox`` and hatch-holoclone: real tools put dependencies in place from the store.

A session venv holds tox, nox and hatch from PyPI, this project (editable)
and the two plugins under ``plugins/`` (pip-installed from copies).  Each test
copies ``examples/sample-project`` onto a real XFS, gives it dependencies from
a local wheelhouse (``PIP_NO_INDEX``, ``PIP_FIND_LINKS``: no network; the
build backend is virtualenv's bundled setuptools wheel) and runs the tool as
a user would.  What a user relies on, checked each time:

- every environment the integration makes is seeded by holoclone and its
  dependencies were put in place by ``holoclone install`` (``INSTALLER`` is
  ``holoclone``: without the integration it is ``pip``), reflinked from the store;
- the result is the plain tool's: ``pip freeze`` equals that of the same
  project under the tool's own route (``runner = virtualenv``, ``nox.session``,
  ``type = "virtual"``), and the project's code runs;
- environments are created, reused and recreated when the tool decides to.

Set ``HOLOCLONE_INTEGRATIONS_VENV`` to a venv that already holds the tools,
the plugins and this project to skip the session install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import pyvenv_cfg, site_packages
from wheels import write_wheel

from holoclone_venv.platforms.linux import shares_extents

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "examples" / "sample-project"
PLUGINS = ("tox-holoclone", "hatch-holoclone")
TOOLS = ("tox>=4", "nox", "hatch")
IMPORTS = 'python -c "import hcpure, sample; print(hcpure.shout())"'

pytestmark = pytest.mark.slow

# Variables of the caller's shell that would change what the tools do.
_TOOL_PREFIXES = ("VIRTUALENV_", "TOX_", "NOX_", "HATCH_", "PIP_", "VIRTUAL_ENV", "UV_", "RCC_HOLOTREE")


@pytest.fixture(scope="session")
def tools(tmp_path_factory) -> Path:
    """The bin directory of a venv holding tox, nox, hatch, both plugins and this project."""
    given = os.environ.get("HOLOCLONE_INTEGRATIONS_VENV")
    if given:
        return Path(given) / "bin"
    base = tmp_path_factory.mktemp("integrations")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    copies = []
    for name in PLUGINS:  # built from copies so the source tree gets no build/ litter
        copies.append(str(base / name))
        shutil.copytree(REPO / "plugins" / name, base / name, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    done = subprocess.run([*pip, *TOOLS, "pytest", "-e", str(REPO), *copies], capture_output=True, text=True,
                          timeout=900)
    if done.returncode:
        pytest.fail(f"could not install {', '.join(TOOLS)} and the plugins:\n{done.stdout}\n{done.stderr}")
    return venv / "bin"


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory) -> Path:
    """``hcpure`` (needs ``hcdata``), ``hcdata`` (a console script), ``hcextra``, ``hcmore``, and setuptools."""
    house = tmp_path_factory.mktemp("wheelhouse")
    write_wheel(house, "hcpure", "1.0", {"hcpure/__init__.py": b"from hcdata import greet\n\n"
                                         b"def shout():\n    return greet().upper()\n"}, requires=("hcdata>=1.0",))
    write_wheel(house, "hcdata", "1.0", {"hcdata/__init__.py": b"def greet():\n    return 'hello from hcdata'\n"},
                entry_points="[console_scripts]\nhcdata-cli = hcdata:greet\n")
    write_wheel(house, "hcextra", "1.0", {"hcextra/__init__.py": b"EXTRA = 1\n"})
    write_wheel(house, "hcmore", "1.0", {"hcmore/__init__.py": b"MORE = 1\n"})
    from virtualenv.seed.wheels.embed import BUNDLE_FOLDER

    for wheel in Path(BUNDLE_FOLDER).glob("setuptools-*.whl"):
        shutil.copy(wheel, house)
    return house


@pytest.fixture
def workspace(xfs, unique) -> Path:
    """A directory on XFS holding this test's project copy, store and tool homes."""
    root = xfs / f"integrations-{unique}"
    root.mkdir()
    shutil.copytree(SAMPLE, root / "project", ignore=shutil.ignore_patterns(".tox", ".nox", "*.egg-info",
                                                                             "__pycache__"))
    return root


def tool_env(tools: Path, workspace: Path, wheelhouse: Path) -> dict[str, str]:
    """A user's shell: the tools on PATH, the store and tool homes under ``workspace``, pip offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_TOOL_PREFIXES)}
    env["PATH"] = f"{tools}{os.pathsep}{env.get('PATH', '')}"
    (workspace / "virtualenv.ini").touch()  # virtualenv's defaults, not the user's configuration
    (workspace / "hatch-config.toml").touch()
    env.update(VIRTUALENV_CONFIG_FILE=str(workspace / "virtualenv.ini"),
               VIRTUALENV_HOLOCLONE_STORE=str(workspace / "store"),
               PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheelhouse), PIP_DISABLE_PIP_VERSION_CHECK="1",
               HATCH_DATA_DIR=str(workspace / "hatch-data"), HATCH_CACHE_DIR=str(workspace / "hatch-cache"),
               HATCH_CONFIG=str(workspace / "hatch-config.toml"))
    return env


def run(tools: Path, tool: str, *args: str, cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run([str(tools / tool), *args], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=900)
    if result.returncode:
        raise AssertionError(f"{tool} {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout + result.stderr


def installer(env_dir: Path, distribution: str) -> str:
    """Who installed ``distribution`` into ``env_dir`` (its INSTALLER file)."""
    found = list(site_packages(env_dir).glob(f"{distribution}-*.dist-info/INSTALLER"))
    assert len(found) == 1, f"{distribution} is not installed in {env_dir}"
    return found[0].read_text().strip()


def freeze(env_dir: Path) -> list[str]:
    """``pip freeze`` of the env, a local file's URL cut to its file name: each env builds the project in its own
    directory, so paths and an sdist's hash (tar members carry build times) differ."""
    out = subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "freeze"], capture_output=True, text=True,
                         check=True).stdout
    return sorted(line.split(" @ file://")[0] + (" @ " + line.rsplit("/", 1)[1].split("#")[0]
                                                 if " @ file://" in line else "")
                  for line in out.splitlines())


def assert_from_the_store(env_dir: Path, store: Path, *distributions: str) -> None:
    """Seeded by holoclone from ``store``; each distribution put in place by holoclone install, reflinked."""
    assert pyvenv_cfg(env_dir).get("holoclone_store") == str(store), f"{env_dir} was not seeded by holoclone"
    for name in distributions:
        assert installer(env_dir, name) == "holoclone", f"{name} in {env_dir} was not installed by holoclone"
        code = next(site_packages(env_dir).glob(f"{name}/__init__.py"))
        assert shares_extents(str(code)), f"{code} is not a reflink"


# -- tox ----------------------------------------------------------------------------------------------------
TOX_INI = f"""\
[tox]
env_list = py, plain

[testenv]
package = wheel
deps = hcpure
commands = {IMPORTS}

[testenv:plain]
runner = virtualenv
package_env = .pkg-plain
"""


def test_tox_envs_are_seeded_and_installed_from_the_store_with_plain_tox_results(tools, workspace, wheelhouse):
    project, store = workspace / "project", workspace / "store"
    (project / "tox.ini").write_text(TOX_INI)
    env = tool_env(tools, workspace, wheelhouse)
    out = run(tools, "tox", "run", "-e", "py,plain", cwd=project, env=env)
    assert out.count("HELLO FROM HCDATA") == 2
    tox_dir = project / ".tox"
    assert_from_the_store(tox_dir / "py", store, "hcpure", "hcdata")
    assert_from_the_store(tox_dir / ".pkg", store, "setuptools")  # the build requirements
    assert installer(tox_dir / "py", "holoclone_sample") == "holoclone"  # the project's wheel, without pip
    # The env that opted out is plain tox: virtualenv's own seeder, pip.
    assert "holoclone" not in pyvenv_cfg(tox_dir / "plain")
    assert installer(tox_dir / "plain", "hcpure") == "pip"
    assert freeze(tox_dir / "py") == freeze(tox_dir / "plain")
    assert (tox_dir / "py" / "bin" / "hcdata-cli").exists()


def test_tox_reuses_recreates_and_adds_deps_as_plain_tox_does(tools, workspace, wheelhouse):
    project, store = workspace / "project", workspace / "store"
    ini = project / "tox.ini"
    ini.write_text(TOX_INI)
    env = tool_env(tools, workspace, wheelhouse)
    run(tools, "tox", "run", "-e", "py", cwd=project, env=env)
    marker = project / ".tox" / "py" / "made-by-the-first-run"
    marker.touch()

    run(tools, "tox", "run", "-e", "py", cwd=project, env=env)
    assert marker.exists(), "an unchanged env was recreated"

    ini.write_text(TOX_INI.replace("deps = hcpure", "deps =\n    hcpure\n    hcextra"))
    run(tools, "tox", "run", "-e", "py", cwd=project, env=env)
    assert marker.exists(), "adding a dependency recreated the env (tox only installs the new one)"
    assert_from_the_store(project / ".tox" / "py", store, "hcextra")

    ini.write_text(TOX_INI)  # a removed dependency: tox recreates
    run(tools, "tox", "run", "-e", "py", cwd=project, env=env)
    assert not marker.exists()
    assert not list(site_packages(project / ".tox" / "py").glob("hcextra*"))
    marker.touch()

    run(tools, "tox", "run", "-r", "--notest", "-e", "py", cwd=project, env=env)
    assert not marker.exists(), "-r did not recreate"
    assert_from_the_store(project / ".tox" / "py", store, "hcpure", "hcdata")


def test_tox_runs_a_user_set_install_command_as_written(tools, workspace, wheelhouse):
    project = workspace / "project"
    (project / "tox.ini").write_text(TOX_INI.replace(
        "[testenv:plain]", "install_command = python -m pip install {opts} {packages}\n\n[testenv:plain]"))
    run(tools, "tox", "run", "-e", "py", cwd=project, env=tool_env(tools, workspace, wheelhouse))
    assert installer(project / ".tox" / "py", "hcpure") == "pip"
    assert pyvenv_cfg(project / ".tox" / "py").get("holoclone")  # still seeded by holoclone


def test_tox_editable_package_extras_and_dependency_groups_come_from_the_store(tools, workspace, wheelhouse):
    project, store = workspace / "project", workspace / "store"
    text = (project / "pyproject.toml").read_text().replace(
        'requires-python = ">=3.9"', 'requires-python = ">=3.9"\n'
        'optional-dependencies = { extra = ["hcextra"] }')
    (project / "pyproject.toml").write_text(text + '\n[dependency-groups]\ntest = ["hcpure"]\n')
    (project / "tox.ini").write_text(textwrap.dedent(f"""
        [testenv]
        package = editable
        extras = extra
        dependency_groups = test
        commands = {IMPORTS}
    """))
    env = tool_env(tools, workspace, wheelhouse)
    assert "HELLO FROM HCDATA" in run(tools, "tox", "run", "-e", "py", cwd=project, env=env)
    made = project / ".tox" / "py"
    assert_from_the_store(made, store, "hcpure", "hcdata", "hcextra")
    assert installer(made, "holoclone_sample") == "holoclone"  # the editable wheel tox built (PEP 660)
    # editable: an edit shows without a reinstall
    (project / "src" / "sample" / "__init__.py").write_text("def greet(name):\n    return 'edited'\n")
    probe = subprocess.run([str(made / "bin" / "python"), "-c", "import sample; print(sample.greet('x'))"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "edited"


# -- nox ----------------------------------------------------------------------------------------------------
NOXFILE = """\
{imports}


@session
def tests(session):
    session.install("hcpure")
    session.install(".")
    session.run("python", "-c", "import hcpure, sample; print(hcpure.shout())")
"""


def noxfile(project: Path, holoclone: bool, extra_install: str = "") -> None:
    imports = "from holoclone_venv.nox import session" if holoclone else "from nox import session"
    text = NOXFILE.format(imports=imports)
    if extra_install:
        text = text.replace('session.install(".")', f'session.install(".")\n    session.install("{extra_install}")')
    (project / "noxfile.py").write_text(text)


def test_nox_session_is_seeded_and_installed_from_the_store_with_plain_nox_results(tools, workspace, wheelhouse):
    project, store = workspace / "project", workspace / "store"
    env = tool_env(tools, workspace, wheelhouse)
    noxfile(project, holoclone=True)
    out = run(tools, "nox", "--envdir", str(workspace / "nox-holoclone"), cwd=project, env=env)
    assert "HELLO FROM HCDATA" in out
    made = workspace / "nox-holoclone" / "tests"
    assert_from_the_store(made, store, "hcpure", "hcdata")

    noxfile(project, holoclone=False)
    run(tools, "nox", "--envdir", str(workspace / "nox-plain"), cwd=project, env=env)
    plain = workspace / "nox-plain" / "tests"
    assert "holoclone" not in pyvenv_cfg(plain)
    assert installer(plain, "hcpure") == "pip"
    assert freeze(made) == freeze(plain)


def test_nox_reuse_and_no_install_behave_as_nox_own(tools, workspace, wheelhouse):
    project, store = workspace / "project", workspace / "store"
    env = tool_env(tools, workspace, wheelhouse)
    noxfile(project, holoclone=True)
    run(tools, "nox", cwd=project, env=env)
    made = project / ".nox" / "tests"
    marker = made / "made-by-the-first-run"
    marker.touch()

    noxfile(project, holoclone=True, extra_install="hcextra")
    run(tools, "nox", "-R", cwd=project, env=env)  # reuse, --no-install: nothing is installed
    assert marker.exists()
    assert not list(site_packages(made).glob("hcextra*"))

    run(tools, "nox", "-r", cwd=project, env=env)  # reuse, installs run (holoclone install adds hcextra)
    assert marker.exists()
    assert_from_the_store(made, store, "hcextra", "hcpure")

    run(tools, "nox", cwd=project, env=env)  # nox's default: a fresh env each run
    assert not marker.exists()
    assert_from_the_store(made, store, "hcextra", "hcpure")


# -- hatch --------------------------------------------------------------------------------------------------
HATCH_ENVS = """
[tool.hatch.envs.default]
type = "holoclone"
features = ["extra"]
dependencies = ["hcpure"]

[tool.hatch.envs.plain]
type = "virtual"
features = ["extra"]
dependencies = ["hcpure"]
"""


def hatch_env(workspace: Path, name: str) -> Path:
    found = [cfg.parent for cfg in (workspace / "hatch-data").rglob("pyvenv.cfg") if cfg.parent.name.endswith(name)]
    assert len(found) == 1, found
    return found[0]


def test_hatch_holoclone_env_is_seeded_and_installed_from_the_store_with_plain_hatch_results(
        tools, workspace, wheelhouse):
    project, store = workspace / "project", workspace / "store"
    text = (project / "pyproject.toml").read_text().replace(
        'requires-python = ">=3.9"', 'requires-python = ">=3.9"\noptional-dependencies = { extra = ["hcextra"] }')
    (project / "pyproject.toml").write_text(text + HATCH_ENVS)
    env = tool_env(tools, workspace, wheelhouse)
    out = run(tools, "hatch", "run", *IMPORTS.replace('"', "").split(" ", 2), cwd=project, env=env)
    assert "HELLO FROM HCDATA" in out
    made = hatch_env(workspace, "holoclone-sample")
    assert_from_the_store(made, store, "hcpure", "hcdata", "hcextra")  # dependencies and the feature's
    # dev mode: the project is editable, so an edit shows without a reinstall
    (project / "src" / "sample" / "__init__.py").write_text("def greet(name):\n    return 'edited'\n")
    assert "edited" in run(tools, "hatch", "run", "python", "-c", "import sample; print(sample.greet('x'))",
                           cwd=project, env=env)

    run(tools, "hatch", "run", "plain:python", "-c", "import hcpure", cwd=project, env=env)
    plain = hatch_env(workspace, "plain")
    assert "holoclone" not in pyvenv_cfg(plain)
    assert installer(plain, "hcpure") == "pip"
    assert freeze(made) == freeze(plain)

    marker = made / "made-by-the-first-run"
    marker.touch()
    # a new dependency: hatch installs what is missing, the env stays
    text = (project / "pyproject.toml").read_text().replace('dependencies = ["hcpure"]\n\n[tool.hatch.envs.plain]',
                                                            'dependencies = ["hcpure", "hcmore"]\n\n'
                                                            '[tool.hatch.envs.plain]')
    (project / "pyproject.toml").write_text(text)
    run(tools, "hatch", "run", "python", "-c", "import hcmore", cwd=project, env=env)
    assert marker.exists()
    assert_from_the_store(made, store, "hcmore")

    run(tools, "hatch", "env", "prune", cwd=project, env=env)
    run(tools, "hatch", "run", "python", "-c", "import hcmore", cwd=project, env=env)
    assert not marker.exists()
    assert_from_the_store(hatch_env(workspace, "holoclone-sample"), store, "hcpure", "hcextra", "hcmore")


@pytest.mark.parametrize("name", PLUGINS)
def test_each_tool_plugin_passes_its_own_tests_once_installed(tools, name):
    tests = REPO / "plugins" / name
    result = subprocess.run([str(tools / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
                            capture_output=True, text=True, cwd=tests, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "skipped" not in result.stdout.splitlines()[-1], result.stdout
