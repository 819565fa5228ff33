"""Third-party plugins change what a real ``virtualenv --seeder holoclone`` run does.

The example plugins under ``plugins/`` are pip-installed into a virtual
environment made for this test session (other test processes share the
interpreter, so nothing is installed into it); that environment's
``python -m virtualenv`` then creates the environments under test.

That environment sees what the interpreter running the tests sees: a ``.pth``
file adds the running interpreter's site directories (``site.addsitedir``, so
their own ``.pth`` files, editable installs included, work too) and this
source tree.  ``--system-site-packages`` alone would not do: when the tests run
inside a virtual environment (``pip install -e ".[test]"`` in a fresh venv),
the "system" packages are the base interpreter's, which lack virtualenv,
pluggy and pytest.
"""

from __future__ import annotations

import site
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import fallback_lines, fell_back, isolated_environ, regular_files, run_in, site_packages, summary_line, virtualenv, virtualenv_command
from helpers import method_counts as counts

REPO = Path(__file__).resolve().parents[1]
PLUGINS = REPO / "plugins"
EXAMPLES = ("holoclone-copy-file-range", "holoclone-rules-file")

pytestmark = pytest.mark.slow  # session environments are pip-installed; every test runs virtualenv or pytest there


def _running_site_dirs() -> list[str]:
    """The site directories of the interpreter running the tests (a venv's own, when it is one)."""
    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE and Path(site.getusersitepackages()).is_dir():
        dirs.append(site.getusersitepackages())
    return dirs


