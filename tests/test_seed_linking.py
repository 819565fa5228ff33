"""How files reach an environment: reflinks where the filesystem clones, honest fallbacks where it cannot.

Proof comes from the kernel: FIEMAP extents (shared flag and physical
offsets equal to the store object's) for reflinks, inode numbers for
hardlinks and copies.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import os
import sys
from pathlib import Path

import pytest
from helpers import catalogs, fallback_lines, fell_back, run_in, site_packages, virtualenv

from holoclone_venv.store.catalog import EXECUTABLE, SHEBANG
from holoclone_venv.platforms.linux import extents, shares_extents
from holoclone_venv.store import Store





def linked_files(store: Path, env: Path) -> list[tuple[Path, str]]:
    """(file in env, its store object) for every file taken from the store (not written per env)."""
    s = Store(store)
    pairs = []
    for catalog in catalogs(store):
        for entry in catalog.entries:
            if entry.scheme == "purelib" and not entry.flags & SHEBANG:
                pairs.append((site_packages(env) / entry.path, s.object_path(entry.digest, bool(entry.flags & EXECUTABLE))))
    assert len(pairs) > 1000
    return pairs


@pytest.fixture
def warm(warm_store):
    """``warm(fs)``: a directory on ``fs`` holding a store (``warm(fs) / "store"``) already filled by one run."""
    return lambda fs: warm_store(fs).parent


@pytest.mark.parametrize("strategy", ["reflink", "smart"])
@pytest.mark.parametrize("kind", ["xfs", "btrfs"])
def test_files_share_extents_with_their_store_objects(request, warm, unique, kind, strategy):
    base = warm(request.getfixturevalue(kind))
    env = base / unique
    result = virtualenv(env, "--holoclone-strategy", strategy, store=base / "store")
    assert fallback_lines(result) == []
    assert " 0 hardlinked, 0 copied" in result.stderr + result.stdout
    shared = inline = 0
    not_shared = []
    for path, obj in linked_files(base / "store", env):
        if os.path.getsize(obj) == 0:
            continue
        ours, theirs = extents(str(path)), extents(obj)
        if theirs and all(not extent.located for extent in theirs):
            # btrfs keeps small files inside its metadata (inline): nothing on disk to share;
            # the clone must still hold the same bytes
            assert Path(path).read_bytes() == Path(obj).read_bytes()
            inline += 1
            continue
        same_blocks = [e[:3] for e in ours] == [e[:3] for e in theirs]
        if same_blocks and all(extent.shared and extent.located for extent in ours):
            shared += 1
        else:
            not_shared.append(str(path))
    assert not_shared == []
    assert shared > 500
    # console scripts are written per environment, never shared
    assert not shares_extents(str(env / "bin" / "pip"))
    # RECORD is cloned from the store's copy of the shared rows, then this env's rows are
    # appended: the script rows carry the hash of this env's own launcher
    record = next(site_packages(env).glob("pip-*.dist-info/RECORD")).read_text()
    launcher = hashlib.sha256((env / "bin" / "pip").read_bytes()).digest()
    assert "sha256=" + base64.urlsafe_b64encode(launcher).decode().rstrip("=") in record
    assert run_in(env, "pip", "--version").returncode == 0


@pytest.mark.parametrize("kind", ["xfs", "btrfs"])
def test_writing_into_one_env_changes_neither_the_store_nor_another_env(request, warm, unique, kind):
    base = warm(request.getfixturevalue(kind))
    store = base / "store"
    first, second = base / f"{unique}-a", base / f"{unique}-b"
    virtualenv(first, store=store)
    virtualenv(second, store=store)
    entries = {e.path: e for c in catalogs(store) for e in c.entries}
    targets = ["pip/__init__.py", f"pip/__pycache__/__init__.{sys.implementation.cache_tag}.pyc"]
    originals = {t: (site_packages(second) / t).read_bytes() for t in targets}

    with open(site_packages(first) / targets[0], "a") as handle:  # an edit appended
        handle.write("\nraise SystemExit('edited')\n")
    with open(site_packages(first) / targets[1], "r+b") as handle:  # a rewrite in place
        handle.write(b"\0" * 16)

    for target in targets:
        entry = entries[target]
        obj = Store(store).object_path(entry.digest, bool(entry.flags & EXECUTABLE))
        assert hashlib.sha256(Path(obj).read_bytes()).hexdigest() == entry.digest, target
        assert (site_packages(second) / target).read_bytes() == originals[target]
        assert (site_packages(first) / target).read_bytes() != originals[target]
    assert run_in(second, "pip", "--version").returncode == 0
    # the store still passes its own check, so the next env is seeded without a re-import
    assert all(Store(store).check_objects(c) == [] for c in catalogs(store))


@pytest.mark.parametrize("kind", ["ext4", "tmpfs"])
def test_smart_falls_back_to_hardlinks_and_says_why(request, warm, unique, kind):
    base = warm(request.getfixturevalue(kind))
    env = base / unique
    # Not news on every run (the filesystem cannot clone at all): shown with -v, in words that do not
    # depend on which file met the fallback first.
    result = virtualenv(env, "-v", store=base / "store")
    lines = fallback_lines(result)
    assert len(lines) == 1, lines
    assert os.strerror(errno.EOPNOTSUPP) in lines[0]  # the kernel's reason, as it said it
    assert "reflink" in lines[0] and f"store on {kind}, env on {kind}" in lines[0]
    assert "so files were hardlinked (bytecode and excluded files copied)" in lines[0]
    assert "on XFS (reflink=1) or btrfs" in lines[0]  # and what to do about it
    assert "(0 reflinked," in result.stderr + result.stdout
    quiet = virtualenv(base / f"{unique}-quiet", store=base / "store")
    assert fallback_lines(quiet) == [], fallback_lines(quiet)  # at default verbosity: virtualenv's report only

    linked = bytecode = 0
    for path, obj in linked_files(base / "store", env):
        st, obj_st = os.stat(path), os.stat(obj)
        if path.suffix == ".pyc":
            # an interpreter may rewrite a .pyc in place: it must never be the store object
            assert st.st_ino != obj_st.st_ino and st.st_nlink == 1, path
            bytecode += 1
        else:
            assert st.st_ino == obj_st.st_ino and st.st_nlink > 1, path
            linked += 1
    assert linked > 500 and bytecode > 300
    assert run_in(env, "pip", "--version").returncode == 0


def test_copy_strategy_shares_no_inode_with_the_store(ext4, warm, unique):
    base = warm(ext4)
    env = base / unique
    result = virtualenv(env, "--holoclone-strategy", "copy", store=base / "store")
    assert fallback_lines(result) == []
    store_inodes = {os.stat(obj).st_ino for _, obj in linked_files(base / "store", env)}
    env_inodes = {os.stat(p).st_ino for p, _ in linked_files(base / "store", env)}
    assert store_inodes & env_inodes == set()
    assert run_in(env, "pip", "--version").returncode == 0


def test_store_on_another_filesystem_falls_back_to_copies(xfs, btrfs, warm, unique):
    store = warm(xfs) / "store"
    env = btrfs / unique
    result = virtualenv(env, store=store)
    lines = fallback_lines(result)
    assert lines, result.stderr
    assert all(os.strerror(errno.EXDEV) in line for line in lines), lines
    assert any(fell_back(line, method, "copy") for line in lines for method in ("reflink", "hardlink")), lines
    assert all("store on xfs, env on btrfs" in line and "different filesystems" in line for line in lines)
    assert "(0 reflinked, 0 hardlinked," in result.stderr + result.stdout
    pairs = linked_files(store, env)
    assert all(Path(p).read_bytes() == Path(obj).read_bytes() for p, obj in pairs[:50])
    assert run_in(env, "pip", "--version").returncode == 0


@pytest.mark.slow
def test_unknown_strategy_is_refused_before_anything_is_created(tmp_path):
    env = tmp_path / "env"
    result = virtualenv(env, "--holoclone-strategy", "teleport", store=tmp_path / "store", check=False)
    assert result.returncode == 2
    out = result.stderr + result.stdout
    assert "teleport" in out
    for name in ("smart", "reflink", "hardlink", "copy"):
        assert name in out
    assert not env.exists()
