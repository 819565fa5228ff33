"""``holoclone install``: the same environment as ``pip install`` with the same arguments, from the store.

Every case runs the real pip twice on the same inputs: once as ``ENV/bin/python -m pip install ARGS``
and once through ``holoclone install --python ENV ARGS``, into two environments made alike, and compares
what pip itself says afterwards (``pip freeze --all`` and ``pip inspect``).  The wheels are small but real
(extras, markers, console scripts, two versions of one distribution) and come from a local find-links
folder with no index, so no test needs the network.  Everything lives on a real XFS filesystem.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from helpers import holoclone, output, site_packages, virtualenv
from wheels import WheelSpec, build_wheel

from holoclone_venv.platforms.linux import shares_extents

pytestmark = pytest.mark.slow

#: pip reaches no index: everything comes from the find-links folder.
OFFLINE = {"PIP_INDEX_URL": "http://127.0.0.1:9/", "PIP_EXTRA_INDEX_URL": "", "PIP_FIND_LINKS": "",
           "PIP_CONFIG_FILE": os.devnull, "PIP_RETRIES": "0", "PIP_TIMEOUT": "2", "PIP_NO_INPUT": "1"}


def _wheel(dest: Path, name: str, version: str, requires: tuple[str, ...] = (), extras: tuple[str, ...] = (),
           scripts: str | None = None) -> Path:
    spec = WheelSpec(name, version, entry_points=scripts)
    spec.add(f"{name}/__init__.py", f"VERSION = {version!r}\n\ndef main():\n    print('{name}', VERSION)\n")
    text = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    text += "".join(f"Provides-Extra: {extra}\n" for extra in extras)
    text += "".join(f"Requires-Dist: {r}\n" for r in requires)
    spec.add(f"{spec.dist_info}/METADATA", text)
    return build_wheel(dest, spec)


@pytest.fixture(scope="module")
def house(tmp_path_factory) -> Path:
    """A find-links folder: alpha (an extra, a marker that never holds, a console script), beta 1.0 and 2.0,
    gamma (alpha's extra), delta (behind the marker), and a local project folder with an in-tree backend."""
    dest = tmp_path_factory.mktemp("house") / "wheels"
    _wheel(dest, "alpha", "1.0", requires=("beta>=1.0", 'gamma; extra == "more"', 'delta; python_version < "3"'),
           extras=("more",), scripts="[console_scripts]\nalpha = alpha:main\n")
    _wheel(dest, "beta", "1.0")
    _wheel(dest, "beta", "2.0", scripts="[console_scripts]\nbeta = beta:main\n")
    _wheel(dest, "gamma", "1.0")
    _wheel(dest, "delta", "1.0")
    return dest


@pytest.fixture
def envs(xfs, unique):
    """Two environments made alike (holoclone seeds pip into both from a store on XFS), and that store."""
    store = xfs / f"store-{unique}"
    made = []
    for name in ("pip", "holo"):
        env = xfs / f"env-{name}-{unique}"
        virtualenv(env, "--no-setuptools", "--no-wheel", store=store)
        made.append(env)
    return made[0], made[1], store


def pip_install(env: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(env / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, env={**os.environ, **OFFLINE}, cwd=cwd)


def hc_install(env: Path | None, store: Path, *args: str, extra_env: dict | None = None,
               cwd: Path | None = None) -> subprocess.CompletedProcess:
    target = ["--python", str(env)] if env is not None else []
    if cwd is None:
        return holoclone("install", *target, *args, store=store, extra_env={**OFFLINE, **(extra_env or {})})
    from helpers import REPO, isolated_environ

    environ = isolated_environ({"PYTHONPATH": str(REPO), **OFFLINE, **(extra_env or {})})
    return subprocess.run([str(Path(os.sys.executable)), "-m", "holoclone_venv", "--store", str(store), "install",
                           *target, *args], capture_output=True, text=True, env=environ, cwd=cwd)


def freeze(env: Path) -> list[str]:
    result = subprocess.run([str(env / "bin" / "python"), "-m", "pip", "freeze", "--all"], capture_output=True,
                            text=True, check=True)
    return sorted(result.stdout.split("\n"))


def inspect(env: Path) -> dict[str, tuple]:
    """What ``pip inspect`` says of each distribution, without what differs by installer."""
    result = subprocess.run([str(env / "bin" / "python"), "-m", "pip", "inspect"], capture_output=True, text=True,
                            check=True)
    found = {}
    for dist in json.loads(result.stdout)["installed"]:
        meta = dist["metadata"]
        found[meta["name"]] = (meta["version"], dist.get("requested"), dist.get("direct_url"))
    return found


def same_as_pip(env_pip: Path, env_holo: Path) -> None:
    assert freeze(env_holo) == freeze(env_pip)
    assert inspect(env_holo) == inspect(env_pip)
    check = subprocess.run([str(env_holo / "bin" / "python"), "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout


def test_extras_and_markers_as_pip_with_requested_scripts_and_reflinks(envs, house):
    env_pip, env_holo, store = envs
    args = ["--no-index", "-f", str(house), "alpha[more]"]
    assert pip_install(env_pip, *args).returncode == 0
    result = hc_install(env_holo, store, *args)
    assert result.returncode == 0, output(result)
    assert "holoclone: installed" in result.stderr and "plan from pip" in result.stderr
    same_as_pip(env_pip, env_holo)
    site = site_packages(env_holo)
    assert "delta" not in freeze(env_holo)[0] and not list(site.glob("delta*"))
    assert (site / "alpha-1.0.dist-info" / "REQUESTED").exists()
    assert not (site / "beta-1.0.dist-info" / "REQUESTED").exists()  # a dependency, not asked for
    # The console script runs with the environment's interpreter.
    script = env_holo / "bin" / "alpha"
    assert script.read_text().startswith(f"#!{env_holo / 'bin' / 'python'}")
    assert subprocess.run([str(script)], capture_output=True, text=True).stdout.split() == ["alpha", "1.0"]
    # Package files (bytecode included) are reflinks of the store's objects: shared extents on XFS.
    files = [p for p in (site / "alpha").rglob("*") if p.is_file()]
    assert any(p.suffix == ".pyc" for p in files) and all(shares_extents(str(p)) for p in files)
    # pip uninstalls it completely, console script included.
    subprocess.run([str(env_holo / "bin" / "python"), "-m", "pip", "uninstall", "-y", "alpha"], check=True,
                   capture_output=True)
    assert not script.exists() and not (site / "alpha").exists()


_BACKEND = '''
import base64, hashlib, os, zipfile

NAME, VERSION, REQUIRES = "@NAME@", "1.0", "@REQUIRES@"
HERE = os.path.dirname(os.path.abspath(__file__))
METADATA = f"Metadata-Version: 2.1\\nName: {NAME}\\nVersion: {VERSION}\\n" + (
    f"Requires-Dist: {REQUIRES}\\n" if REQUIRES else "")
DIST_INFO = f"{NAME}-{VERSION}.dist-info"


def get_requires_for_build_wheel(config_settings=None):
    return []


get_requires_for_build_editable = get_requires_for_build_wheel


def prepare_metadata_for_build_wheel(directory, config_settings=None):
    os.makedirs(os.path.join(directory, DIST_INFO))
    with open(os.path.join(directory, DIST_INFO, "METADATA"), "w") as handle:
        handle.write(METADATA)
    return DIST_INFO


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def _wheel(directory, files):
    if os.path.exists(os.path.join(HERE, "FAIL")):
        raise RuntimeError("this build fails on purpose")
    if os.path.exists(os.path.join(HERE, "SLOW")):  # says it has started, then waits to be stopped
        open(os.path.join(HERE, "STARTED"), "w").close()
        import time
        time.sleep(600)
    files = {**files, f"{DIST_INFO}/METADATA": METADATA.encode(),
             f"{DIST_INFO}/WHEEL": b"Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"}
    name = f"{NAME}-{VERSION}-py3-none-any.whl"
    rows = []
    with zipfile.ZipFile(os.path.join(directory, name), "w") as archive:
        for member, data in files.items():
            archive.writestr(member, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            rows.append(f"{member},sha256={digest},{len(data)}\\n")
        archive.writestr(f"{DIST_INFO}/RECORD", "".join(rows) + f"{DIST_INFO}/RECORD,,\\n")
    return name


def build_wheel(directory, config_settings=None, metadata_directory=None):
    with open(os.path.join(HERE, f"{NAME}_mod.py"), "rb") as handle:
        return _wheel(directory, {f"{NAME}_mod.py": handle.read()})


def build_sdist(directory, config_settings=None):
    import tarfile

    name = f"{NAME}-{VERSION}"
    with tarfile.open(os.path.join(directory, f"{name}.tar.gz"), "w:gz") as archive:
        for member in ("pyproject.toml", "backend.py", f"{NAME}_mod.py"):
            archive.add(os.path.join(HERE, member), f"{name}/{member}")
        info = tarfile.TarInfo(f"{name}/PKG-INFO")
        data = METADATA.encode()
        info.size = len(data)
        import io

        archive.addfile(info, io.BytesIO(data))
    return f"{name}.tar.gz"


def build_editable(directory, config_settings=None, metadata_directory=None):
    return _wheel(directory, {"proj.pth": (HERE + "\\n").encode()})
'''


def _project(root: Path, fail: bool = False, name: str = "proj", requires: str = "beta==2.0") -> Path:
    """A project folder whose in-tree build backend needs nothing from an index (it depends on ``requires``)."""
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text('[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n')
    (root / "backend.py").write_text(_BACKEND.replace("@NAME@", name).replace("@REQUIRES@", requires))
    (root / f"{name}_mod.py").write_text("VALUE = 42\n")
    if fail:
        (root / "FAIL").write_text("")
    return root


def test_requirement_and_constraint_files_as_pip(envs, house, tmp_path):
    env_pip, env_holo, store = envs
    (tmp_path / "constraints.txt").write_text("beta==1.0\n")
    (tmp_path / "more.txt").write_text("gamma\n")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"--find-links {house}\n-r more.txt\nalpha  # pulls in beta\n")
    args = ["--no-index", "-r", str(requirements), "-c", str(tmp_path / "constraints.txt")]
    assert pip_install(env_pip, *args).returncode == 0
    result = hc_install(env_holo, store, *args)
    assert result.returncode == 0, output(result)
    same_as_pip(env_pip, env_holo)
    assert "beta==1.0" in freeze(env_holo) and "gamma==1.0" in freeze(env_holo)


def test_an_upgrade_replaces_the_installed_version_through_its_record(envs, house):
    env_pip, env_holo, store = envs
    for env in envs[:2]:
        assert pip_install(env, "--no-index", "-f", str(house), "beta==1.0").returncode == 0
    args = ["--no-index", "-f", str(house), "--upgrade", "beta"]
    assert pip_install(env_pip, *args).returncode == 0
    result = hc_install(env_holo, store, *args)
    assert result.returncode == 0, output(result)
    same_as_pip(env_pip, env_holo)
    site = site_packages(env_holo)
    assert not (site / "beta-1.0.dist-info").exists()
    assert (site / "beta" / "__init__.py").read_text() == "VERSION = '2.0'\n\ndef main():\n    print('beta', VERSION)\n"
    assert not list(env_holo.glob(".holoclone-replaced-*"))
    # Already at the planned version: nothing changes, not even a file's inode.
    inode = (site / "beta" / "__init__.py").stat().st_ino
    again = hc_install(env_holo, store, *args)
    assert again.returncode == 0 and "nothing to install" in again.stderr
    assert (site / "beta" / "__init__.py").stat().st_ino == inode


def test_no_deps_as_pip(envs, house):
    env_pip, env_holo, store = envs
    args = ["--no-index", "-f", str(house), "--no-deps", "alpha"]
    assert pip_install(env_pip, *args).returncode == 0
    result = hc_install(env_holo, store, *args)
    assert result.returncode == 0, output(result)
    assert freeze(env_holo) == freeze(env_pip)
    assert inspect(env_holo) == inspect(env_pip)
    assert "beta" not in " ".join(freeze(env_holo))


def _without_pip(env: Path):
    """Make the environment's pip unimportable (its metadata stays): any pip run now fails."""
    site = site_packages(env)
    (site / "pip").rename(site / "pip.away")
    return lambda: (site / "pip.away").rename(site / "pip")


def test_a_local_wheel_as_tox_installs_it_without_pip_and_not_into_the_store(envs, house, tmp_path):
    env_pip, env_holo, store = envs
    project = _project(tmp_path / "proj")
    built = subprocess.run([str(env_pip / "bin" / "python"), "-m", "pip", "wheel", "--no-deps", "--no-index", "-w",
                            str(tmp_path / "dist"), str(project)], capture_output=True, text=True, env={**os.environ, **OFFLINE})
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "dist").glob("proj-*.whl"))
    args = ["--force-reinstall", "--no-deps", str(wheel)]
    for _ in range(2):  # tox reinstalls the project on every run
        assert pip_install(env_pip, *args).returncode == 0
        restore = _without_pip(env_holo)
        try:
            result = hc_install(env_holo, store, *args)
        finally:
            restore()
        assert result.returncode == 0, output(result)
        assert freeze(env_holo) == freeze(env_pip)
        assert inspect(env_holo) == inspect(env_pip)  # REQUESTED and direct_url.json (PEP 610) as pip writes them
    site = site_packages(env_holo)
    assert (site / "proj_mod.py").read_text() == "VALUE = 42\n"
    assert not list((store / "wheels").glob(f"*/{wheel.name}")) if (store / "wheels").exists() else True
    assert not any("proj" in c for c in os.listdir(store / "catalogs"))
    subprocess.run([str(env_holo / "bin" / "python"), "-m", "pip", "uninstall", "-y", "proj"], check=True,
                   capture_output=True)
    assert not (site / "proj_mod.py").exists()


def test_an_editable_project_is_built_as_pip_builds_it_after_its_dependencies_came_from_the_store(envs, house,
                                                                                                   tmp_path):
    env_pip, env_holo, store = envs
    project = _project(tmp_path / "proj")
    args = ["--no-index", "-f", str(house), "-e", str(project)]
    assert pip_install(env_pip, *args).returncode == 0
    result = hc_install(env_holo, store, *args)
    assert result.returncode == 0, output(result)
    same_as_pip(env_pip, env_holo)
    site = site_packages(env_holo)
    assert (site / "beta-2.0.dist-info" / "INSTALLER").read_text() == "holoclone\n"  # the dependency: the store
    assert (site / "proj-1.0.dist-info" / "INSTALLER").read_text() == "holoclone\n"  # built by holoclone, no pip
    check = subprocess.run([str(env_holo / "bin" / "python"), "-c", "import proj_mod; print(proj_mod.VALUE)"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert check.stdout.strip() == "42"


def test_a_failure_leaves_the_environment_as_it_was(envs, house, tmp_path):
    env_pip, env_holo, store = envs
    for env in envs[:2]:
        assert pip_install(env, "--no-index", "-f", str(house), "beta==1.0").returncode == 0
    site = site_packages(env_holo)
    before = sorted(str(p.relative_to(env_holo)) for p in env_holo.rglob("*") if "__pycache__" not in p.parts)
    broken = _project(tmp_path / "broken", fail=True)  # its metadata is fine, its build fails
    args = ["--no-index", "-f", str(house), str(broken)]
    assert pip_install(env_pip, *args).returncode != 0
    result = hc_install(env_holo, store, *args)
    assert result.returncode == 1, output(result)
    lines = [line for line in result.stderr.splitlines() if line.startswith("holoclone:")]
    assert len(lines) == 1 and f"building {broken} failed in build_wheel: RuntimeError: this build fails on " \
        "purpose; the environment is as it was" in lines[0], output(result)
    assert 'raise RuntimeError("this build fails on purpose")' in result.stderr  # the backend's own words first
    assert freeze(env_holo) == freeze(env_pip) and "beta==1.0" in freeze(env_holo)
    after = sorted(str(p.relative_to(env_holo)) for p in env_holo.rglob("*") if "__pycache__" not in p.parts)
    assert after == before  # beta 2.0 is gone again, beta 1.0 back, nothing left over
    assert (site / "beta" / "__init__.py").read_text().startswith("VERSION = '1.0'")


def test_a_target_that_is_not_a_virtual_environment_is_refused(xfs, unique, house):
    import sys

    base = Path(sys.base_prefix) / "bin" / "python3"
    result = hc_install(base, xfs / f"store-{unique}", "--no-index", "-f", str(house), "beta")
    assert result.returncode == 2
    assert result.stderr.count("holoclone:") == 1 and "is not a virtual environment" in result.stderr
    missing = hc_install(None, xfs / f"store-{unique}", "beta", extra_env={"VIRTUAL_ENV": ""})
    assert missing.returncode == 2 and "VIRTUAL_ENV" in missing.stderr


def _index(root: Path, house: Path, versions: dict[str, list[str]]) -> str:
    """A PEP 503 index in a folder (``file:`` URL): its contents change without changing the command line."""
    import hashlib

    for name, listed in versions.items():
        folder = root / "simple" / name
        folder.mkdir(parents=True, exist_ok=True)
        links = []
        for version in listed:
            wheel = house / f"{name}-{version}-py3-none-any.whl"
            digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
            links.append(f'<a href="{wheel.as_uri()}#sha256={digest}">{wheel.name}</a>')
        (folder / "index.html").write_text("<html><body>" + "".join(links) + "</body></html>")
    return (root / "simple").as_uri()


def _fresh_env(xfs: Path, store: Path, name: str) -> Path:
    env = xfs / name
    virtualenv(env, "--no-setuptools", "--no-wheel", store=store)
    return env


def test_a_warm_plan_runs_no_pip_and_an_unpinned_one_expires(xfs, unique, house, tmp_path):
    store = xfs / f"store-{unique}"
    index = _index(tmp_path / "index", house, {"alpha": ["1.0"], "beta": ["1.0"]})
    args = ["-i", index, "alpha"]
    first = hc_install(_fresh_env(xfs, store, f"a-{unique}"), store, *args)
    assert first.returncode == 0 and "plan from pip" in first.stderr, output(first)

    # The same command into a fresh environment: the plan and every catalog come from the store; pip is never
    # run, and no wheel is needed (neither the store's copies nor the index's files are there to be read).
    env = _fresh_env(xfs, store, f"b-{unique}")
    restore = _without_pip(env)
    shutil.move(store / "wheels", tmp_path / "kept-wheels")
    house.rename(house.with_name("house-away"))
    try:
        warm = hc_install(env, store, *args)
    finally:
        restore()
        house.with_name("house-away").rename(house)
    assert warm.returncode == 0 and "plan from the store" in warm.stderr, output(warm)
    assert "beta==1.0" in freeze(env)

    # A new release on the index: the unpinned plan is reused until it expires, or until --refresh.
    _index(tmp_path / "index", house, {"beta": ["1.0", "2.0"]})
    cached = hc_install(_fresh_env(xfs, store, f"c-{unique}"), store, *args)
    assert "beta 1.0" in cached.stderr and "plan from the store" in cached.stderr, output(cached)
    for how, extra_env in ((["--plan-ttl", "0"], {}), ([], {"VIRTUALENV_HOLOCLONE_PLAN_TTL": "0"}), (["--refresh"], {})):
        env = _fresh_env(xfs, store, f"d{len(how)}{len(extra_env)}-{unique}")
        result = hc_install(env, store, *how, *args, extra_env=extra_env)
        assert result.returncode == 0 and "plan from pip" in result.stderr, (how, output(result))
        assert "beta==2.0" in freeze(env)


def test_a_repeated_install_with_nothing_to_do_imports_no_virtualenv(xfs, unique, house):
    """tox, nox and hatch run the same install again and again: the repeat reads virtualenv's settings without
    importing virtualenv (whose package alone imports most of virtualenv.run) and, with nothing to install,
    without the materializer."""
    import sys

    from helpers import REPO, isolated_environ

    store = xfs / f"store-{unique}"
    env = _fresh_env(xfs, store, f"w-{unique}")
    args = ["--no-index", "-f", str(house), "alpha"]
    first = hc_install(env, store, *args)
    assert first.returncode == 0 and "installed alpha 1.0" in first.stderr, output(first)
    code = ("import sys\nfrom holoclone_venv.command.cli import main\nstatus = main(sys.argv[1:])\n"
            "print(status, [m for m in sys.modules if m.partition('.')[0] == 'virtualenv'"
            " or m == 'holoclone_venv.command.install.apply'])\n")
    repeat = subprocess.run([sys.executable, "-c", code, "--store", str(store), "install", "--python", str(env), *args],
                            capture_output=True, text=True, env=isolated_environ({"PYTHONPATH": str(REPO), **OFFLINE}))
    assert "nothing to install" in repeat.stderr and "plan from the store" in repeat.stderr, output(repeat)
    assert repeat.stdout.split(None, 1) == ["0", "[]\n"], output(repeat)


def test_a_fully_pinned_plan_never_expires(xfs, unique, house, tmp_path):
    store = xfs / f"store-{unique}"
    index = _index(tmp_path / "index", house, {"alpha": ["1.0"], "beta": ["1.0"]})
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("alpha==1.0\nbeta==1.0\n")
    args = ["-i", index, "-r", str(requirements)]
    assert hc_install(_fresh_env(xfs, store, f"a-{unique}"), store, *args).returncode == 0
    env = _fresh_env(xfs, store, f"b-{unique}")
    restore = _without_pip(env)
    try:
        pinned = hc_install(env, store, "--plan-ttl", "0", *args)
    finally:
        restore()
    assert pinned.returncode == 0 and "plan from the store" in pinned.stderr, output(pinned)
    # A changed requirements file is another plan.
    requirements.write_text("alpha==1.0\nbeta==1.0\ngamma==1.0\n")
    _index(tmp_path / "index", house, {"gamma": ["1.0"]})
    changed = hc_install(env, store, *args)
    assert changed.returncode == 0 and "plan from pip" in changed.stderr and "gamma==1.0" in freeze(env)


def test_an_environment_made_by_venv_without_pip_is_planned_by_virtualenvs_embedded_pip(xfs, unique, house):
    import sys

    env, store = xfs / f"venv-{unique}", xfs / f"store-{unique}"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    result = hc_install(env, store, "-q", "--no-index", "-f", str(house), "alpha")
    assert result.returncode == 0 and result.stdout == "" and result.stderr == "", output(result)  # -q: silent
    listed = subprocess.run([str(env / "bin" / "python"), "-I", "-c", "import importlib.metadata as m; print(sorted("
                             "(d.metadata['Name'], d.version, d.read_text('INSTALLER')) for d in m.distributions()))"],
                            capture_output=True, text=True, check=True).stdout
    assert listed.strip() == "[('alpha', '1.0', 'holoclone\\n'), ('beta', '2.0', 'holoclone\\n')]"


def test_an_sdist_dependency_is_built_by_pip_and_not_marked_requested(envs, house, tmp_path):
    import sys

    env_pip, env_holo, store = envs
    links = tmp_path / "links"
    links.mkdir()
    project = _project(tmp_path / "zeta", name="zeta", requires="")
    sys.path.insert(0, str(project))
    try:
        import backend

        backend.build_sdist(str(links))
    finally:
        sys.path.remove(str(project))
        sys.modules.pop("backend", None)
    _wheel(links, "omega", "1.0", requires=("zeta>=1.0", "beta==1.0"))
    args = ["--no-index", "-f", str(house), "-f", str(links), "omega"]
    assert pip_install(env_pip, *args).returncode == 0
    result = hc_install(env_holo, store, *args)
    assert result.returncode == 0, output(result)
    same_as_pip(env_pip, env_holo)
    site = site_packages(env_holo)
    assert (site / "zeta-1.0.dist-info" / "INSTALLER").read_text() == "pip\n"
    assert not (site / "zeta-1.0.dist-info" / "REQUESTED").exists()


def _plain_sdist(project: Path, dest: Path) -> None:
    """``zeta-1.0.zip`` (stored, not compressed: a one-character change keeps its size) of a project, dated 2020."""
    import zipfile

    with zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as archive:
        members = {name: (project / name).read_bytes() for name in ("pyproject.toml", "backend.py", "zeta_mod.py")}
        members["PKG-INFO"] = b"Metadata-Version: 2.1\nName: zeta\nVersion: 1.0\n"
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(f"zeta-1.0/{name}", date_time=(2020, 1, 1, 0, 0, 0)), data)
    os.utime(dest, (1_600_000_000, 1_600_000_000))


def test_an_sdist_handed_to_pip_must_be_the_archive_pip_planned_with(envs, house, tmp_path):
    env_pip, env_holo, store = envs
    project = _project(tmp_path / "zeta", name="zeta", requires="")
    links = tmp_path / "links"
    links.mkdir()
    sdist = links / "zeta-1.0.zip"
    _plain_sdist(project, sdist)
    # (No cache: pip would reuse the wheel it built from that path, whatever the archive holds now.)
    args = ["--no-index", "--no-cache-dir", "-f", str(links), "zeta"]
    planned = hc_install(env_pip, store, *args)  # the plan is kept in the store
    assert planned.returncode == 0, output(planned)
    # Same name, size and time, other bytes: the stored plan still applies, and pip must refuse the archive.
    (project / "zeta_mod.py").write_text("VALUE = 43\n")
    size = sdist.stat().st_size
    _plain_sdist(project, sdist)
    assert sdist.stat().st_size == size
    result = hc_install(env_holo, store, *args)
    assert result.returncode == 1, output(result)
    assert "hash" in result.stderr.lower() and "zeta" not in " ".join(freeze(env_holo))


def test_sigterm_while_the_project_builds_puts_the_replaced_version_back(envs, house, tmp_path):
    import signal
    import time

    from helpers import REPO, isolated_environ

    _, env_holo, store = envs
    assert pip_install(env_holo, "--no-index", "-f", str(house), "beta==1.0").returncode == 0
    before = sorted(str(p.relative_to(env_holo)) for p in env_holo.rglob("*") if "__pycache__" not in p.parts)
    slow = _project(tmp_path / "slow")
    (slow / "SLOW").write_text("")
    environ = isolated_environ({"PYTHONPATH": str(REPO), **OFFLINE})
    with subprocess.Popen([os.sys.executable, "-m", "holoclone_venv", "--store", str(store), "install", "--python",
                           str(env_holo), "--no-index", "-f", str(house), str(slow)], env=environ,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        while not (slow / "STARTED").exists():  # beta 2.0 is in place and the project is being built
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate()
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1] == f"holoclone: interrupted; {env_holo} is as it was."
    after = sorted(str(p.relative_to(env_holo)) for p in env_holo.rglob("*") if "__pycache__" not in p.parts)
    assert after == before and "beta==1.0" in freeze(env_holo)
    # The build backend was stopped too: no process works in the project any more.
    assert [pid for pid in os.listdir("/proc") if pid.isdigit() and _cwd(pid) == str(slow)] == []


def _cwd(pid: str) -> str:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:  # gone, or a zombie waiting to be reaped
        return ""


def test_a_pinned_plan_travels_signed_through_a_remote_store(xfs, unique, house, tmp_path):
    keys = {}
    for name in ("fleet-ci", "stranger"):
        made = holoclone("store", "keygen", name, "-o", str(tmp_path / f"{name}.key"))
        assert made.returncode == 0, output(made)
        keys[name] = made.stdout.strip()
    index = _index(tmp_path / "index", house, {"alpha": ["1.0"], "beta": ["1.0"]})
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("alpha==1.0\nbeta==1.0\n")
    args = ["-i", index, "-r", str(requirements)]
    source, remote = xfs / f"source-{unique}", tmp_path / "remote"
    assert hc_install(_fresh_env(xfs, source, f"a-{unique}"), source, *args).returncode == 0
    pushed = holoclone("store", "push", remote.as_uri(), "--all", "--signing-key", str(tmp_path / "fleet-ci.key"),
                       store=source)
    # The plan, and the one for the same command once it is done (nothing to install).
    assert pushed.returncode == 0 and "2 install plans" in pushed.stdout, output(pushed)

    # Another machine's empty store: the plan and the catalogs come from the remote, signed; no pip, no wheel.
    def elsewhere(name: str, trusted: str) -> tuple[subprocess.CompletedProcess, Path]:
        store = xfs / f"{name}-{unique}"
        env = _fresh_env(xfs, store, f"env-{name}-{unique}")
        restore = _without_pip(env)
        house.rename(house.with_name("house-away"))
        try:
            return hc_install(env, store, *args, extra_env={"VIRTUALENV_HOLOCLONE_REMOTE": remote.as_uri(),
                                                            "VIRTUALENV_HOLOCLONE_TRUSTED_KEYS": trusted}), env
        finally:
            restore()
            house.with_name("house-away").rename(house)

    result, env = elsewhere("trusting", keys["fleet-ci"])
    assert result.returncode == 0 and "plan from the remote store" in result.stderr, output(result)
    assert [line for line in freeze(env) if line.startswith(("alpha", "beta"))] == ["alpha==1.0", "beta==1.0"]
    # Signed by a key this machine does not trust: not used (one warning), so pip is asked, which fails here.
    refused, _ = elsewhere("wary", keys["stranger"])
    assert refused.returncode == 1 and "stranger, which is not a trusted key" not in refused.stderr
    assert "fleet-ci, which is not a trusted key" in refused.stderr, output(refused)


def test_where_a_requirements_file_says_to_look_reaches_the_pip_that_builds(envs, house, tmp_path):
    env_pip, env_holo, store = envs
    links = tmp_path / "links"
    links.mkdir()
    _plain_sdist(_project(tmp_path / "zeta", name="zeta", requires=""), links / "zeta-1.0.zip")
    _wheel(links, "omega", "1.0", requires=("zeta>=1.0", "beta==1.0"))
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"--no-index\n--find-links links\n--find-links {house}\nomega\n")
    args = ["-r", str(requirements)]  # nothing on the command line says where to look
    assert pip_install(env_pip, *args).returncode == 0
    result = hc_install(env_holo, store, *args)
    assert result.returncode == 0, output(result)
    same_as_pip(env_pip, env_holo)
