"""Whole-tree clones on a real btrfs loop mount: a sealed subvolume template and writable snapshots of it.

The template refuses writes once sealed; a clone is a writable tree with the
same content, behind its own st_dev; a write in a clone reaches neither the
template nor another clone.  Other filesystems, existing targets, plain
directories and other users' templates fail without leaving anything behind.
The unprivileged tests run a small script as ``nobody`` on a btrfs mounted
where that user can reach it.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pluggy
import pytest

import holoclone_venv
from holoclone_venv.errors import Unsupported
from holoclone_venv.platforms import btrfs as subvolumes
from holoclone_venv.platforms import current, is_subvolume

TREE = subvolumes.TREE
FILES = {
    "pkg/__init__.py": b"",
    "pkg/mod.py": b"VALUE = 1\n" * 100,
    "pkg/sub/data.bin": bytes(range(256)) * 64,
    "pkg-1.0.dist-info/RECORD": b"pkg/__init__.py,,\n",
}


def _fill(template: Path) -> None:
    """Files with the store's read-only modes, an executable, a relative symlink and an empty directory."""
    for name, data in FILES.items():
        path = template / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.chmod(path, 0o444)
    tool = template / "bin-tool"
    tool.write_bytes(b"#!/bin/sh\necho hi\n")
    os.chmod(tool, 0o555)
    (template / "link.py").symlink_to("pkg/mod.py")
    (template / "empty").mkdir()


def _snapshot(root: Path) -> dict:
    """Every entry under ``root``: its kind, mode and content (symlinks by their text)."""
    found = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory, name)
            info = path.lstat()
            key = str(path.relative_to(root))
            if stat.S_ISLNK(info.st_mode):
                found[key] = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                found[key] = ("dir", stat.S_IMODE(info.st_mode))
            else:
                found[key] = ("file", stat.S_IMODE(info.st_mode), path.read_bytes())
    return found


