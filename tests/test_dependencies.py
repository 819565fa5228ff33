"""Whole dependency sets from the store: --holoclone-requirements and --holoclone-package.

The wheels are small but real (see ``build_wheelhouse`` in ``wheels.py``): a pure package
with a dependency, one with ``.data`` scripts, data and headers plus entry
points, and one with a compiled extension module.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import PY, regular_files, run_in, site_packages, virtualenv
from wheels import build_wheelhouse

from holoclone_venv.platforms.linux import extents, shares_extents

#: pip must not reach any index in these tests: everything comes from the wheelhouse.
OFFLINE = {"PIP_INDEX_URL": "http://127.0.0.1:9/", "PIP_EXTRA_INDEX_URL": "", "PIP_FIND_LINKS": "",
           "PIP_CONFIG_FILE": os.devnull, "PIP_RETRIES": "0", "PIP_TIMEOUT": "2"}
PER_ENV = {"RECORD", "INSTALLER", "direct_url.json", "REQUESTED"}


def _inline(path: Path) -> bool:
    """btrfs keeps small files inside its metadata ("inline"): a clone copies those bytes, no extent to share."""
    return any(not extent.located for extent in extents(str(path)))


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory) -> Path:
    """A folder with the three test wheels (the extension compiled once per session)."""
    dest = tmp_path_factory.mktemp("wheelhouse") / "wheels"
    build_wheelhouse(dest)
    return dest


@pytest.fixture
def requirements(tmp_path) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text("hcpure>=1.0  # pulls in hcdata\nhcext==1.0\n")
    return path


def _seed_output(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


def _pycache_snapshot(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("__pycache__/*")}


@pytest.mark.parametrize("fs", ["xfs", "btrfs"])
def test_dependency_set_works_and_shares_extents(fs, request, unique, wheelhouse, requirements):
    root = request.getfixturevalue(fs)
    store, env = root / f"store-{unique}", root / f"env-{unique}"
    result = virtualenv(env, "--extra-search-dir", str(wheelhouse), "--holoclone-requirements", str(requirements),
                        store=store, extra_env=OFFLINE)
    summary = _seed_output(result)
    assert "hcdata 1.0" in summary and "hcext 1.0" in summary and "hcpure 1.0" in summary

    listed = run_in(env, "pip", "list", "--format", "json").stdout
    assert {"hcdata", "hcext", "hcpure", "pip"} <= {d["name"] for d in json.loads(listed)}
    assert "No broken requirements" in run_in(env, "pip", "check").stdout

    # The first import in the new env finds valid bytecode: it writes no .pyc.
    site = site_packages(env)
    before = _pycache_snapshot(site)
    assert any("hcpure" in p for p in before), "the store ships bytecode with the package"
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    out = subprocess.run([str(env / "bin" / "python"), "-c", "import hcpure, hcext, hcdata.cli; "
                          "print(hcpure.shout(), hcext.triple(14))"],
                         capture_output=True, text=True, env=environ, check=True).stdout
    assert out.split() == ["HELLO", "FROM", "HCDATA", "42"]
    assert _pycache_snapshot(site) == before

    # Entry point and the rewritten '#!python' script run with the env's interpreter.
    python = str(env / "bin" / "python")
    # Console, GUI and '.data/scripts' scripts all exist before the uninstall below must remove them.
    for script in ("hcdata-cli", "hcdata-gui", "hcdata-raw"):
        assert os.access(env / "bin" / script, os.X_OK), script
    assert run_in(env, "hcdata-gui").stdout.split() == ["hcdata-cli", python]  # the GUI entry point runs cli.main
    assert run_in(env, "hcdata-cli").stdout.split() == ["hcdata-cli", python]
    assert run_in(env, "hcdata-raw").stdout.split() == ["hcdata-raw", python]
    assert (env / "bin" / "hcdata-raw").read_bytes().startswith(f"#!{python}\n".encode())
    assert (env / "share" / "hcdata" / "notes.txt").read_text() == "data file shipped in .data/data\n"
    assert next(env.glob("include/site/python*/hcdata/hcdata.h")).read_text() == "#define HCDATA 1\n"

    # Every file that came from the store shares its extents with the store.
    materialized = [
        p for p in [*regular_files(site), *regular_files(env / "share"), *regular_files(env / "include")]
        if p.stat().st_size > 0 and p.name not in PER_ENV
    ]
    assert len(materialized) > 500
    inline = [p for p in materialized if _inline(p)]
    assert all(p.stat().st_size <= 4096 for p in inline)
    assert fs == "btrfs" or inline == []
    not_shared = [str(p) for p in materialized if p not in inline and not shares_extents(str(p))]
    assert not_shared == []
    assert (site / "hcext").exists() and all(shares_extents(str(p)) for p in (site / "hcext").glob("*.so"))

    # Uninstalling one package removes exactly its files and leaves the store alone.
    objects_before = sum(1 for _ in regular_files(store / "objects"))
    run_in(env, "pip", "uninstall", "-y", "hcdata")
    assert not (site / "hcdata").exists()
    assert not list(site.glob("hcdata-*.dist-info"))
    for gone in ("hcdata-cli", "hcdata-gui", "hcdata-raw"):
        assert not (env / "bin" / gone).exists()
    assert not (env / "share" / "hcdata" / "notes.txt").exists()
    assert (site / "hcpure" / "__init__.py").exists()
    assert sum(1 for _ in regular_files(store / "objects")) == objects_before
    assert "hcdata" in run_in(env, "pip", "check", check=False).stdout  # hcpure now misses its dependency


def test_second_env_reuses_the_resolution_without_pip(xfs, unique, wheelhouse, requirements):
    store = xfs / f"store-{unique}"
    # First env: pip finds the wheels through the user's own pip configuration.
    first = virtualenv(xfs / f"env1-{unique}", "--holoclone-requirements", str(requirements), store=store,
                       extra_env={**OFFLINE, "PIP_FIND_LINKS": str(wheelhouse), "PIP_NO_INDEX": "1"})
    assert "imported" in _seed_output(first)
    resolutions = list((store / "resolutions").glob("*.json"))
    assert len(resolutions) == 1
    listed = sorted(name for name, _ in json.loads(resolutions[0].read_text())["wheels"])
    assert [n.split("-")[0] for n in listed] == ["hcdata", "hcext", "hcpure"]

    # Second env: no wheelhouse, an index that refuses connections; it must not need pip at all.
    second_env = xfs / f"env2-{unique}"
    second = virtualenv(second_env, "--holoclone-requirements", str(requirements), store=store, extra_env=OFFLINE)
    line = _seed_output(second)
    assert "hcext 1.0" in line and "imported" not in line
    assert run_in(second_env, "python", "-c", "import hcpure, hcext; print(hcext.triple(2))").stdout.strip() == "6"

    # A wheel gone from the store invalidates the cached resolution: pip is asked again and
    # fails here, with one sentence carrying pip's own reason; nothing of the env is seeded.
    shutil.rmtree(next((store / "wheels").glob("*/hcext-*.whl")).parent)
    third = virtualenv(xfs / f"env3-{unique}", "--holoclone-requirements", str(requirements), store=store,
                       check=False, extra_env=OFFLINE)
    assert third.returncode != 0
    output = _seed_output(third)
    assert "pip could not resolve the requested packages to wheels" in output
    assert "No matching distribution found for hc" in output  # pip's own reason, passed on
    assert "Traceback" not in output
    assert list((store / "tmp").iterdir()) == []


def test_missing_requirements_file_is_one_clear_sentence(xfs, unique, tmp_path):
    missing = tmp_path / "nope.txt"
    result = virtualenv(xfs / f"env-{unique}", "--holoclone-requirements", str(missing),
                        store=xfs / f"store-{unique}", check=False, extra_env=OFFLINE)
    assert result.returncode != 0
    output = _seed_output(result)
    assert f"the requirements file {missing} does not exist." in output
    assert "Check the --holoclone-requirements path." in output
    assert "Traceback" not in output


def test_unknown_package_reports_pips_reason(xfs, unique, wheelhouse):
    store = xfs / f"store-{unique}"
    result = virtualenv(xfs / f"env-{unique}", "--extra-search-dir", str(wheelhouse),
                        "--holoclone-package", "hc-does-not-exist>=1", store=store, check=False, extra_env=OFFLINE)
    assert result.returncode != 0
    output = _seed_output(result)
    assert "pip could not resolve the requested packages to wheels:" in output
    assert "No matching distribution found for hc-does-not-exist" in output
    assert not list((store / "resolutions").glob("*.json")) if (store / "resolutions").exists() else True
    assert list((store / "tmp").iterdir()) == []


def test_option_given_as_package_is_refused(xfs, unique):
    result = virtualenv(xfs / f"env-{unique}", "--holoclone-package=--index-url=http://example.invalid/",
                        store=xfs / f"store-{unique}", check=False, extra_env=OFFLINE)
    assert result.returncode != 0
    assert "--holoclone-package takes a requirement such as 'numpy>=2'" in _seed_output(result)


def test_seed_distribution_in_the_set_is_installed_once(xfs, unique, wheelhouse, tmp_path):
    from virtualenv.seed.wheels.embed import get_embed_wheel

    house = tmp_path / "house"
    shutil.copytree(wheelhouse, house)
    shutil.copy(get_embed_wheel("setuptools", PY).path, house)
    env = xfs / f"env-{unique}"
    virtualenv(env, "--extra-search-dir", str(house), "--holoclone-package", "hcpure", "--holoclone-package",
               "setuptools", store=xfs / f"store-{unique}", extra_env=OFFLINE)
    site = site_packages(env)
    assert len(list(site.glob("setuptools-*.dist-info"))) == 1
    assert "No broken requirements" in run_in(env, "pip", "check").stdout
