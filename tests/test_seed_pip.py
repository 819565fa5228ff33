"""pip in a holoclone-seeded environment behaves as in one from virtualenv's default seeder.

Every test runs the real ``virtualenv --seeder holoclone`` and the real pip of
the resulting environment, on a real XFS filesystem, from one warm store.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from helpers import PY, bundled_version, catalog_by_name, pyvenv_cfg, regular_files, run_in, site_packages, virtualenv
from wheels import build_wheel, console_spec

from holoclone_venv.store.catalog import Catalog

def catalog_of(store: Path, name: str) -> Catalog:
    """The catalog the environments of this store were seeded from, for distribution ``name``."""
    return catalog_by_name(store, name)


@pytest.fixture(scope="module")
def warm(xfs, warm_store) -> Path:
    """A directory on XFS with a store (``warm / "store"``) already holding pip and setuptools."""
    return warm_store(xfs).parent


@pytest.fixture
def env(warm, unique) -> Path:
    """A fresh environment of its own, seeded from the warm store."""
    path = warm / unique
    virtualenv(path, store=warm / "store")
    return path


def test_pip_version_names_the_environment(env):
    out = run_in(env, "pip", "--version").stdout
    assert out.startswith(f"pip {bundled_version('pip')} from {site_packages(env)}/pip ")
    assert f"(python {PY})" in out


def test_pip_list_shows_pip_and_setuptools(env):
    listed = {d["name"]: d["version"] for d in json.loads(run_in(env, "pip", "list", "--format=json").stdout)}
    assert listed == {"pip": bundled_version("pip"), "setuptools": bundled_version("setuptools")}


def test_pip_check_finds_nothing_broken(env):
    assert "No broken requirements found." in run_in(env, "pip", "check").stdout


def test_pip_installs_runs_and_uninstalls_a_local_wheel(env, tmp_path):
    wheel = build_wheel(tmp_path, console_spec("hcdemo", "1.0"))
    run_in(env, "pip", "install", "--no-index", "--no-deps", str(wheel))
    script = env / "bin" / "hcdemo"
    assert os.access(script, os.X_OK)
    assert run_in(env, "hcdemo").stdout == "hcdemo 1.0 works\n"
    assert (site_packages(env) / "hcdemo" / "__init__.py").is_file()
    assert "hcdemo" in run_in(env, "pip", "list").stdout
    run_in(env, "pip", "uninstall", "-y", "hcdemo")
    assert not script.exists()
    assert not (site_packages(env) / "hcdemo").exists()
    # the seeded packages are untouched by the install and uninstall of another one
    assert "No broken requirements found." in run_in(env, "pip", "check").stdout


def test_pip_uninstall_setuptools_removes_every_file_it_installed(env, warm):
    site = site_packages(env)
    catalog = catalog_of(warm / "store", "setuptools")
    installed = [site / e.path for e in catalog.entries if e.scheme == "purelib"]
    assert len(installed) > 100
    assert all(p.is_file() for p in installed)
    run_in(env, "pip", "uninstall", "-y", "setuptools")
    left = [p for p in installed if p.exists()] + [p for p in site.iterdir() if p.name.startswith(catalog.dist_info)]
    assert left == []
    assert sorted(p.name for p in site.iterdir()) == sorted(["pip", f"pip-{bundled_version('pip')}.dist-info"])
    # pip itself still works without setuptools
    assert run_in(env, "pip", "--version").returncode == 0
    assert "setuptools" not in run_in(env, "pip", "list").stdout


def test_pip_uninstall_pip_removes_its_scripts(env, warm):
    catalog = catalog_of(warm / "store", "pip")
    scripts = [env / "bin" / s.name for s in catalog.scripts]
    assert sorted(s.name for s in scripts) == sorted(["pip", "pip3", f"pip-{PY}", f"pip{PY}"])  # as virtualenv
    subprocess.run([str(env / "bin" / "python"), "-m", "pip", "uninstall", "-y", "pip"], check=True, capture_output=True)
    assert [s for s in scripts if s.exists()] == []
    assert not (site_packages(env) / "pip").exists()


def test_site_packages_holds_what_the_default_seeder_installs(env, tmp_path):
    reference = tmp_path / "reference"
    # virtualenv's default seeder, whatever the user's own configuration says (it may choose holoclone)
    empty = tmp_path / "virtualenv.ini"
    empty.write_text("")
    made = virtualenv(reference, seeder=None, extra_env={"VIRTUALENV_CONFIG_FILE": str(empty)})
    assert "seeder FromAppData" in made.stdout, made.stdout
    assert "holoclone" not in pyvenv_cfg(reference)  # the key, not a path that happens to hold the word
    # the default seeder ships no bytecode and leaves a "<dist>.virtualenv" marker; RECORD and INSTALLER are per env
    def contents(site: Path) -> dict[str, bytes]:
        return {
            str(p.relative_to(site)): p.read_bytes()
            for p in regular_files(site)
            if p.suffix not in (".pyc", ".virtualenv") and p.name not in ("RECORD", "INSTALLER")
        }

    ours, theirs = contents(site_packages(env)), contents(site_packages(reference))
    assert sorted(ours) == sorted(theirs)
    assert [name for name in ours if ours[name] != theirs[name]] == []


def _hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def test_record_lists_every_installed_file(env):
    site = site_packages(env)
    dist_infos = sorted(site.glob("*.dist-info"))
    assert [d.name.split("-")[0] for d in dist_infos] == ["pip", "setuptools"]
    every_listed: set[str] = set()
    for dist_info in dist_infos:
        with open(dist_info / "RECORD", newline="") as handle:
            rows = [row for row in csv.reader(handle) if row]
        assert len(rows) > 100, dist_info.name
        listed = {}
        for path, digest, size in rows:
            listed[os.path.normpath(site / path)] = (digest, size)
        every_listed |= set(listed)
        record = str(dist_info / "RECORD")
        assert listed.pop(record) == ("", "")
        # every other row names a file that exists with exactly that hash and size
        wrong = []
        for path, (digest, size) in listed.items():
            data = Path(path).read_bytes()
            if (digest, size) != (_hash(data), str(len(data))):
                wrong.append((path, digest, size))
        assert wrong == []
        # and every file of the distribution on disk is listed: everything under its top-level names
        tops = {Path(path).relative_to(site).parts[0] for path in listed if path.startswith(f"{site}/")}
        assert dist_info.name in tops and len(tops) > 1
        on_disk = {os.path.normpath(p) for top in tops for p in
                   ([site / top] if (site / top).is_file() else regular_files(site / top))}
        assert on_disk - set(listed) - {record} == set()
    # no file in site-packages or among pip's scripts belongs to no distribution
    unlisted = {os.path.normpath(p) for p in regular_files(site)} - every_listed
    assert unlisted == set()
    assert {str(env / "bin" / name) for name in ("pip", "pip3", f"pip{PY}", f"pip-{PY}")} <= every_listed


@pytest.mark.parametrize("awkward", ["with space", "it's", 'say "hi"', "back\\slash"])
def test_console_scripts_work_at_awkward_paths(warm, awkward):
    env = warm / f"{awkward}-{uuid.uuid4().hex[:6]}" / "env"
    env.parent.mkdir()
    virtualenv(env, store=warm / "store")
    for name in ("pip", "pip3", f"pip{PY}"):
        script = env / "bin" / name
        assert os.access(script, os.X_OK), name
        out = run_in(env, name, "--version").stdout
        assert f"from {site_packages(env)}/pip " in out, out
