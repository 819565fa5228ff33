"""Per-environment launchers run with the environment's interpreter, wherever the environment lives.

Each case places a real interpreter (a symlink to this one) at an awkward
path and executes a generated script through the kernel's shebang handling,
so a quoting mistake shows up as a script that does not run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from holoclone_venv.store.catalog import PLACEHOLDER
from holoclone_venv.materialize.scripts import render, rewrite_python_shebang, shebang

BODY = b"import sys\nprint(repr(sys.argv[1:]))\n"
ARGS = ["plain", "with space", "it's", 'say "hi"', "back\\slash", "$HOME", "`id`"]

AWKWARD = {
    "plain": "py",
    "space": "my env/py",
    "quote": "it's/py",
    "double-quote": 'say "x"/py',
    "backslash": "back\\slash/py",
    "dollar-backtick": "$HOME `id`/py",
    "long": "/".join(["d" * 40] * 4) + "/py",
    "non-utf8": os.fsdecode(b"caf\xe9/py"),
}


def _interpreter_at(tmp_path: Path, relative: str) -> str:
    """A working interpreter at ``tmp_path/relative``: a symlink to the one running the tests."""
    link = os.path.join(os.fsencode(tmp_path), os.fsencode(relative))
    os.makedirs(os.path.dirname(link), exist_ok=True)
    os.symlink(os.path.realpath(sys.executable), link)
    return os.fsdecode(link)


def _run_script(tmp_path: Path, content: bytes, *args: str) -> subprocess.CompletedProcess:
    script = tmp_path / "script"
    script.write_bytes(content)
    script.chmod(0o755)
    return subprocess.run([str(script), *args], capture_output=True, encoding="utf-8", errors="surrogateescape", check=False)


@pytest.mark.parametrize("case", list(AWKWARD))
def test_shebang_runs_the_script_with_that_interpreter(tmp_path, case):
    executable = _interpreter_at(tmp_path, AWKWARD[case])
    line = shebang(executable)
    assert b"\n" + PLACEHOLDER not in line
    # the interpreter really is the one at the awkward path: it reports itself
    body = b"import sys\nprint(repr(sys.argv[1:]))\nprint(sys.executable)\n"
    result = _run_script(tmp_path, line + b"\n" + body, *ARGS)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == repr(ARGS)
    assert os.fsencode(lines[1]) == os.fsencode(executable)


def test_plain_short_path_gets_a_direct_shebang(tmp_path):
    executable = _interpreter_at(tmp_path, "py")
    assert shebang(executable) == b"#!" + os.fsencode(executable)


@pytest.mark.parametrize("case", ["space", "quote", "backslash", "long", "non-utf8"])
def test_awkward_paths_get_a_trampoline_the_kernel_can_run(tmp_path, case):
    executable = _interpreter_at(tmp_path, AWKWARD[case])
    assert shebang(executable).startswith(b"#!/bin/sh\n")


@pytest.mark.parametrize("case", list(AWKWARD))
def test_rendered_posix_template_runs(tmp_path, case):
    executable = _interpreter_at(tmp_path, AWKWARD[case])
    template = b"#!" + PLACEHOLDER + b"\n# -*- coding: utf-8 -*-\n" + BODY
    rendered = render(template, executable)
    assert PLACEHOLDER not in rendered
    assert rendered.endswith(b"# -*- coding: utf-8 -*-\n" + BODY)
    result = _run_script(tmp_path, rendered, *ARGS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == repr(ARGS)


@pytest.mark.parametrize("first_line", [b"#!python", b"#!pythonw", b"#!python -u"])
@pytest.mark.parametrize("case", ["plain", "space", "backslash"])
def test_wheel_script_with_python_shebang_runs(tmp_path, case, first_line):
    executable = _interpreter_at(tmp_path, AWKWARD[case])
    content = rewrite_python_shebang(first_line + b"\n" + BODY, executable)
    assert not content.startswith(b"#!python")
    result = _run_script(tmp_path, content, *ARGS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == repr(ARGS)


def test_python_shebang_arguments_are_kept_on_a_direct_shebang(tmp_path):
    executable = _interpreter_at(tmp_path, "py")
    content = rewrite_python_shebang(b"#!python -u\n" + BODY, executable)
    assert content.splitlines()[0] == b"#!" + os.fsencode(executable) + b" -u"


def test_windows_launcher_template_keeps_launcher_bytes_and_embeds_the_interpreter():
    # launcher.exe layout: PE stub, then "#!<interpreter>\r\n", then a zip with __main__.py
    stub = b"MZ\x90\x00" + bytes(range(256)) * 4 + b"\x00" * 64
    archive = b"PK\x03\x04" + bytes(range(255, -1, -1)) + b"PK\x05\x06" + b"\x00" * 18
    template = stub + b"#!" + PLACEHOLDER + b"\r\n" + archive
    executable = r"C:\Users\Jo Smith\env's\Scripts\python.exe"
    rendered = render(template, executable)
    assert rendered.startswith(stub)
    assert rendered.endswith(archive)
    assert rendered[len(stub) : -len(archive)] == b"#!" + executable.encode() + b"\r\n"
    assert PLACEHOLDER not in rendered
