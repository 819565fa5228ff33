"""virtualenv's own seed options keep their meaning with ``--seeder holoclone``.

Each test creates an environment with one option and asserts what ended up in
it.  A private ``--app-data`` per test keeps virtualenv's wheel cache out of the
picture where the option is about acquiring wheels.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from helpers import PY, pyvenv_cfg, run_in, site_packages, virtualenv
from helpers import bundled_version as bundled

from holoclone_venv.store import Store

SETUPTOOLS_FILES = ("setuptools", "_distutils_hack", "distutils-precedence.pth")
# no index, no machine-wide pip configuration: a download attempt fails instead of reaching a server
OFFLINE = {"PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": ""}


def installed(env: Path) -> dict[str, str]:
    """distribution -> version, from the ``.dist-info`` directories present."""
    found = {}
    for info in site_packages(env).glob("*.dist-info"):
        name, version = info.name[: -len(".dist-info")].rsplit("-", 1)
        found[name] = version
    return found


def pip_scripts(env: Path) -> list[str]:
    return sorted(p.name for p in (env / "bin").iterdir() if p.name.startswith("pip"))


@pytest.fixture(scope="module")
def store_dir(xfs, warm_store) -> Path:
    """A warm store on XFS of this module's own: some tests import other pip versions into it."""
    return warm_store(xfs, fresh=True)


@pytest.fixture
def env(store_dir, unique) -> Path:
    return store_dir.parent / unique


def assert_no_setuptools(env: Path) -> None:
    assert [n for n in SETUPTOOLS_FILES if (site_packages(env) / n).exists()] == []
    assert "setuptools" not in installed(env)


def assert_working_pip(env: Path, version: str) -> None:
    assert installed(env)["pip"] == version
    assert pip_scripts(env) == sorted(["pip", "pip3", f"pip-{PY}", f"pip{PY}"])
    assert run_in(env, "pip", "--version").stdout.startswith(f"pip {version} from {site_packages(env)}")


def test_default_seeds_bundled_pip_and_setuptools(env, store_dir):
    virtualenv(env, store=store_dir)
    assert installed(env) == {"pip": bundled("pip"), "setuptools": bundled("setuptools")}
    assert_working_pip(env, bundled("pip"))
    cfg = pyvenv_cfg(env)
    assert cfg["holoclone_store"] == str(store_dir)
    assert cfg["holoclone"]


def test_no_pip(env, store_dir):
    virtualenv(env, "--no-pip", store=store_dir)
    assert installed(env) == {"setuptools": bundled("setuptools")}
    assert not (site_packages(env) / "pip").exists()
    assert pip_scripts(env) == []
    assert "holoclone" in pyvenv_cfg(env)
    assert run_in(env, "python", "-c", "import setuptools").returncode == 0


@pytest.mark.parametrize("option", [["--no-setuptools"], ["--setuptools", "none"]], ids=" ".join)
def test_without_setuptools(env, store_dir, option):
    virtualenv(env, *option, store=store_dir)
    assert_no_setuptools(env)
    assert installed(env) == {"pip": bundled("pip")}
    assert_working_pip(env, bundled("pip"))


@pytest.mark.parametrize("version", ["embed", bundled("pip")])
def test_pip_embed_or_exact_bundled_version(env, store_dir, version):
    virtualenv(env, "--pip", version, store=store_dir, extra_env=OFFLINE)
    assert_working_pip(env, bundled("pip"))
    assert installed(env)["setuptools"] == bundled("setuptools")


def test_no_seed_installs_nothing_and_leaves_no_trace(env, store_dir):
    refs_before = sorted(p.name for p in Store(store_dir).refs.iterdir())
    virtualenv(env, "--no-seed", store=store_dir)
    assert installed(env) == {}
    assert pip_scripts(env) == []
    assert [k for k in pyvenv_cfg(env) if k.startswith("holoclone")] == []
    assert sorted(p.name for p in Store(store_dir).refs.iterdir()) == refs_before


