"""``holoclone install`` builds local projects as pip builds them, with the build environment from the store.

Each project here is built by ``bkend``, a PEP 517 backend shipped as a wheel in the find-links folder
(so it is a build requirement that must be planned, fetched and put into an isolated build
environment), and configured by the project's ``project.json``: its dependencies, extra build
requirements it asks for, and modules that must or must not be importable while it builds.  Every
case is compared with the real pip on the same inputs, on a real XFS filesystem.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from helpers import catalog_by_name, output, site_packages, virtualenv
from test_install import OFFLINE, _wheel, _without_pip, envs, freeze, hc_install, pip_install, same_as_pip  # noqa: F401
from wheels import WheelSpec, build_wheel

pytestmark = pytest.mark.slow

BKEND = '''
import base64, hashlib, json, os, zipfile


def _meta():
    with open("project.json") as handle:
        return json.load(handle)


def get_requires_for_build_wheel(config_settings=None):
    return _meta().get("extra_build", [])


get_requires_for_build_editable = get_requires_for_build_wheel


def _metadata(meta):
    return f"Metadata-Version: 2.1\\nName: {meta['name']}\\nVersion: {meta['version']}\\n" + "".join(
        f"Requires-Dist: {r}\\n" for r in meta.get("requires", []))


def prepare_metadata_for_build_wheel(directory, config_settings=None):
    meta = _meta()
    dist_info = f"{meta['name']}-{meta['version']}.dist-info"
    os.makedirs(os.path.join(directory, dist_info))
    with open(os.path.join(directory, dist_info, "METADATA"), "w") as handle:
        handle.write(_metadata(meta))
    return dist_info


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    meta = _meta()
    for module in meta.get("must_import", []):
        __import__(module)
    for module in meta.get("must_not_import", []):
        try:
            __import__(module)
        except ImportError:
            continue
        raise RuntimeError(module + " is importable: the build is not isolated")
    dist_info = f"{meta['name']}-{meta['version']}.dist-info"
    with open("proj_mod.py", "rb") as handle:
        files = {"proj_mod.py": handle.read(), f"{dist_info}/METADATA": _metadata(meta).encode(),
                 f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\\nGenerator: bkend\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"}
    name = f"{meta['name']}-{meta['version']}-py3-none-any.whl"
    rows = []
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as archive:
        for member, data in files.items():
            archive.writestr(member, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            rows.append(f"{member},sha256={digest},{len(data)}\\n")
        archive.writestr(f"{dist_info}/RECORD", "".join(rows) + f"{dist_info}/RECORD,,\\n")
    return name
'''


@pytest.fixture(scope="module")
def house(tmp_path_factory) -> Path:
    """Find-links: the backend ``bkend``, beta 1.0 and 2.0, gamma and delta."""
    dest = tmp_path_factory.mktemp("house") / "wheels"
    spec = WheelSpec("bkend", "1.0")
    spec.add("bkend.py", BKEND)
    spec.add(f"{spec.dist_info}/METADATA", "Metadata-Version: 2.1\nName: bkend\nVersion: 1.0\n")
    build_wheel(dest, spec)
    for name, version in (("beta", "1.0"), ("beta", "2.0"), ("gamma", "1.0"), ("delta", "1.0")):
        _wheel(dest, name, version)
    return dest


def project(root: Path, **meta: object) -> Path:
    """A project folder built by ``bkend`` (``meta`` goes to its project.json: name, version, requires, ...)."""
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text('[build-system]\nrequires = ["bkend"]\nbuild-backend = "bkend"\n')
    (root / "project.json").write_text(json.dumps({"name": "proj", "version": "1.0", **meta}))
    (root / "proj_mod.py").write_text("VALUE = 42\n")
    return root


def sdist(folder: Path, dest: Path, extra: tarfile.TarInfo | None = None) -> Path:
    """``folder`` as an sdist (one top folder ``proj-1.0``), with one more member when given."""
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / "proj-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        archive.add(folder, arcname="proj-1.0")
        if extra is not None:
            archive.addfile(extra, io.BytesIO(b"planted\n"))
    return path


def test_a_project_is_built_in_an_isolated_environment_made_from_the_store(envs, house, tmp_path, xfs, unique):
    env_pip, env_holo, store = envs
    for env in (env_pip, env_holo):  # installed in the target, so it must not be seen by the build (pip's isolation)
        assert pip_install(env, "--no-index", "-f", str(house), "gamma").returncode == 0
    folder = project(tmp_path / "proj", requires=["beta==2.0"], must_import=["bkend"], must_not_import=["gamma"])
    args = ["--no-index", "-f", str(house), str(folder)]
    assert pip_install(env_pip, *args).returncode == 0
    result = hc_install(env_holo, store, *args)
    assert result.returncode == 0, output(result)
    same_as_pip(env_pip, env_holo)
    site = site_packages(env_holo)
    assert (site / "proj-1.0.dist-info" / "INSTALLER").read_text() == "holoclone\n"
    assert (site / "proj_mod.py").read_text() == "VALUE = 42\n"
    assert catalog_by_name(store, "bkend") is not None  # the backend was imported into the store once
    assert not (site / "bkend.py").exists()  # and put only into the build environment, which is gone
    assert not list((store / "tmp").iterdir())

    # Again into a fresh environment: both plans (the project's, the build environment's) and the backend
    # come from the store, and pip is never run.
    env = xfs / f"again-{unique}"
    virtualenv(env, "--no-setuptools", "--no-wheel", store=store)
    assert pip_install(env, "--no-index", "-f", str(house), "gamma").returncode == 0  # as the first one was
    restore = _without_pip(env)
    try:
        warm = hc_install(env, store, *args)
    finally:
        restore()
    assert warm.returncode == 0 and "plan from the store" in warm.stderr, output(warm)
    assert freeze(env) == freeze(env_pip)


def test_a_build_requirement_the_backend_asks_for_joins_the_build_environment_only(envs, house, tmp_path):
    env_pip, env_holo, store = envs
    folder = project(tmp_path / "proj", extra_build=["delta"], must_import=["delta"])
    args = ["--no-index", "-f", str(house), str(folder)]
    assert pip_install(env_pip, *args).returncode == 0
    result = hc_install(env_holo, store, *args)
    assert result.returncode == 0, output(result)
    same_as_pip(env_pip, env_holo)
    assert not any(line.startswith("delta") for line in freeze(env_holo))


def test_an_sdist_as_tox_installs_it_is_built_without_pip_once_the_backend_is_planned(envs, house, tmp_path):
    env_pip, env_holo, store = envs
    folder = project(tmp_path / "proj")
    where = {"PIP_FIND_LINKS": str(house), "PIP_NO_INDEX": "1"}  # as tox's package install: no index options
    for number in range(2):  # tox builds a new sdist on every run
        archive = sdist(folder, tmp_path / f"dist{number}")
        args = ["--force-reinstall", "--no-deps", str(archive)]
        pip = subprocess.run([str(env_pip / "bin" / "python"), "-m", "pip", "install", *args], capture_output=True,
                             text=True, env={**os.environ, **OFFLINE, **where})
        assert pip.returncode == 0, pip.stderr
        restore = _without_pip(env_holo) if number else (lambda: None)  # the second run needs no pip
        try:
            result = hc_install(env_holo, store, *args, extra_env=where)
        finally:
            restore()
        assert result.returncode == 0, output(result)
        assert "plan from files" in result.stderr
        same_as_pip(env_pip, env_holo)  # direct_url.json (the sdist's archive_info) and REQUESTED as pip's


def test_a_project_whose_dependencies_changed_since_the_stored_plan_is_planned_again(xfs, unique, house, tmp_path):
    store = xfs / f"store-{unique}"
    folder = project(tmp_path / "proj", requires=["beta==2.0"])
    args = ["--no-index", "-f", str(house), str(folder)]
    first = xfs / f"first-{unique}"
    virtualenv(first, "--no-setuptools", "--no-wheel", store=store)
    assert hc_install(first, store, *args).returncode == 0 and "beta==2.0" in freeze(first)
    # The dependency is declared outside pyproject.toml (as with dynamic metadata): the stored plan's key
    # cannot see the change, the built wheel can.
    (folder / "project.json").write_text(json.dumps({"name": "proj", "version": "1.0", "requires": ["beta==1.0"]}))
    envs = []
    for name in ("pip", "holo"):
        env = xfs / f"{name}-{unique}"
        virtualenv(env, "--no-setuptools", "--no-wheel", store=store)
        envs.append(env)
    assert pip_install(envs[0], *args).returncode == 0
    result = hc_install(envs[1], store, *args)
    assert result.returncode == 0 and "plan from pip" in result.stderr, output(result)
    same_as_pip(*envs)
    assert "beta==1.0" in freeze(envs[1])


def test_an_sdist_with_a_member_outside_its_folder_is_refused_and_nothing_changes(envs, house, tmp_path):
    _, env_holo, store = envs
    member = tarfile.TarInfo("proj-1.0/../../planted.txt")
    member.size = len(b"planted\n")
    archive = sdist(project(tmp_path / "proj"), tmp_path / "dist", extra=member)
    before = sorted(str(p.relative_to(env_holo)) for p in env_holo.rglob("*"))
    result = hc_install(env_holo, store, "--force-reinstall", "--no-deps", str(archive),
                        extra_env={"PIP_FIND_LINKS": str(house), "PIP_NO_INDEX": "1"})
    assert result.returncode == 1, output(result)
    lines = [line for line in result.stderr.splitlines() if line.startswith("holoclone:")]
    assert len(lines) == 1 and f"the sdist {archive} could not be unpacked" in lines[0], output(result)
    assert not list(tmp_path.rglob("planted.txt")) and not list(store.rglob("planted.txt"))
    assert sorted(str(p.relative_to(env_holo)) for p in env_holo.rglob("*")) == before


def test_no_build_isolation_leaves_the_build_to_pip(envs, house, tmp_path):
    env_pip, env_holo, store = envs
    for env in (env_pip, env_holo):  # without isolation the backend must be in the environment
        assert pip_install(env, "--no-index", "-f", str(house), "bkend").returncode == 0
    args = ["--no-index", "-f", str(house), "--no-build-isolation", str(project(tmp_path / "proj"))]
    assert pip_install(env_pip, *args).returncode == 0
    result = hc_install(env_holo, store, "-v", *args)
    assert result.returncode == 0, output(result)
    same_as_pip(env_pip, env_holo)
    assert "pip's --no-build-isolation is given" in result.stderr
    assert (site_packages(env_holo) / "proj-1.0.dist-info" / "INSTALLER").read_text() == "pip\n"
