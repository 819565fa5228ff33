"""A damaged store object is never silently materialized once a check can see it.

Two checks guard the store:

* the cheap check on the hot path (size, mtime and read-only mode of every
  object a catalog names) runs on every seeding; a catalog that fails it is
  re-imported from its wheel, which replaces the damaged objects;
* the full check, ``holoclone store verify``, re-hashes every object.

An object changed in place with its mtime and mode put back passes the cheap
check by construction: only ``verify`` sees it, and ``verify --repair``
removes it so the next seeding re-imports.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import holoclone, isolated_environ, pyvenv_cfg, run_in, site_packages, virtualenv, virtualenv_command
from storecheck import independent_problems, store_problems

FIXED_MTIME = 1_000_000_000  # the documented mtime of every store object
ARGS = ("--no-setuptools",)
TARGET = "pip/__init__.py"


def _entry(store: Path, rel: str = TARGET) -> tuple[Path, str, int]:
    """(object path, digest, size) of one file of pip's catalog."""
    for catalog in (store / "catalogs").glob("*.json"):
        document = json.loads(catalog.read_bytes())
        if document["name"] != "pip":
            continue
        for _scheme, path, digest, size, flags in document["entries"]:
            if path == rel:
                return store / "objects" / digest[:2] / (digest[2:] + (".x" if flags & 1 else "")), digest, size
    raise AssertionError(f"no {rel} in pip's catalog")


def _tamper(path: Path) -> None:
    """Change content in place, keeping the size (what an editor or a bad disk would do)."""
    os.chmod(path, 0o644)
    with open(path, "r+b") as handle:
        data = handle.read()
        handle.seek(0)
        handle.write(data.replace(b"__version__", b"__VERSION__", 1) if b"__version__" in data else data[::-1])


def _installed(env: Path, rel: str = TARGET) -> bytes:
    return (site_packages(env) / rel).read_bytes()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.slow
def test_changed_object_with_new_mtime_is_re_imported_on_next_seeding(warm_store, tmp_path):
    store = warm_store(None, *ARGS, fresh=True)  # damaged below
    obj, digest, _ = _entry(store)
    _tamper(obj)  # mtime is now, mode writable: the cheap check fails
    result = virtualenv(tmp_path / "second", *ARGS, store=store)
    assert "re-importing" in result.stdout + result.stderr
    assert _sha(_installed(tmp_path / "second")) == digest
    assert store_problems(store) == []
    run_in(tmp_path / "second", "pip", "--version")


@pytest.mark.slow
def test_changed_object_with_mtime_restored_is_found_by_verify_and_repaired(warm_store, tmp_path):
    store = warm_store(None, *ARGS, fresh=True)  # damaged below
    obj, digest, _ = _entry(store)
    _tamper(obj)
    os.chmod(obj, 0o444)
    os.utime(obj, (FIXED_MTIME, FIXED_MTIME))
    assert [p for p in independent_problems(store) if "does not match its digest" in p]
    verify = holoclone("store", "verify", store=store)
    assert verify.returncode == 1 and str(obj) in verify.stdout + verify.stderr
    repair = holoclone("store", "verify", "--repair", store=store)
    assert repair.returncode == 0, repair.stdout + repair.stderr
    assert not obj.exists()
    virtualenv(tmp_path / "healed", *ARGS, store=store)
    assert _sha(_installed(tmp_path / "healed")) == digest
    assert store_problems(store) == []


# Run virtualenv with a remover racing the seeding: right after the heal re-imports the damaged
# wheel, the same object is damaged again (as 'holoclone store gc --older-than 0' or another tool
# removing objects would do).
_RACED_SEEDING = """
import os, sys
import holoclone_venv.seeding.run as run
heal = run.import_wheel

def heal_then_damage_again(*args):
    catalog = heal(*args)
    os.chmod(sys.argv[1], 0o644)
    os.utime(sys.argv[1])
    return catalog

run.import_wheel = heal_then_damage_again
from virtualenv.__main__ import run_with_catch
run_with_catch(sys.argv[2:])
"""


@pytest.mark.slow
def test_an_object_damaged_again_after_its_heal_ends_in_one_sentence_and_leaves_no_seeded_env(warm_store, tmp_path):
    store = warm_store(None, *ARGS, fresh=True)  # damaged below
    obj, digest, _ = _entry(store)
    _tamper(obj)
    env = tmp_path / "raced"
    arguments = virtualenv_command(env, *ARGS, store=store)[3:]  # without its 'python -m virtualenv'
    command = [sys.executable, "-c", _RACED_SEEDING, str(obj), *arguments]
    result = subprocess.run(command, capture_output=True, text=True, env=isolated_environ(), timeout=600)
    text = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in text, text
    assert f"store objects (such as {obj}) were removed while seeding. Run again." in text, text
    assert "holoclone" not in pyvenv_cfg(env)  # not marked seeded
    assert not list(site_packages(env).glob("pip*")), "a failed seeding left pip behind"

    again = virtualenv(env, *ARGS, store=store)  # as the sentence says: run again, and it heals
    assert "re-importing" in again.stdout + again.stderr
    assert _sha(_installed(env)) == digest
    assert store_problems(store) == []
    run_in(env, "pip", "--version")


