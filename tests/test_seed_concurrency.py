"""Environments created at the same time, or again over an existing one, come out whole."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import catalogs, isolated_environ, run_in, site_packages, virtualenv, virtualenv_command
from helpers import bundled_version as bundled

from holoclone_venv.platforms.linux import shares_extents
from holoclone_venv.store import Store

OFFLINE = {"PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": ""}




def files_under(root: Path) -> set[str]:
    return {str(Path(d, n).relative_to(root)) for d, _, names in os.walk(root) for n in names}


def dist_infos(env: Path) -> list[str]:
    return sorted(p.name for p in site_packages(env).glob("*.dist-info"))


def test_two_envs_created_in_parallel_from_a_cold_store_both_work(xfs, unique):
    store_dir = xfs / f"{unique}-store"
    envs = [xfs / f"{unique}-{n}" for n in range(2)]
    procs = [
        subprocess.Popen(virtualenv_command(env, store=store_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, env=isolated_environ())
        for env in envs
    ]
    outputs = [proc.communicate(timeout=600)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs

    found = catalogs(store_dir)
    assert sorted(c.name for c in found) == ["pip", "setuptools"]  # each wheel imported once
    assert all(Store(store_dir).check_objects(c) == [] for c in found)
    assert list((store_dir / "tmp").iterdir()) == []  # no staging left behind
    for env in envs:
        assert run_in(env, "pip", "--version").stdout.startswith(f"pip {bundled('pip')} from {site_packages(env)}")
        assert "No broken requirements found." in run_in(env, "pip", "check").stdout
        assert shares_extents(str(site_packages(env) / "pip" / "__init__.py"))
    assert files_under(site_packages(envs[0])) == files_under(site_packages(envs[1]))


@pytest.fixture(scope="module")
def store_dir(xfs, warm_store) -> Path:
    """A warm store on XFS of this module's own: a test imports an older pip into it."""
    return warm_store(xfs, fresh=True)


def test_seeding_the_same_env_twice_gives_one_clean_install(store_dir, unique):
    env = store_dir.parent / unique
    virtualenv(env, store=store_dir)
    first = files_under(site_packages(env))
    virtualenv(env, store=store_dir)
    assert files_under(site_packages(env)) == first
    assert dist_infos(env) == [f"pip-{bundled('pip')}.dist-info", f"setuptools-{bundled('setuptools')}.dist-info"]
    assert "No broken requirements found." in run_in(env, "pip", "check").stdout
    assert run_in(env, "pip3", "--version").returncode == 0


def test_seeding_over_an_older_pip_replaces_it_without_leftovers(store_dir, unique, tmp_path):
    from virtualenv.seed.wheels.embed import BUNDLE_FOLDER

    older = next(p for p in sorted(BUNDLE_FOLDER.glob("pip-*.whl")) if p.name.split("-")[1] != bundled("pip"))
    search = tmp_path / "wheels"
    search.mkdir()
    shutil.copy(older, search)
    env = store_dir.parent / unique
    virtualenv(env, "--no-download", f"--extra-search-dir={search}", "--pip", older.name.split("-")[1],
               store=store_dir, extra_env=OFFLINE)
    assert f"pip-{older.name.split('-')[1]}.dist-info" in dist_infos(env)

    virtualenv(env, store=store_dir, extra_env=OFFLINE)
    assert dist_infos(env) == [f"pip-{bundled('pip')}.dist-info", f"setuptools-{bundled('setuptools')}.dist-info"]
    new = next(c for c in catalogs(store_dir) if c.name == "pip" and c.version == bundled("pip"))
    expected = {e.path for e in new.entries if e.path.startswith("pip/")}
    actual = {f"pip/{p}" for p in files_under(site_packages(env) / "pip")}
    assert sorted(actual - expected) == []  # nothing of the older pip is left
    assert sorted(expected - actual) == []
    assert run_in(env, "pip", "--version").stdout.startswith(f"pip {bundled('pip')} ")
