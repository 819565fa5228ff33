"""What a new user meets in the first hour: the options in --help, bad input stopped early and quietly,
virtualenv's own report at default verbosity, and the store commands users know from pip, uv and pnpm."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from helpers import (catalogs, holoclone, isolated_environ, output, run_in, summary_line, virtualenv,
                     virtualenv_command)
from wheels import write_wheel

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


def test_help_shows_the_real_defaults_not_none(tmp_path):
    environ = isolated_environ({"XDG_CACHE_HOME": str(tmp_path / "cache"), "COLUMNS": "400"})
    result = subprocess.run([sys.executable, "-m", "virtualenv", "--seeder", "holoclone", "--help"],
                            capture_output=True, text=True, env=environ)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip().startswith("--holoclone-")}
    assert lines["--holoclone-strategy"].endswith("(default: smart)"), lines["--holoclone-strategy"]
    assert lines["--holoclone-store"].endswith(f"(default: {tmp_path / 'cache' / 'holoclone' / 'store'})")
    assert not [line for line in lines.values() if "default: None" in line], lines


@pytest.mark.parametrize("args, extra_env, words", [
    ((), {"VIRTUALENV_HOLOCLONE_LOCK_TIMEOUT": "abc"}, "VIRTUALENV_HOLOCLONE_LOCK_TIMEOUT='abc' is not a number"),
    (("--holoclone-store", ""), {}, "the holoclone store path given is empty"),
])
def test_a_setting_virtualenv_would_drop_stops_it_before_anything_is_made(tmp_path, args, extra_env, words):
    env = tmp_path / "env"
    result = virtualenv(env, *args, check=False, extra_env={"XDG_CACHE_HOME": str(tmp_path / "cache"), **extra_env})
    assert result.returncode == 2, output(result)
    assert not env.exists() and not (tmp_path / "cache" / "holoclone").exists()
    mine = [line for line in output(result).splitlines() if line.startswith("holoclone:")]
    assert len(mine) == 1 and words in mine[0], output(result)


def test_a_requirement_pip_cannot_parse_stops_virtualenv_before_anything_is_made(tmp_path):
    env = tmp_path / "env"
    result = virtualenv(env, "--holoclone-package", "numpy>=", store=tmp_path / "store", check=False)
    assert result.returncode == 2 and not env.exists() and not (tmp_path / "store").exists(), output(result)
    lines = [line for line in output(result).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("holoclone: error: 'numpy>=' in --holoclone-package is not a "
                                                   "valid requirement ("), lines


def test_a_name_the_index_lacks_leaves_no_half_made_environment_and_the_advice_fits(tmp_path):
    wheelhouse = tmp_path / "wheelhouse"  # the only index: pip runs offline (--no-index)
    wheelhouse.mkdir()
    env = tmp_path / "env"
    result = virtualenv(env, "--extra-search-dir", str(wheelhouse), "--holoclone-package", "hc-no-such-dist",
                        store=tmp_path / "store", check=False)
    assert result.returncode == 2, output(result)
    assert not env.exists()  # not an environment with Python but without what was asked for
    lines = [line for line in output(result).splitlines() if line.startswith("holoclone:")]
    assert len(lines) == 1, output(result)
    assert "No matching distribution found for hc-no-such-dist" in lines[0]
    assert "Check that 'hc-no-such-dist' is spelt as on the index" in lines[0] and "Nothing was created" in lines[0]
    assert "Traceback" not in output(result) and "SeedError" not in output(result)


def test_ctrl_c_while_seeding_prints_one_sentence(tmp_path):
    # An index that accepts the connection and never answers: pip waits there, deterministically.
    with socket.socket() as index:
        index.bind(("127.0.0.1", 0))
        index.listen(8)
        index.settimeout(120)
        url = f"http://127.0.0.1:{index.getsockname()[1]}/simple"
        environ = isolated_environ({"PIP_INDEX_URL": url, "PIP_CONFIG_FILE": os.devnull, "PIP_TIMEOUT": "300"})
        env = tmp_path / "env"
        process = subprocess.Popen(virtualenv_command(env, "--holoclone-package", "hcwaits", store=tmp_path / "store"),
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environ)
        connection, _ = index.accept()  # pip asked: the seeding is under way
        process.send_signal(signal.SIGINT)
        text, _ = process.communicate(timeout=120)
        connection.close()
    assert process.returncode == 130, text
    assert "KeyboardInterrupt" not in text and "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.startswith("holoclone:")]
    assert lines == [f"holoclone: interrupted while seeding {env}, which is not complete; run the same command "
                     "again to finish it."], text


def test_verbose_output_names_what_is_resolved_not_pips_arguments_and_counts_many_wheels(tmp_path):
    wheelhouse = tmp_path / "wheelhouse"
    for name in ("hcone", "hctwo", "hcthree", "hcfour"):
        write_wheel(wheelhouse, name, "1.0", {f"{name}/__init__.py": b""})
    args = ["--extra-search-dir", str(wheelhouse), "--no-setuptools", "-v"]
    for name in ("hcone", "hctwo", "hcthree", "hcfour"):
        args += ["--holoclone-package", name]
    result = virtualenv(tmp_path / "env", *args, store=tmp_path / "store")
    text = output(result)
    assert "holoclone: resolving hcone, hctwo, hcthree, hcfour with pip" in text, text
    assert "--only-binary" not in text and "--dest" not in text, text
    summary = next(line for line in text.splitlines() if line.strip().startswith("seeder HoloCloneSeeder("))
    assert "(imported 5 wheels)" in summary and ".whl" not in summary, summary  # pip and the four


def test_where_files_cannot_be_cloned_the_default_output_says_why_in_a_few_words(ext4, unique):
    store = ext4 / unique / "store"
    quiet = virtualenv(ext4 / unique / "quiet", "--no-setuptools", store=store)
    lines = output(quiet).splitlines()
    seeder = next(line for line in lines if line.strip().startswith("seeder HoloCloneSeeder("))
    assert "(0 reflinked" in seeder and seeder.endswith("; ext4 cannot clone files, so none were reflinked"), seeder
    assert not any(line.startswith("holoclone:") for line in lines), lines  # no more than that at default verbosity
    verbose = virtualenv(ext4 / unique / "verbose", "--no-setuptools", "-v", store=store)
    assert "reflink is not available for " in output(verbose) and "Operation not supported" in output(verbose)


def test_store_list_names_each_catalog_by_name_and_version(tmp_path):
    store = tmp_path / "store"
    virtualenv(tmp_path / "env", store=store)
    listed = holoclone("store", "list", store=store)
    assert listed.returncode == 0, listed.stderr
    expected = sorted(f"{c.name} {c.version} ({c.tag})" for c in catalogs(store))
    assert listed.stdout.splitlines() == expected and len(expected) >= 2
    data = json.loads(holoclone("store", "list", "--json", store=store).stdout)
    assert sorted((row["name"], row["version"]) for row in data) == sorted((c.name, c.version) for c in catalogs(store))
