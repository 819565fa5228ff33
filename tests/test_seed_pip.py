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
import sys
import uuid
import zipfile
from pathlib import Path

import pytest
from conftest import catalogs, regular_files, run_in, site_packages, virtualenv

from holoclone_venv.catalog import Catalog

PY = f"{sys.version_info[0]}.{sys.version_info[1]}"



def catalog_of(store: Path, name: str) -> Catalog:
    """The catalog the environments of this store were seeded from, for distribution ``name``."""
    found = [c for c in catalogs(store) if c.name == name]
    assert len(found) == 1, f"expected one catalog of {name}, found {len(found)}"
    return found[0]


def bundled_version(distribution: str) -> str:
    from virtualenv.seed.wheels.embed import BUNDLE_SUPPORT

    return BUNDLE_SUPPORT[PY][distribution].split("-")[1]


@pytest.fixture(scope="module")
def warm(xfs) -> Path:
    """A directory on XFS with a store already holding pip and setuptools."""
    base = xfs / f"pip-{uuid.uuid4().hex[:8]}"
    base.mkdir()
    virtualenv(base / "first", store=base / "store")
    return base


@pytest.fixture
def env(warm, unique) -> Path:
    """A fresh environment of its own, seeded from the warm store."""
    path = warm / unique
    virtualenv(path, store=warm / "store")
    return path


def build_wheel(directory: Path, name: str = "hcdemo", version: str = "1.0") -> Path:
    """A tiny pure-Python wheel with a console script, RECORD included."""
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"def main():\n    print('{name} {version} works')\n".encode(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": f"[console_scripts]\n{name} = {name}:main\n".encode(),
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}\n")
    record.append(f"{info}/RECORD,,\n")
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
        archive.writestr(f"{info}/RECORD", "".join(record))
    return wheel


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
    wheel = build_wheel(tmp_path)
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
    subprocess.run([sys.executable, "-m", "virtualenv", str(reference)], check=True, capture_output=True)
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


def test_record_lists_every_installed_file(env):
    site = site_packages(env)
    for dist_info in site.glob("*.dist-info"):
        with open(dist_info / "RECORD", newline="") as handle:
            listed = {os.path.normpath(site / row[0]) for row in csv.reader(handle) if row}
        on_disk = {os.path.normpath(p) for p in regular_files(site) if str(p).startswith(str(site / dist_info.name.split("-")[0]))}
        assert str(dist_info / "RECORD") in listed
        assert on_disk <= listed, sorted(on_disk - listed)[:5]


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
