"""What a new user meets in the first hour: the options in --help, bad input stopped early and quietly,
virtualenv's own report at default verbosity, and the store commands users know from pip, uv and pnpm."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import catalogs, holoclone, isolated_environ, output, run_in, virtualenv

pytestmark = pytest.mark.slow


def test_help_lists_every_holoclone_option_with_its_help():
    result = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-m", "virtualenv", "--seeder",
                             "holoclone", "--help"], capture_output=True, text=True, env=isolated_environ())
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # argparse wraps the help texts
    for option, words in [("--holoclone-strategy NAME", "how files get into the env"),
                          ("--holoclone-store DIR", "store directory"),
                          ("--holoclone-strict", "fail instead of falling back"),
                          ("--holoclone-requirements FILE", "also materialize the packages"),
                          ("--holoclone-refresh", "resolve --holoclone-requirements"),
                          ("--holoclone-lock-timeout SECONDS", "give up waiting")]:
        assert f"{option} {words}" in text or (option in text and words in text), option
    assert "snapshot" in text and "DeprecationWarning" not in result.stderr


def test_a_misspelt_strategy_stops_before_anything_is_made_with_one_line(tmp_path):
    env = tmp_path / "env"
    result = virtualenv(env, "--holoclone-strategy", "Reflnk", store=tmp_path / "store", check=False)
    assert result.returncode == 2
    assert not env.exists()
    lines = [line for line in output(result).splitlines() if line.strip()]
    assert lines == [
        "holoclone: error: unknown holoclone strategy 'Reflnk' (from --holoclone-strategy). Did you mean "
        "'reflink'? Valid strategies: smart, reflink, hardlink, copy, snapshot."
    ], lines  # the name as typed, a suggestion, and no 'SystemExit: 2' after it


def test_default_verbosity_prints_virtualenv_report_with_the_summary_in_the_seeder_line(tmp_path):
    result = virtualenv(tmp_path / "env", store=tmp_path / "store")
    lines = output(result).splitlines()
    assert lines[0].startswith("created virtual environment ")
    assert [line.split()[0] for line in lines[1:]] == ["creator", "seeder", "added", "activators"], lines
    seeder = lines[2]
    assert seeder.lstrip().startswith("seeder HoloCloneSeeder(") and ") seeded pip " in seeder
    assert " files (" in seeder and " written per env) in " in seeder and str(tmp_path / "store") in seeder
    assert not any(line.startswith("holoclone:") for line in lines)


def test_store_remove_path_and_info_counts(tmp_path):
    store = tmp_path / "store"
    env = tmp_path / "env"
    virtualenv(env, store=store)
    path = holoclone("store", "path", store=store)
    assert path.returncode == 0 and path.stdout.strip() == str(store)
    info = json.loads(holoclone("store", "info", "--json", store=store).stdout)
    assert info["wheels"] == 0 and info["templates"] == [] and len(info["catalogs"]) == len(catalogs(store))

    pip_catalogs = [c for c in catalogs(store) if c.name == "pip"]
    removed = holoclone("store", "remove", "pip", store=store)
    assert removed.returncode == 0, removed.stderr
    assert f"removed {len(pip_catalogs)} catalog" in removed.stdout
    assert not [c for c in catalogs(store) if c.name == "pip"] and [c for c in catalogs(store) if c.name == "setuptools"]
    # The environment made from it keeps working: its files are its own.
    assert run_in(env, "pip", "--version").returncode == 0
    unknown = holoclone("store", "remove", "no-such-dist", store=store)
    assert unknown.returncode == 2 and "no catalog" in unknown.stderr and "Traceback" not in unknown.stderr
