"""The ``holoclone`` command on a store made in place: pipes, stdout outputs, confirmations, settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from holoclone_venv.store import Store

OBJECTS = 1500


def _run(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUALENV_", "RCC_HOLOTREE"))}
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "holoclone_venv", *args], capture_output=True, env=environ, **kwargs)


@pytest.fixture
def store_dir(tmp_path) -> Path:
    made = Store(tmp_path / "store")
    made.check(create=True)
    for n in range(OBJECTS):  # more manifest than a pipe buffers (64 KiB)
        made.put_bytes(f"object {n}\n".encode())
    return made.root


@pytest.mark.parametrize("command", [["store", "info"], ["store", "manifest", "-o", "-"], ["doctor"]])
def test_a_closed_pipe_ends_quietly(store_dir, tmp_path, command):
    # 'holoclone store info | head -1': the reader is gone before the command writes.
    process = subprocess.Popen([sys.executable, "-m", "holoclone_venv", "--store", str(store_dir), *command],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    process.stdout.close()
    stderr = process.stderr.read().decode()
    process.wait(timeout=60)
    assert stderr == "", stderr  # quietly: no traceback, no message
    assert process.returncode in (0, 1)  # doctor says 1 when it finds problems (here: not the default seeder)


def test_manifest_to_stdout_is_the_manifest_not_a_file_named_dash(store_dir, tmp_path):
    result = _run("--store", str(store_dir), "store", "manifest", "-o", "-", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["kind"] == "holoclone-manifest" and len(document["objects"]) == OBJECTS
    assert not (tmp_path / "-").exists()


def test_store_path_follows_virtualenv_ini(tmp_path):
    ini = tmp_path / "virtualenv.ini"
    ini.write_text(f"[virtualenv]\nholoclone_store = {tmp_path / 'from-ini'}\n")
    result = _run("store", "path", env={"VIRTUALENV_CONFIG_FILE": str(ini)})
    assert result.stdout.decode().strip() == str(tmp_path / "from-ini")
    flagged = _run("--store", str(tmp_path / "flag"), "store", "path", env={"VIRTUALENV_CONFIG_FILE": str(ini)})
    assert flagged.stdout.decode().strip() == str(tmp_path / "flag")


def test_info_acts_on_the_store_virtualenv_ini_names(store_dir, tmp_path):
    ini = tmp_path / "virtualenv.ini"
    ini.write_text(f"[virtualenv]\nholoclone_store = {store_dir}\n")
    result = _run("store", "info", "--json", env={"VIRTUALENV_CONFIG_FILE": str(ini)})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["store"] == str(store_dir) and json.loads(result.stdout)["objects"] == OBJECTS


def test_clean_needs_a_confirmation_then_empties_the_store(store_dir):
    refused = _run("--store", str(store_dir), "store", "clean")
    assert refused.returncode == 2 and b"--yes" in refused.stderr
    assert any(Store(store_dir).iter_objects())
    Store(store_dir).write_install_plan("ab" * 32, {"created": 1.0, "pinned": True, "items": []})
    done = _run("--store", str(store_dir), "store", "clean", "--yes")
    assert done.returncode == 0, done.stderr
    assert not any(Store(store_dir).iter_objects()) and (store_dir / "LAYOUT").exists()
    assert not any(Store(store_dir).iter_install_plans())


def test_gc_refuses_a_negative_age_and_says_what_it_kept(store_dir):
    bad = _run("--store", str(store_dir), "store", "gc", "--older-than", "-1")
    assert bad.returncode == 2 and b"--older-than" in bad.stderr and b"Traceback" not in bad.stderr
    dry = _run("--store", str(store_dir), "store", "gc", "--dry-run", "--older-than", "0")
    assert dry.returncode == 0 and f"would remove 0 catalogs, {OBJECTS:,} objects".encode() in dry.stdout, dry.stdout


def test_keygen_without_the_remote_extra_says_what_to_install(tmp_path):
    # ``cryptography`` hidden as if the extra were not installed: one sentence naming the extra, no traceback.
    code = ("import sys; sys.modules['cryptography'] = None; from holoclone_venv.command.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    result = subprocess.run([sys.executable, "-c", code, "store", "keygen", "ci", "-o", str(tmp_path / "key")],
                            capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert 'pip install "holoclone-venv[remote]"' in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "key").exists()


def test_pulling_everything_from_a_url_that_is_no_remote_is_an_error_not_zero_catalogs(tmp_path, store_dir):
    result = _run("--store", str(store_dir), "store", "pull", (tmp_path / "nowhere").as_uri(), "--all", text=True)
    assert result.returncode == 2 and "is not a holoclone remote" in result.stderr, result.stderr


def test_info_and_list_on_a_store_not_created_yet_report_it_empty(tmp_path):
    missing = tmp_path / "not-yet"
    info = _run("--store", str(missing), "store", "info")
    assert info.returncode == 0 and b"not created yet" in info.stdout and info.stderr == b"", info.stderr
    data = json.loads(_run("--store", str(missing), "store", "info", "--json").stdout)
    assert (data["store"], data["objects"], data["catalogs"], data["environments"]) == (str(missing), 0, [], [])
    listed = _run("--store", str(missing), "store", "list")
    assert listed.returncode == 0 and listed.stdout.decode().strip() == f"no catalogs in {missing}"
    assert json.loads(_run("--store", str(missing), "store", "list", "--json").stdout) == []
    assert not missing.exists()  # looking creates nothing
    assert _run("--store", str(missing), "store", "verify").returncode == 2  # a check of nothing is a wrong path


def test_gc_says_first_what_it_spares_and_prune_is_the_same_command(store_dir):
    gc = _run("--store", str(store_dir), "store", "gc", "--dry-run")
    prune = _run("--store", str(store_dir), "store", "prune", "--dry-run")
    assert gc.returncode == prune.returncode == 0 and gc.stdout == prune.stdout, prune.stderr
    first = gc.stdout.decode().splitlines()[0]
    assert first.startswith("keeping everything younger than an hour") and "--older-than SECONDS" in first
    any_age = _run("--store", str(store_dir), "store", "gc", "--dry-run", "--older-than", "0")
    assert any_age.stdout.decode().splitlines()[0].endswith("of any age (--older-than 0)")


@pytest.mark.parametrize("args, meant", [(["store", "prnue"], "prune"), (["stor", "info"], "store"),
                                         (["store", "lst"], "list")])
def test_a_mistyped_command_gets_a_did_you_mean(tmp_path, args, meant):
    result = _run("--store", str(tmp_path), *args)
    assert result.returncode == 2
    assert result.stderr.decode().splitlines()[-1].endswith(f"did you mean '{meant}'?"), result.stderr


def test_the_store_option_help_names_the_real_default_store(tmp_path):
    result = _run("store", "info", "--help", env={"XDG_CACHE_HOME": str(tmp_path / "cache"), "COLUMNS": "300"})
    text = " ".join(result.stdout.decode().split())
    assert result.returncode == 0 and f"else {tmp_path / 'cache' / 'holoclone' / 'store'})" in text, text


def test_list_names_a_catalog_it_cannot_read_and_what_repairs_it(store_dir):
    opened = Store(store_dir)
    opened.catalogs.mkdir(parents=True, exist_ok=True)
    key = "ab" * 32 + "-cpython-311"
    opened.catalog_path(key).write_text("not a catalog")
    listed = _run("--store", str(store_dir), "store", "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"BROKEN {key}: ") and "store verify --repair" in lines[0]
    data = json.loads(_run("--store", str(store_dir), "store", "list", "--json").stdout)
    assert [row["key"] for row in data] == [key] and data[0]["error"]
