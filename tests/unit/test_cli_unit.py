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
def store(tmp_path) -> Path:
    made = Store(tmp_path / "store")
    made.check(create=True)
    for n in range(OBJECTS):  # more manifest than a pipe buffers (64 KiB)
        made.put_bytes(f"object {n}\n".encode())
    return made.root


@pytest.mark.parametrize("command", [["store", "info"], ["store", "manifest", "-o", "-"], ["doctor"]])
def test_a_closed_pipe_ends_quietly(store, tmp_path, command):
    # 'holoclone store info | head -1': the reader is gone before the command writes.
    process = subprocess.Popen([sys.executable, "-m", "holoclone_venv", "--store", str(store), *command],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    process.stdout.close()
    stderr = process.stderr.read().decode()
    process.wait(timeout=60)
    assert stderr == "", stderr  # quietly: no traceback, no message
    assert process.returncode in (0, 1)  # doctor says 1 when it finds problems (here: not the default seeder)


def test_manifest_to_stdout_is_the_manifest_not_a_file_named_dash(store, tmp_path):
    result = _run("--store", str(store), "store", "manifest", "-o", "-", cwd=tmp_path)
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


def test_info_acts_on_the_store_virtualenv_ini_names(store, tmp_path):
    ini = tmp_path / "virtualenv.ini"
    ini.write_text(f"[virtualenv]\nholoclone_store = {store}\n")
    result = _run("store", "info", "--json", env={"VIRTUALENV_CONFIG_FILE": str(ini)})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["store"] == str(store) and json.loads(result.stdout)["objects"] == OBJECTS


def test_clean_needs_a_confirmation_then_empties_the_store(store):
    refused = _run("--store", str(store), "store", "clean")
    assert refused.returncode == 2 and b"--yes" in refused.stderr
    assert any(Store(store).iter_objects())
    Store(store).write_install_plan("ab" * 32, {"created": 1.0, "pinned": True, "items": []})
    done = _run("--store", str(store), "store", "clean", "--yes")
    assert done.returncode == 0, done.stderr
    assert not any(Store(store).iter_objects()) and (store / "LAYOUT").exists()
    assert not any(Store(store).iter_install_plans())


def test_gc_refuses_a_negative_age_and_says_what_it_kept(store):
    bad = _run("--store", str(store), "store", "gc", "--older-than", "-1")
    assert bad.returncode == 2 and b"--older-than" in bad.stderr and b"Traceback" not in bad.stderr
    dry = _run("--store", str(store), "store", "gc", "--dry-run", "--older-than", "0")
    assert dry.returncode == 0 and f"would remove 0 catalogs, {OBJECTS:,} objects".encode() in dry.stdout, dry.stdout


def test_keygen_without_the_remote_extra_says_what_to_install(tmp_path):
    # ``cryptography`` hidden as if the extra were not installed: one sentence naming the extra, no traceback.
    code = ("import sys; sys.modules['cryptography'] = None; from holoclone_venv.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    result = subprocess.run([sys.executable, "-c", code, "store", "keygen", "ci", "-o", str(tmp_path / "key")],
                            capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert 'pip install "holoclone-venv[remote]"' in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "key").exists()


def test_pulling_everything_from_a_url_that_is_no_remote_is_an_error_not_zero_catalogs(tmp_path, store):
    result = _run("--store", str(store), "store", "pull", (tmp_path / "nowhere").as_uri(), "--all", text=True)
    assert result.returncode == 2 and "is not a holoclone remote" in result.stderr, result.stderr
