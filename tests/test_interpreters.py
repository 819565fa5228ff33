"""Every Python the package claims, as the target interpreter of a seeded environment.

``virtualenv -p INTERPRETER --seeder holoclone`` from this interpreter makes an
environment for each CPython 3.9-3.13 and for PyPy 3.9 found on the machine
(pyenv's, Debian's ``pypy3``): pip runs in it, its bytecode was compiled by
that interpreter (its own cache tag, valid without recompiling), and the
store holds one catalog per interpreter tag.  An interpreter that is missing
skips with the reason, unless ``HOLOCLONE_REQUIRE_PYTHONS=1`` (CI installs them).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import catalogs, site_packages, virtualenv

pytestmark = pytest.mark.slow
REQUIRE = os.environ.get("HOLOCLONE_REQUIRE_PYTHONS") == "1"
WANTED = ["3.9", "3.10", "3.11", "3.12", "3.13", "pypy3.9"]


def _find(wanted: str) -> str | None:
    if wanted.startswith("pypy"):
        return shutil.which("pypy3")
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found = sorted(glob.glob(os.path.join(root, "versions", f"{wanted}.*", "bin", "python")))
    return found[-1] if found else shutil.which(f"python{wanted}")


def _describe(python: str) -> dict:
    code = "import sys, json; print(json.dumps([sys.implementation.name, sys.implementation.cache_tag, list(sys.version_info[:2])]))"
    name, tag, version = json.loads(subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout)
    return {"implementation": name, "cache_tag": tag, "version": version}


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("interpreters") / "store"


@pytest.mark.parametrize("wanted", WANTED)
def test_seeded_environment_for_each_claimed_python(wanted, store_dir, tmp_path):
    python = _find(wanted)
    if python is None:
        if REQUIRE:
            pytest.fail(f"HOLOCLONE_REQUIRE_PYTHONS=1 but no interpreter for {wanted} was found")
        pytest.skip(f"no interpreter for {wanted} on this machine")
    facts = _describe(python)
    env = tmp_path / "env"
    virtualenv(env, "-p", python, store=store_dir, timeout=300)

    pip = subprocess.run([str(env / "bin" / "python"), "-m", "pip", "--version"], capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr
    assert str(env) in pip.stdout

    # The bytecode is the target interpreter's own: its cache tag, and Python does not rewrite it.
    pip_init = next(site_packages(env).glob("pip/__pycache__/__init__.*.pyc"))
    assert pip_init.name == f"__init__.{facts['cache_tag']}.pyc"
    before = pip_init.stat().st_mtime_ns
    subprocess.run([str(env / "bin" / "python"), "-c", "import pip"], check=True)
    assert pip_init.stat().st_mtime_ns == before

    implementation = "cpython" if facts["implementation"] == "cpython" else facts["implementation"]
    tag = f"{implementation}-{facts['version'][0]}{facts['version'][1]}"
    assert any(c.tag == tag and c.name == "pip" for c in catalogs(store_dir)), [c.tag for c in catalogs(store_dir)]
    cfg = (env / "pyvenv.cfg").read_text()
    assert "holoclone = " in cfg