def _flags(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return subvolumes._get_flags(fd)
    finally:
        os.close(fd)


@pytest.fixture
def template(btrfs, unique) -> Path:
    """A filled and sealed template in a directory of its own on the session btrfs."""
    work = btrfs / unique
    work.mkdir()
    path = work / "template"
    TREE.prepare_template(str(path))
    _fill(path)
    TREE.seal(str(path))
    return path


def test_the_linux_platform_offers_the_btrfs_tree_cloner():
    assert current().tree is TREE
    assert TREE.name == "btrfs-snapshot"


def test_a_template_is_an_empty_subvolume_made_with_the_umask(btrfs, unique):
    work = btrfs / unique
    work.mkdir()
    old = os.umask(0o027)
    try:
        TREE.prepare_template(str(work / "template"))
    finally:
        os.umask(old)
    info = (work / "template").lstat()
    assert os.listdir(work / "template") == []
    assert info.st_ino == subvolumes.BTRFS_FIRST_FREE_OBJECTID and is_subvolume(str(work / "template"))
    assert info.st_dev != work.stat().st_dev
    assert stat.S_IMODE(info.st_mode) == 0o750
    assert info.st_uid == os.getuid()
    assert _flags(work / "template") == 0


def test_a_sealed_template_refuses_every_write(template):
    assert _flags(template) & subvolumes.BTRFS_SUBVOL_RDONLY
    for attempt in (
        lambda: (template / "new.py").write_bytes(b"x"),
        lambda: open(template / "pkg" / "mod.py", "r+b"),
        lambda: os.chmod(template / "pkg" / "mod.py", 0o644),
        lambda: os.unlink(template / "pkg" / "mod.py"),
        lambda: (template / "pkg" / "newdir").mkdir(),
    ):
        with pytest.raises(OSError) as caught:
            attempt()
        assert caught.value.errno == errno.EROFS
    TREE.seal(str(template))  # sealing twice is harmless
    assert _snapshot(template)["pkg/mod.py"] == ("file", 0o444, FILES["pkg/mod.py"])


def test_a_clone_is_a_writable_tree_with_the_same_content_behind_its_own_device(template):
    target = template.parent / "env" / "site-packages"
    target.parent.mkdir()
    TREE.clone(str(template), str(target))

    assert _snapshot(target) == _snapshot(template)
    assert len(_snapshot(target)) == 10
    assert os.readlink(target / "link.py") == "pkg/mod.py"
    info = target.lstat()
    assert info.st_dev not in (template.stat().st_dev, target.parent.stat().st_dev)
    assert os.path.ismount(target)  # what -xdev tools see: a mount boundary
    assert is_subvolume(str(target)) and not is_subvolume(str(target / "pkg"))
    assert _flags(target) & subvolumes.BTRFS_SUBVOL_RDONLY == 0
    assert info.st_uid == os.getuid()
    (target / "new.py").write_bytes(b"written")
    os.chmod(target / "pkg" / "mod.py", 0o644)
    assert (target / "new.py").read_bytes() == b"written"


def test_a_write_in_a_clone_reaches_neither_the_template_nor_another_clone(template):
    before = _snapshot(template)
    first, second = template.parent / "one", template.parent / "two"
    TREE.clone(str(template), str(first))
    TREE.clone(str(template), str(second))

    os.chmod(first / "pkg" / "mod.py", 0o644)
    with open(first / "pkg" / "mod.py", "r+b") as handle:
        handle.write(b"CHANGED")
    (first / "pkg" / "sub" / "data.bin").unlink()
    (first / "extra.py").write_bytes(b"extra")
    shutil.rmtree(first / "empty")

    assert _snapshot(template) == before
    assert _snapshot(second) == before
    assert (first / "pkg" / "mod.py").read_bytes().startswith(b"CHANGED")


@pytest.mark.parametrize("kind", ["xfs", "ext4"])
def test_a_clone_onto_another_filesystem_is_unsupported_and_leaves_nothing(request, template, kind, unique):
    other = request.getfixturevalue(kind) / unique
    other.mkdir()
    with pytest.raises(Unsupported) as caught:
        TREE.clone(str(template), str(other / "site-packages"))
    assert caught.value.errno == errno.EXDEV
    assert "BTRFS_IOC_SNAP_CREATE_V2" in caught.value.reason and kind in caught.value.reason
    assert os.listdir(other) == []


def test_a_clone_onto_another_btrfs_filesystem_is_unsupported_and_leaves_nothing(template, make_fs):
    other = make_fs("btrfs", 256)
    with pytest.raises(Unsupported) as caught:
        TREE.clone(str(template), str(other / "site-packages"))
    assert caught.value.errno == errno.EXDEV
    assert os.listdir(other) == []


def test_a_clone_onto_an_existing_target_raises_and_leaves_it_alone(template):
    target = template.parent / "taken"
    target.mkdir()
    (target / "mine.txt").write_bytes(b"keep me")
    with pytest.raises(FileExistsError):
        TREE.clone(str(template), str(target))
    assert os.listdir(target) == ["mine.txt"] and (target / "mine.txt").read_bytes() == b"keep me"
    assert not is_subvolume(str(target))

    (template.parent / "file").write_bytes(b"a file")
    with pytest.raises(FileExistsError):
        TREE.clone(str(template), str(template.parent / "file"))
    assert (template.parent / "file").read_bytes() == b"a file"


def test_a_clone_needs_the_parent_of_its_target(template):
    with pytest.raises(FileNotFoundError):
        TREE.clone(str(template), str(template.parent / "missing" / "site-packages"))
    assert not (template.parent / "missing").exists()


def test_only_a_subvolume_can_be_cloned(template):
    # Given any other directory, the kernel would speak of the subvolume holding it.
    for source in (template / "pkg", template.parent):
        with pytest.raises(Unsupported) as caught:
            TREE.clone(str(source), str(template.parent / "clone"))
        assert caught.value.errno == errno.EINVAL
        assert not os.path.lexists(template.parent / "clone")
    link = template.parent / "link-to-template"
    link.symlink_to(template)
    with pytest.raises(Unsupported):
        TREE.clone(str(link), str(template.parent / "clone"))
    assert not os.path.lexists(template.parent / "clone")


@pytest.mark.parametrize("kind", ["xfs", "ext4", "tmpfs"])
def test_a_template_elsewhere_is_unsupported_and_leaves_nothing(request, kind, unique):
    work = request.getfixturevalue(kind) / unique
    work.mkdir()
    with pytest.raises(Unsupported) as caught:
        TREE.prepare_template(str(work / "template"))
    assert caught.value.errno == errno.ENOTTY
    assert kind in caught.value.reason
    assert os.listdir(work) == []
    work.joinpath("plain").mkdir()
    with pytest.raises(Unsupported):
        TREE.seal(str(work / "plain"))
    assert not is_subvolume(str(work / "plain")) and not is_subvolume(str(request.getfixturevalue(kind)))


def test_a_template_over_an_existing_entry_raises(btrfs, unique):
    work = btrfs / unique
    (work / "template").mkdir(parents=True)
    with pytest.raises(FileExistsError):
        TREE.prepare_template(str(work / "template"))
    assert not is_subvolume(str(work / "template"))


def test_remove_takes_a_sealed_template_and_its_clones(template):
    clone = template.parent / "clone"
    TREE.clone(str(template), str(clone))
    TREE.remove(str(clone))
    assert not os.path.lexists(clone)
    assert _snapshot(template)["pkg/mod.py"] == ("file", 0o444, FILES["pkg/mod.py"])

    later = template.parent / "later"
    TREE.clone(str(template), str(later))
    TREE.remove(str(template))
    assert not os.path.lexists(template)
    # A snapshot does not depend on its template.
    assert (later / "pkg" / "mod.py").read_bytes() == FILES["pkg/mod.py"]
    TREE.remove(str(later))
    assert os.listdir(template.parent) == []


def test_quotas_allow_clones_and_remove_still_works_over_a_limit(make_fs):
    # With qgroups on, a snapshot gets its own unlimited qgroup.  An admin's limit below what a
    # template already refers to makes even clearing its read-only flag fail (EDQUOT); remove()
    # then destroys the subvolume with its privileges.
    if shutil.which("btrfs") is None:
        pytest.skip("the btrfs command (btrfs-progs) is needed to set a qgroup limit")
    root = make_fs("btrfs", 256)
    subprocess.run(["btrfs", "quota", "enable", str(root)], check=True, capture_output=True)
    template = root / "template"
    TREE.prepare_template(str(template))
    (template / "big.bin").write_bytes(os.urandom(8 << 20))
    TREE.seal(str(template))
    os.sync()
    TREE.clone(str(template), str(root / "clone"))
    assert (root / "clone" / "big.bin").stat().st_size == 8 << 20
    subprocess.run(["btrfs", "qgroup", "limit", "4M", str(template)], check=True, capture_output=True)
    with pytest.raises(OSError) as caught:
        subvolumes._unseal(str(template))
    assert caught.value.errno == errno.EDQUOT
    TREE.remove(str(template))
    TREE.remove(str(root / "clone"))
    assert os.listdir(root) == []


def test_remove_never_follows_a_symlink(template):
    link = template.parent / "link"
    link.symlink_to(template)
    with pytest.raises(OSError):
        TREE.remove(str(link))
    assert _flags(template) & subvolumes.BTRFS_SUBVOL_RDONLY
    assert len(_snapshot(template)) == 10


def test_remove_takes_ordinary_trees_too(template, ext4, unique):
    for root in (template.parent, ext4 / unique):
        tree = root / "plain"
        (tree / "a" / "b").mkdir(parents=True)
        (tree / "a" / "b" / "f").write_bytes(b"x")
        os.chmod(tree / "a" / "b" / "f", 0o444)
        TREE.remove(str(tree))
        assert not os.path.lexists(tree)


# --- unprivileged: as "nobody", on a btrfs mounted where that user can reach it -------------------

_SCRIPT = r"""
import json, os, subprocess, sys
from holoclone_venv.errors import Unsupported
from holoclone_venv.platforms import btrfs, is_subvolume

work, foreign = sys.argv[1], sys.argv[2]
tree, out = btrfs.TREE, {"uid": os.getuid(), "euid": os.geteuid()}

def attempt(key, call):
    try:
        call()
        out[key] = "ok"
    except Unsupported as error:
        out[key] = ["Unsupported", error.errno, error.reason]
    except OSError as error:
        out[key] = ["OSError", error.errno, str(error)]

template = os.path.join(work, "template")
attempt("prepare", lambda: tree.prepare_template(template))
os.makedirs(os.path.join(template, "pkg"))
with open(os.path.join(template, "pkg", "mod.py"), "w") as handle:
    handle.write("VALUE = 1\n")
os.chmod(os.path.join(template, "pkg", "mod.py"), 0o444)
attempt("seal", lambda: tree.seal(template))
try:
    open(os.path.join(template, "new.py"), "w")
    out["sealed_write"] = None
except OSError as error:
    out["sealed_write"] = error.errno

env = os.path.join(work, "env")
os.mkdir(env)
attempt("clone", lambda: tree.clone(template, os.path.join(env, "site-packages")))
module = os.path.join(env, "site-packages", "pkg", "mod.py")
out["clone_owner"] = os.lstat(os.path.join(env, "site-packages")).st_uid
out["clone_is_subvolume"] = is_subvolume(os.path.join(env, "site-packages"))
os.chmod(module, 0o644)
with open(module, "a") as handle:
    handle.write("VALUE = 2\n")
out["clone_content"] = open(module).read()
out["template_content"] = open(os.path.join(template, "pkg", "mod.py")).read()
out["rm_rf"] = subprocess.run(["rm", "-rf", env], capture_output=True, text=True).returncode
out["env_left"] = os.path.lexists(env)

other = os.path.join(work, "other")
attempt("clone_again", lambda: tree.clone(template, other))
attempt("remove_clone", lambda: tree.remove(other))
out["other_left"] = os.path.lexists(other)

stolen = os.path.join(work, "stolen")
attempt("clone_foreign", lambda: tree.clone(foreign, stolen))
out["stolen_left"] = os.path.lexists(stolen)

attempt("remove_template", lambda: tree.remove(template))
out["template_left"] = os.path.lexists(template)
print(json.dumps(out))
"""


def _python_for(uid: int, gid: int) -> str:
    """An interpreter that user can run (pyenv's under /root may not be reachable)."""
    for candidate in (sys.executable, "/usr/bin/python3"):
        probe = subprocess.run(
            ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", candidate, "-c",
             "import sys; print(sys.version_info >= (3, 8))"],
            capture_output=True, text=True, cwd="/",
        )
        if probe.stdout.strip() == "True":
            return candidate
    pytest.fail("no Python interpreter the unprivileged user can run")