_RACED_INSTALL = """
import os, sys
import holoclone_venv.command.install.apply as apply
heal = apply.import_wheel

def heal_then_damage_again(*args, **kwargs):
    catalog = heal(*args, **kwargs)
    os.chmod(sys.argv[1], 0o644)
    os.utime(sys.argv[1])
    return catalog

apply.import_wheel = heal_then_damage_again
from holoclone_venv.command.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.slow
def test_an_install_whose_object_is_damaged_again_after_its_heal_ends_in_one_sentence_and_changes_nothing(
        warm_store, xfs, unique):
    from virtualenv.seed.wheels.embed import get_embed_wheel

    store = warm_store(xfs, *ARGS, fresh=True)
    env = xfs / f"env-{unique}"
    virtualenv(env, *ARGS, store=store)
    obj, _, _ = _entry(store)
    _tamper(obj)  # after the seeding: the env's pip is a reflink, whole; the store's object is not
    wheel = get_embed_wheel("pip", f"{sys.version_info[0]}.{sys.version_info[1]}").path
    version = wheel.name.split("-")[1]
    before = sorted((str(p.relative_to(env)), p.stat().st_size) for p in env.rglob("*") if p.is_file())
    command = [sys.executable, "-c", _RACED_INSTALL, str(obj), "--store", str(store), "install", "--python",
               str(env), "--no-index", "-f", str(wheel.parent), "--force-reinstall", f"pip=={version}"]
    result = subprocess.run(command, capture_output=True, text=True, env=isolated_environ(), timeout=600)
    text = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in text, text
    assert f"store objects (such as {obj}) were removed while installing. Run again." in text, text
    assert sorted((str(p.relative_to(env)), p.stat().st_size) for p in env.rglob("*") if p.is_file()) == before
    run_in(env, "pip", "--version")


def _hardlinked_file(env: Path, store: Path) -> tuple[Path, Path]:
    """An env file that shares its inode with a store object, and that object."""
    site = site_packages(env)
    for catalog in (store / "catalogs").glob("*.json"):
        for scheme, rel, digest, _size, flags in json.loads(catalog.read_bytes())["entries"]:
            if scheme != "purelib" or not rel.endswith(".py"):
                continue
            obj = store / "objects" / digest[:2] / (digest[2:] + (".x" if flags & 1 else ""))
            if os.path.samefile(site / rel, obj):
                return site / rel, obj
    raise AssertionError("nothing was hardlinked")


# Runs as an unprivileged user, given a directory fd opened by root: tries to
# open the file for writing and reports what happened.
_WRITE_AS_NOBODY = r"""
import os, sys
os.setgid(65534); os.setuid(65534)
try:
    fd = os.open(sys.argv[1], os.O_WRONLY, dir_fd=int(sys.argv[2]))
except PermissionError:
    print("refused")
else:
    print("written")
"""


def test_hardlinked_file_cannot_be_written_by_its_user_and_root_writes_are_healed(ext4, needs_root, unique):
    root = ext4 / unique
    store = root / "store"
    env = root / "env"
    virtualenv(env, *ARGS, "--holoclone-strategy", "hardlink", store=store)
    target, obj = _hardlinked_file(env, store)
    assert target.stat().st_mode & 0o222 == 0
    # Model a user who owns both store and env: the shared inode becomes theirs for the attempt.
    os.chown(target, 65534, 65534)
    directory = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        attempt = subprocess.run([sys.executable, "-c", _WRITE_AS_NOBODY, target.name, str(directory)],
                                 capture_output=True, text=True, pass_fds=(directory,))
    finally:
        os.close(directory)
        os.chown(target, 0, 0)
    assert attempt.stdout.strip() == "refused", attempt.stdout + attempt.stderr
    # Root can write anyway, and through the hardlink that changes the store object.
    with open(target, "r+b") as handle:
        handle.seek(20)
        handle.write(b"\0\0\0\0")
    assert [p for p in independent_problems(store) if "does not match its digest" in p]
    result = virtualenv(root / "next", *ARGS, "--holoclone-strategy", "hardlink", store=store)
    assert "re-importing" in result.stdout + result.stderr
    assert store_problems(store) == []
    run_in(root / "next", "pip", "--version")
