"""Launchers and RECORD rows, checked against sh, Python and installer's own record types."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys

import pytest
from installer.records import Hash, RecordEntry, parse_record_file

from holoclone_venv.store.catalog import PLACEHOLDER
from holoclone_venv.materialize.record import hash_of, hash_of_digest, record_bytes
from holoclone_venv.materialize.scripts import render, rewrite_python_shebang, shebang

PROBE = b"\nimport sys\nprint(sys.argv[1:])\n"


def test_a_plain_short_path_is_a_direct_shebang():
    assert shebang("/usr/bin/python3") == b"#!/usr/bin/python3"


@pytest.mark.parametrize("path", ["/opt/my env/bin/python", "/opt/it's/python", '/a"b/python',
                                  "/a\\b/python", "/x/" + "long" * 40 + "/python"])
def test_special_or_long_paths_use_a_sh_trampoline(path):
    line = shebang(path)
    assert line.startswith(b"#!/bin/sh\n")
    assert len(line.split(b"\n")[0]) <= 127


def _run_script(tmp_path, interpreter_dir_name) -> str:
    folder = tmp_path / interpreter_dir_name
    folder.mkdir()
    python = os.path.join(os.fsencode(folder), b"python")
    os.symlink(sys.executable, python)
    script = tmp_path / "launcher"
    script.write_bytes(shebang(os.fsdecode(python)) + PROBE)
    os.chmod(script, 0o755)
    return subprocess.run([str(script), "a b", "c"], capture_output=True, text=True, check=True).stdout.strip()


def test_the_trampoline_runs_an_interpreter_in_a_path_with_spaces_and_quotes(tmp_path):
    assert _run_script(tmp_path, "my env's \"dir\"") == "['a b', 'c']"


def test_the_trampoline_runs_an_interpreter_in_a_non_utf8_path(tmp_path):
    name = os.fsdecode(b"caf\xe9-env")
    assert shebang(os.path.join(str(tmp_path), name, "python")).count(b"printf") == 1
    assert _run_script(tmp_path, name) == "['a b', 'c']"


def test_render_posix_template_gets_the_environment_interpreter():
    template = b"#!" + PLACEHOLDER + b"\nimport sys\nfrom pip import main\n"
    assert render(template, "/env/bin/python") == b"#!/env/bin/python\nimport sys\nfrom pip import main\n"
    spaced = render(template, "/my env/bin/python")
    assert spaced.startswith(b"#!/bin/sh\n") and spaced.endswith(b"\nimport sys\nfrom pip import main\n")


def test_render_windows_launcher_replaces_the_embedded_shebang_once():
    stub = b"MZ\x90\x00launcher-stub\x00"
    template = stub + b"#!" + PLACEHOLDER + b"\r\n" + b"PK\x03\x04zip#!" + PLACEHOLDER
    rendered = render(template, "C:\\env\\Scripts\\python.exe")
    assert rendered.startswith(stub + b"#!C:\\env\\Scripts\\python.exe\r\n")
    assert rendered.count(PLACEHOLDER) == 1


@pytest.mark.parametrize("content, expected", [
    (b"#!python\nprint(1)\n", b"#!/env/bin/python\nprint(1)\n"),
    (b"#!pythonw\nprint(1)\n", b"#!/env/bin/python\nprint(1)\n"),
    (b"#!python -E -s\nprint(1)\n", b"#!/env/bin/python -E -s\nprint(1)\n"),
    (b"#!python", b"#!/env/bin/python"),
])
def test_rewrite_python_shebang_keeps_arguments_and_body(content, expected):
    assert rewrite_python_shebang(content, "/env/bin/python") == expected


def test_rewritten_script_with_a_trampoline_still_runs(tmp_path):
    folder = tmp_path / "with space"
    folder.mkdir()
    os.symlink(sys.executable, folder / "python")
    script = tmp_path / "tool"
    script.write_bytes(rewrite_python_shebang(b"#!python" + PROBE, str(folder / "python")))
    os.chmod(script, 0o755)
    assert subprocess.run([str(script), "x"], capture_output=True, text=True, check=True).stdout.strip() == "['x']"


@pytest.mark.parametrize("data", [b"", b"hello\n", bytes(range(256)) * 100])
def test_hash_of_matches_installer(data):
    ours = hash_of(data)
    assert Hash.parse(ours).validate(data)
    expected = Hash("sha256", base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("="))
    assert ours == str(expected)
    assert hash_of_digest(hashlib.sha256(data).hexdigest()) == ours
    assert "=" not in ours.partition("=")[2]


def test_record_bytes_matches_installer_rows_and_parses_back():
    files = {"pkg/__init__.py": b"x", "pkg/we,ird \"name\".py": b"y" * 10, "pkg/ünï.py": b"z"}
    rows = [(path, hash_of(data), len(data)) for path, data in files.items()]
    rows.append(("pkg-1.0.dist-info/RECORD", "", ""))
    entries = [RecordEntry(path, Hash.parse(hash_of(data)), len(data)) for path, data in files.items()]
    entries.append(RecordEntry("pkg-1.0.dist-info/RECORD", None, None))
    data = record_bytes(rows)
    assert [tuple(row) for row in parse_record_file(data.decode("utf-8").splitlines())] == [
        entry.to_row() for entry in entries]
    for path, content in files.items():
        parsed = next(row for row in parse_record_file(data.decode("utf-8").splitlines()) if row[0] == path)
        assert Hash.parse(parsed[1]).validate(content)
    assert data.endswith(b"\n") and not data.endswith(b"\r\n")


def _optimize_flag(tmp_path, folder_name: str) -> str:
    folder = tmp_path / folder_name
    folder.mkdir()
    os.symlink(sys.executable, folder / "python")
    script = tmp_path / f"tool-{len(folder_name)}"
    script.write_bytes(rewrite_python_shebang(b"#!python -O\nimport sys\nprint(sys.flags.optimize)\n",
                                              str(folder / "python")))
    os.chmod(script, 0o755)
    return subprocess.run([str(script)], capture_output=True, text=True, check=True).stdout.strip()


def test_shebang_arguments_are_kept_with_a_plain_interpreter_path(tmp_path):
    assert _optimize_flag(tmp_path, "plain") == "1"


def test_shebang_arguments_are_kept_with_a_trampoline(tmp_path):
    assert _optimize_flag(tmp_path, "with space") == "1"