def test_extra_search_dir_provides_a_version_nothing_else_has(env, store_dir, tmp_path):
    from virtualenv.seed.wheels.embed import BUNDLE_FOLDER

    other = next(p for p in sorted(BUNDLE_FOLDER.glob("pip-*.whl")) if p.name.split("-")[1] != bundled("pip"))
    version = other.name.split("-")[1]
    search = tmp_path / "wheels"
    search.mkdir()
    shutil.copy(other, search)

    # without the folder, nothing offers that version: a clear failure, no pip installed
    missing = tmp_path / "missing"
    failed = virtualenv(missing, "--app-data", str(tmp_path / "app-data-1"), "--no-download", "--pip", version,
                        store=store_dir, extra_env=OFFLINE, check=False)
    assert failed.returncode != 0
    assert f"no wheel found for pip {version}" in failed.stderr + failed.stdout
    assert "--extra-search-dir" in failed.stderr + failed.stdout
    assert "pip" not in installed(missing)

    virtualenv(env, "--app-data", str(tmp_path / "app-data-2"), "--no-download", f"--extra-search-dir={search}",
               "--pip", version, store=store_dir, extra_env=OFFLINE)
    assert_working_pip(env, version)


def test_no_download_seeds_the_bundled_wheels_without_downloading(env, store_dir, tmp_path):
    app_data = tmp_path / "app-data"
    virtualenv(env, "--app-data", str(app_data), "--no-download", "--no-periodic-update", store=store_dir,
               extra_env=OFFLINE)
    assert installed(env) == {"pip": bundled("pip"), "setuptools": bundled("setuptools")}
    assert_working_pip(env, bundled("pip"))
    assert list(app_data.rglob("download-*")) == []


def test_no_download_refuses_a_version_only_a_download_would_find(env, store_dir, tmp_path):
    from virtualenv.seed.wheels.embed import BUNDLE_FOLDER

    other = next(p for p in sorted(BUNDLE_FOLDER.glob("pip-*.whl")) if p.name.split("-")[1] != bundled("pip"))
    version = other.name.split("-")[1]
    links = tmp_path / "links"  # reachable only by 'pip download', through pip's own find-links setting
    links.mkdir()
    shutil.copy(other, links)
    empty = tmp_path / "empty"
    empty.mkdir()
    reachable = {**OFFLINE, "PIP_FIND_LINKS": str(links)}
    args = (f"--extra-search-dir={empty}", "--pip", version, "--no-setuptools")

    refused = tmp_path / "refused"
    failed = virtualenv(refused, "--app-data", str(tmp_path / "app-data-1"), "--no-download", *args, store=store_dir,
                        extra_env=reachable, check=False)
    out = failed.stdout + failed.stderr
    assert failed.returncode != 0, out
    assert f"no wheel found for pip {version}" in out and "allow --download" in out
    assert "pip download" not in out  # it did not even try
    assert "pip" not in installed(refused)

    # the same command allowed to download finds the wheel: only --no-download made the difference
    virtualenv(env, "--app-data", str(tmp_path / "app-data-2"), "--download", *args, store=store_dir, extra_env=reachable)
    assert_working_pip(env, version)


def _update_logs(app_data: Path) -> list[Path]:
    """virtualenv's periodic-update logs: one ``<distribution>.json`` per seed wheel, somewhere in app data.

    Only the file name is relied on (virtualenv names each log after its distribution); the
    folders above it are virtualenv's private layout and have moved between releases.
    """
    return sorted(p for p in app_data.rglob("*.json") if p.stem in ("pip", "setuptools", "wheel"))


def test_no_periodic_update_records_no_update_check(env, store_dir, tmp_path):
    app_data = tmp_path / "app-data"
    virtualenv(env, "--app-data", str(app_data), "--no-periodic-update", store=store_dir, extra_env=OFFLINE)
    assert installed(env) == {"pip": bundled("pip"), "setuptools": bundled("setuptools")}
    assert_working_pip(env, bundled("pip"))
    # the periodic update keeps a per-distribution log in app data; none may be written
    # (other caches there, such as virtualenv's interpreter information, are not update checks)
    assert _update_logs(app_data) == []

    # the counterpart: without the option virtualenv does record one, so the check above can fail
    with_update = tmp_path / "app-data-update"
    virtualenv(store_dir.parent / f"{env.name}-update", "--app-data", str(with_update), store=store_dir, extra_env=OFFLINE)
    assert "pip" in [p.stem for p in _update_logs(with_update)]