class Venv:
    """A session virtual environment that sees the interpreter's packages plus what we install."""

    def __init__(self, root: Path) -> None:
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(root)], check=True)
        self.root = root
        self.python = root / "bin" / "python"
        purelib = subprocess.run(
            [str(self.python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
        Path(purelib, "holoclone-under-test.pth").write_text("".join(
            [f"{REPO}\n"] + [f"import site; site.addsitedir({d!r})\n" for d in _running_site_dirs()]))

    def install(self, *sources: Path) -> None:
        """pip-install local source trees; built from copies so the source tree gets no build/ litter."""
        copies = []
        for source in sources:
            copy = self.root / "src" / source.name
            shutil.copytree(source, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
            copies.append(str(copy))
        # Build isolation fetches the build backend (setuptools) from the package index when it is
        # not cached; --no-deps: holoclone-venv itself comes from this source tree (the .pth above).
        installed = subprocess.run(
            [str(self.python), "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check", *copies],
            capture_output=True, text=True,
        )
        if installed.returncode:
            raise AssertionError(f"pip install failed:\n{installed.stdout}\n{installed.stderr}")

    def virtualenv(self, env: Path, *args: str, store: Path, cwd: Path | None = None,
                   extra_env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
        """``python -m virtualenv --seeder holoclone`` of this environment; output is stdout + stderr."""
        cmd = virtualenv_command(env, *args, store=store, python=str(self.python))
        environ = isolated_environ(extra_env, strip=("HOLOCLONE_",))
        result = subprocess.run(cmd, capture_output=True, text=True, env=environ, cwd=cwd, timeout=600)
        if check and result.returncode:
            raise AssertionError(f"virtualenv failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result


@pytest.fixture(scope="session")
def plugin_venv(tmp_path_factory) -> Venv:
    """A session environment with both example plugins installed."""
    venv = Venv(tmp_path_factory.mktemp("plugin-venv") / "venv")
    venv.install(*(PLUGINS / name for name in EXAMPLES))
    return venv


def output(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr




def store_inodes(store: Path) -> set[tuple[int, int]]:
    return {(s.st_dev, s.st_ino) for s in (p.stat() for p in regular_files(store / "objects"))}



def linked_files(env: Path) -> list[Path]:
    """Files the materializer links from the store (not the ones it writes per environment)."""
    per_env = {"RECORD", "INSTALLER", "distutils-precedence.pth"}
    return [p for p in regular_files(site_packages(env)) if p.name not in per_env]


@pytest.mark.parametrize("name", EXAMPLES)
def test_each_example_plugin_passes_its_own_tests_once_installed(plugin_venv, name):
    tests = plugin_venv.root / "src" / name
    result = subprocess.run(
        [str(plugin_venv.python), "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
        capture_output=True, text=True, cwd=tests,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # the entry-point test skips only when the distribution is not installed
    assert "skipped" not in result.stdout.splitlines()[-1], result.stdout


def test_copy_file_range_strategy_counts_files_as_copied_and_envs_work(plugin_venv, xfs, unique):
    store, env = xfs / f"store-{unique}", xfs / f"env-{unique}"
    result = plugin_venv.virtualenv(env, "--holoclone-strategy", "copy-file-range", store=store)
    found = counts(result)
    assert found["reflinked"] == found["hardlinked"] == 0
    assert found["copied"] > 500
    assert fallback_lines(result) == []  # XFS implements copy_file_range: no fallback to copy
    assert "strategy=copy-file-range" in result.stdout  # virtualenv's own echo of the seeder
    assert str(env) in run_in(env, "pip", "--version").stdout
    inodes = store_inodes(store)
    assert all((p.stat().st_dev, p.stat().st_ino) not in inodes for p in linked_files(env))


def test_copy_file_range_falls_back_to_copy_across_filesystems_and_says_why(plugin_venv, tmpfs, ext4, unique):
    store, env = tmpfs / f"store-{unique}", ext4 / f"env-{unique}"
    result = plugin_venv.virtualenv(env, "--holoclone-strategy", "copy-file-range", store=store)
    found = counts(result)
    assert found["reflinked"] == found["hardlinked"] == 0 and found["copied"] > 500
    [fallback] = fallback_lines(result)
    assert fell_back(fallback, "copy-file-range", "copy"), fallback
    assert "cross-device" in fallback  # the kernel's own reason (EXDEV), not a guess
    assert str(env) in run_in(env, "pip", "--version").stdout


def test_copy_file_range_with_strict_refuses_to_fall_back(plugin_venv, tmpfs, ext4, unique):
    store, env = tmpfs / f"store-{unique}", ext4 / f"env-{unique}"
    result = plugin_venv.virtualenv(env, "--holoclone-strategy", "copy-file-range", "--holoclone-strict",
                                    store=store, check=False)
    assert result.returncode != 0
    assert "copy-file-range failed" in output(result) and "falling back to copy" in output(result)


def test_rules_file_keeps_matching_files_from_being_hardlinked(plugin_venv, ext4, unique, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / ".holoclone-rules").write_text(textwrap.dedent("""\
        # pip's CA bundle is always a private copy; vendored modules are never hardlinked
        always-copy: *.pem
        never-hardlink: pip/_vendor/*.py
    """))
    store, env = ext4 / f"store-{unique}", ext4 / f"env-{unique}"
    result = plugin_venv.virtualenv(env, "--holoclone-strategy", "hardlink", store=store, cwd=project)
    assert "holoclone-rules-file" not in output(result)  # no warning: the file is valid
    inodes = store_inodes(store)
    site = site_packages(env)
    protected, others = [], []
    for path in linked_files(env):
        rel = path.relative_to(site).as_posix()
        is_bytecode = "__pycache__/" in rel  # never hardlinked by the built-in rules anyway
        (protected if rel.endswith(".pem") or (rel.startswith("pip/_vendor/") and rel.endswith(".py"))
         else others if not is_bytecode else []).append(path)
    assert any(p.name == "cacert.pem" for p in protected)
    assert len(protected) > 100
    for path in protected:
        info = path.stat()
        assert info.st_nlink == 1 and (info.st_dev, info.st_ino) not in inodes, path
    assert len(others) > 100
    for path in others:
        assert (path.stat().st_dev, path.stat().st_ino) in inodes, path
    assert str(env) in run_in(env, "pip", "--version").stdout


def test_without_the_rules_file_the_same_files_are_hardlinked(plugin_venv, ext4, unique, tmp_path):
    # The contrast that shows the plugin, not something else, protected the files above.
    store, env = ext4 / f"store-{unique}", ext4 / f"env-{unique}"
    plugin_venv.virtualenv(env, "--holoclone-strategy", "hardlink", store=store, cwd=tmp_path)
    [pem] = [p for p in linked_files(env) if p.name == "cacert.pem"]
    assert (pem.stat().st_dev, pem.stat().st_ino) in store_inodes(store)


def test_a_bad_rules_file_warns_and_copies_every_file(plugin_venv, ext4, unique, tmp_path):
    rules = tmp_path / "team.rules"
    rules.write_text("always-copy: *.pem\nnever-hardlnk: *.py\n")
    store, env = ext4 / f"store-{unique}", ext4 / f"env-{unique}"
    result = plugin_venv.virtualenv(env, "--holoclone-strategy", "hardlink", store=store, cwd=tmp_path,
                                    extra_env={"HOLOCLONE_RULES_FILE": str(rules)})
    [warning] = [line for line in output(result).splitlines() if "holoclone-rules-file" in line]
    assert "team.rules line 2" in warning and "never-hardlnk" in warning
    assert counts(result)["hardlinked"] == 0
    assert str(env) in run_in(env, "pip", "--version").stdout


def test_unknown_strategy_lists_the_plugins_strategies_too(plugin_venv, tmp_path):
    env = tmp_path / "env"
    result = plugin_venv.virtualenv(env, "--holoclone-strategy", "nope", store=tmp_path / "store", check=False)
    assert result.returncode == 2
    assert "unknown holoclone strategy 'nope'" in result.stderr
    assert "Valid strategies: smart, reflink, hardlink, copy, snapshot, copy-file-range." in result.stderr
    assert not env.exists()


BROKEN = {
    "holoclone-broken-import": ("broken-import", "raise RuntimeError('boom at import')\n"),
    "holoclone-broken-hook": ("broken-hook", textwrap.dedent("""\
        from holoclone_venv.api import hookimpl

        @hookimpl
        def holoclone_exclusion_rules(settings):
            raise RuntimeError("boom in hook")
    """)),
    # Takes the name of holoclone's built-in plugin (strategies and exclusion rules).
    "holoclone-name-clash": ("builtins", "from holoclone_venv.api import hookimpl\n"),
}


@pytest.fixture(scope="session")
def broken_venv(tmp_path_factory) -> Venv:
    """A session environment with the copy-file-range plugin and three faulty plugins."""
    base = tmp_path_factory.mktemp("broken-plugins")
    sources = []
    for dist, (entry_point, code) in BROKEN.items():
        package = dist.replace("-", "_")
        source = base / dist
        (source / package).mkdir(parents=True)
        (source / package / "__init__.py").write_text(code)
        (source / "pyproject.toml").write_text(textwrap.dedent(f"""\
            [build-system]
            requires = ["setuptools>=68"]
            build-backend = "setuptools.build_meta"
            [project]
            name = "{dist}"
            version = "1.0"
            [project.entry-points.holoclone]
            {entry_point} = "{package}"
            [tool.setuptools]
            packages = ["{package}"]
        """))
        sources.append(source)
    venv = Venv(base / "venv")
    venv.install(PLUGINS / "holoclone-copy-file-range", *sources)
    return venv


def test_broken_plugins_give_one_warning_each_and_the_run_continues(broken_venv, tmp_path):
    env = tmp_path / "env"
    result = broken_venv.virtualenv(env, "--holoclone-strategy", "copy", store=tmp_path / "store")
    lines = output(result).splitlines()
    for dist, (name, boom) in {"holoclone-broken-import": ("broken-import", "boom at import"),
                               "holoclone-broken-hook": ("broken-hook", "boom in hook")}.items():
        [warning] = [line for line in lines if f"'{name}'" in line]
        assert dist in warning and boom in warning and "continuing without it" in warning
    [clash] = [line for line in lines if "holoclone-name-clash" in line]
    assert "'builtins'" in clash and "already uses that name" in clash
    assert "seeded pip" in summary_line(result)
    assert str(env) in run_in(env, "pip", "--version").stdout


def test_a_working_plugin_beside_broken_ones_still_provides_its_strategy(broken_venv, tmp_path):
    env = tmp_path / "env"
    result = broken_venv.virtualenv(env, "--holoclone-strategy", "copy-file-range", store=tmp_path / "store")
    assert "strategy=copy-file-range" in result.stdout
    assert counts(result)["hardlinked"] == 0


def test_exclude_py_keeps_python_sources_from_being_hardlinked(ext4, unique):
    store, env = ext4 / f"store-{unique}", ext4 / f"env-{unique}"
    virtualenv(env, "--holoclone-strategy", "hardlink", "--holoclone-exclude", "*.py", store=store)
    inodes = store_inodes(store)
    files = linked_files(env)
    sources = [p for p in files if p.suffix == ".py"]
    data = [p for p in files if p.suffix not in (".py", ".pyc")]
    assert len(sources) > 500 and len(data) > 10
    assert all(p.stat().st_nlink == 1 and (p.stat().st_dev, p.stat().st_ino) not in inodes for p in sources)
    assert all((p.stat().st_dev, p.stat().st_ino) in inodes for p in data)
    assert str(env) in run_in(env, "pip", "--version").stdout