@pytest.fixture(scope="module")
def user_btrfs(nobody_btrfs):  # conftest marks tests using needs_root "root"
    """``(work, user, code)``: a directory of ``nobody`` on a fresh btrfs, and a copy of the package and
    pluggy beside the mount, since that user cannot read this interpreter's site-packages."""
    base, work, user = nobody_btrfs
    code = base / "code"
    code.mkdir()
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(Path(holoclone_venv.__file__).parent, code / "holoclone_venv", ignore=ignore)
    shutil.copytree(Path(pluggy.__file__).parent, code / "pluggy", ignore=ignore)
    for path in [code, *code.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return work, user, code



def _run_as(user, code: Path, *args: str) -> dict:
    python = _python_for(user.pw_uid, user.pw_gid)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(code), "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/"}
    done = subprocess.run(
        ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", python, "-c", _SCRIPT,
         *args],
        capture_output=True, text=True, env=env, cwd="/",
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.root
def test_an_unprivileged_user_makes_seals_clones_and_removes_without_privileges(user_btrfs):
    work, user, code = user_btrfs
    foreign = work.parent / "root-template"
    TREE.prepare_template(str(foreign))
    (foreign / "secret.py").write_bytes(b"root's\n")
    TREE.seal(str(foreign))
    try:
        out = _run_as(user, code, str(work), str(foreign))
    finally:
        TREE.remove(str(foreign))

    assert out["uid"] == out["euid"] == user.pw_uid != 0
    assert out["prepare"] == out["seal"] == out["clone"] == "ok"
    assert out["sealed_write"] == errno.EROFS
    assert out["clone_owner"] == user.pw_uid and out["clone_is_subvolume"] is True
    assert out["clone_content"] == "VALUE = 1\nVALUE = 2\n"
    assert out["template_content"] == "VALUE = 1\n"
    # rm -rf of an environment holding a clone: rmdir takes the emptied subvolume (Linux >= 4.18).
    assert out["rm_rf"] == 0 and out["env_left"] is False
    assert out["clone_again"] == out["remove_clone"] == "ok" and out["other_left"] is False
    # A snapshot of a subvolume owned by someone else: EPERM, as Unsupported, nothing made.
    assert out["clone_foreign"][:2] == ["Unsupported", errno.EPERM], out["clone_foreign"]
    assert "BTRFS_IOC_SNAP_CREATE_V2" in out["clone_foreign"][2]
    assert out["stolen_left"] is False
    # The user's own sealed template goes too: unsealed first, then removed the ordinary way.
    assert out["remove_template"] == "ok" and out["template_left"] is False
    assert os.listdir(work) == []
