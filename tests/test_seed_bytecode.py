"""A seeded environment ships valid bytecode: the first pip run compiles nothing, a user's edit is recompiled.

``PYTHONDONTWRITEBYTECODE`` is removed from the environment of every program
run here, so Python would write any .pyc it found missing or stale; the
snapshots of every .pyc and ``__pycache__`` directory are the proof it did not.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import catalogs, site_packages, virtualenv

from holoclone_venv.store.catalog import HAS_BYTECODE, FIXED_MTIME

def run(env: Path, *args: str) -> subprocess.CompletedProcess:
    """Run a program of the environment with bytecode writing allowed."""
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    return subprocess.run([str(env / "bin" / args[0]), *args[1:]], capture_output=True, text=True, env=environ,
                          check=True)


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """(inode, mtime_ns, size) of every .pyc file and ``__pycache__`` directory under ``root``."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            if name == "__pycache__":
                st = os.lstat(os.path.join(dirpath, name))
                found[os.path.join(dirpath, name)] = (st.st_ino, st.st_mtime_ns, st.st_size)
        for name in filenames:
            if name.endswith(".pyc"):
                st = os.lstat(os.path.join(dirpath, name))
                found[os.path.join(dirpath, name)] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return found


@pytest.fixture(scope="module", params=["xfs", "ext4"])
def warm(request, warm_store) -> Path:
    """A directory with a warm store (``warm / "store"``), on a cloning (xfs) and a hardlinking (ext4) filesystem."""
    return warm_store(request.getfixturevalue(request.param)).parent


@pytest.fixture
def env(warm, unique) -> Path:
    path = warm / unique
    virtualenv(path, store=warm / "store")
    return path


def sources(warm: Path, env: Path) -> list[Path]:
    """The ``.py`` files the catalogs ship with bytecode, as paths in ``env``."""
    return [site_packages(env) / e.path for c in catalogs(warm / "store") for e in c.entries if e.flags & HAS_BYTECODE]


def test_env_ships_bytecode_for_its_interpreter(warm, env):
    shipped = sources(warm, env)
    assert len(shipped) > 300
    missing = [p for p in shipped if not Path(importlib.util.cache_from_source(str(p))).is_file()]
    assert missing == []
    assert all(f".{sys.implementation.cache_tag}.pyc" in str(p) for p in site_packages(env).rglob("*.pyc"))


def test_sources_carry_the_fixed_mtime_their_bytecode_records(warm, env):
    wrong = [p for p in sources(warm, env) if os.stat(p).st_mtime != FIXED_MTIME]
    assert wrong == []


def test_first_pip_run_compiles_and_rewrites_nothing(env):
    before = snapshot(env)
    assert len(before) > 300
    run(env, "pip", "--version")
    run(env, "pip", "list")
    assert snapshot(env) == before


def test_python_would_have_written_missing_bytecode(env):
    # The counterpart of the test above: in this setting a missing .pyc is written,
    # so an unchanged snapshot really means the shipped bytecode was used.
    pyc = Path(importlib.util.cache_from_source(str(site_packages(env) / "pip" / "__init__.py")))
    pyc.unlink()
    run(env, "pip", "--version")
    assert pyc.is_file()


# On ext4 smart hardlinks .py files to the store object, so an edit in place
# would reach the store: only a cloning filesystem gives each env its own file.
@pytest.mark.parametrize("warm", ["xfs"], indirect=True)
def test_editing_a_source_recompiles_just_that_module(warm, env):
    module = site_packages(env) / "pip" / "_internal" / "utils" / "compat.py"
    pyc = importlib.util.cache_from_source(str(module))
    before = snapshot(env)
    with open(module, "a") as handle:
        handle.write("\nHOLOCLONE_EDITED = 'yes'\n")
    out = run(env, "python", "-c", "import pip._internal.utils.compat as m; print(m.HOLOCLONE_EDITED)").stdout
    assert out == "yes\n"
    after = snapshot(env)
    assert after[pyc] != before[pyc]
    # the new .pyc is renamed into place, which also touches its directory
    for changed in (pyc, os.path.dirname(pyc)):
        del before[changed], after[changed]
    assert after == before
    # and pip keeps working with the edited module
    run(env, "pip", "--version")
