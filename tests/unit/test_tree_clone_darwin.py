"""Whole-tree clones on macOS (clonefile of a directory), run here against a recording stand-in for libSystem.

As in ``test_backend_darwin.py``, the stand-in checks every call against the
declared prototypes as ctypes would, records it, and either fails with a
scripted errno or does what APFS would: clone the whole directory at once,
symlinks verbatim, or fail with EEXIST when the target exists.
"""

from __future__ import annotations

import errno
import os
import stat
import sys

import pytest

from holoclone_venv.errors import Unsupported
from holoclone_venv.platforms import TreeCloner, current, darwin



@pytest.fixture
def template(tmp_path):
    """A filled template: read-only files, an executable, a symlink, a nested directory."""
    root = tmp_path / "templates" / "t1"
    (root / "pkg" / "sub").mkdir(parents=True)
    for name, data in (("pkg/__init__.py", b""), ("pkg/mod.py", b"VALUE = 1\n"), ("pkg/sub/d.bin", b"\0" * 99)):
        (root / name).write_bytes(data)
        os.chmod(root / name, 0o444)
    (root / "link.py").symlink_to("pkg/mod.py")
    return root


def _tree(root) -> dict:
    found = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            key = os.path.relpath(path, root)
            if stat.S_ISLNK(info.st_mode):
                found[key] = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                found[key] = ("dir",)
            else:
                found[key] = ("file", stat.S_IMODE(info.st_mode), open(path, "rb").read())
    return found


def test_the_darwin_platform_offers_the_clonefile_tree_cloner(monkeypatch, libsystem):
    current.cache_clear()
    try:
        monkeypatch.setattr(sys, "platform", "darwin")
        assert current().tree is darwin.TREE
    finally:
        current.cache_clear()
    assert isinstance(darwin.TREE, TreeCloner) and darwin.TREE.name == "darwin-clonefile"


def test_a_tree_is_cloned_in_one_clonefile_call_without_following_symlinks(libsystem, template, tmp_path):
    lib = libsystem.default
    target = tmp_path / "env" / "lib" / "site-packages"
    target.parent.mkdir(parents=True)
    darwin.TREE.clone(str(template), str(target))
    assert lib.calls == [("clonefile", (os.fsencode(template), os.fsencode(target), darwin.CLONE_FLAGS))]
    assert darwin.CLONE_NOFOLLOW == 0x1
    assert _tree(target) == _tree(template)
    assert os.readlink(target / "link.py") == "pkg/mod.py"


@pytest.mark.parametrize("code", [errno.ENOTSUP, errno.EXDEV, errno.EPERM, errno.EINVAL, errno.ENOTTY])
def test_cannot_clone_here_is_unsupported_and_leaves_nothing(libsystem, template, tmp_path, code):
    lib = libsystem(fail=code)
    target = tmp_path / "env"
    with pytest.raises(Unsupported) as caught:
        darwin.TREE.clone(str(template), str(target))
    assert caught.value.errno == code and "clonefile" in caught.value.reason
    assert len(lib.calls) == 1 and not os.path.lexists(target)


def test_an_existing_target_raises_file_exists_and_is_left_alone(libsystem, template, tmp_path):
    target = tmp_path / "env"
    target.mkdir()
    (target / "mine.txt").write_bytes(b"keep")
    with pytest.raises(FileExistsError) as caught:
        darwin.TREE.clone(str(template), str(target))
    assert not isinstance(caught.value, Unsupported) and caught.value.filename == str(target)
    assert os.listdir(target) == ["mine.txt"] and (target / "mine.txt").read_bytes() == b"keep"


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EIO])
def test_real_failures_stay_os_errors(libsystem, template, tmp_path, code):
    libsystem(fail=code)
    with pytest.raises(OSError) as caught:
        darwin.TREE.clone(str(template), str(tmp_path / "env"))
    assert caught.value.errno == code and not isinstance(caught.value, Unsupported)
    assert not os.path.lexists(tmp_path / "env")


def test_a_missing_template_names_the_template(libsystem, tmp_path):
    with pytest.raises(FileNotFoundError) as caught:
        darwin.TREE.clone(str(tmp_path / "nothing"), str(tmp_path / "env"))
    assert caught.value.filename == str(tmp_path / "nothing")


def test_a_macos_without_clonefile_is_unsupported(libsystem, template, tmp_path):
    libsystem(missing=("clonefile", "fclonefileat"))
    with pytest.raises(Unsupported) as caught:
        darwin.TREE.clone(str(template), str(tmp_path / "env"))
    assert caught.value.errno == errno.ENOSYS


def test_prepare_template_makes_a_directory_on_apfs(libsystem, tmp_path):
    darwin.TREE.prepare_template(str(tmp_path / "t"))
    assert (tmp_path / "t").is_dir() and os.listdir(tmp_path / "t") == []
    assert [name for name, _ in libsystem.default.calls] in (["statfs$INODE64"], ["statfs"])
    with pytest.raises(FileExistsError):
        darwin.TREE.prepare_template(str(tmp_path / "t"))


def test_prepare_template_elsewhere_is_unsupported_and_makes_nothing(libsystem, tmp_path):
    libsystem(fstypename=b"hfs")
    with pytest.raises(Unsupported) as caught:
        darwin.TREE.prepare_template(str(tmp_path / "t"))
    assert caught.value.errno == errno.ENOTSUP and "hfs" in caught.value.reason
    assert not os.path.lexists(tmp_path / "t")


def test_prepare_template_when_the_volume_cannot_be_named_goes_ahead(libsystem, tmp_path):
    libsystem(fstypename=None)
    darwin.TREE.prepare_template(str(tmp_path / "t"))
    assert (tmp_path / "t").is_dir()


def test_seal_makes_every_file_and_folder_read_only_and_a_clone_gets_its_write_bits_back(libsystem, tmp_path):
    # Template files are written with the environment's modes (0644, 0755); unsealed, an in-place
    # edit of one would reach every later clone, since clonefile(2) copies modes.
    from holoclone_venv.store.templates import count_entries

    root = tmp_path / "templates" / "t2"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "mod.py").write_bytes(b"VALUE = 1\n")
    os.chmod(root / "pkg" / "mod.py", 0o644)
    (root / "tool").write_bytes(b"#!/bin/sh\n")
    os.chmod(root / "tool", 0o755)
    (root / "link.py").symlink_to("pkg/mod.py")
    darwin.TREE.seal(str(root))
    assert libsystem.default.calls == []
    modes = {path: stat.S_IMODE(os.lstat(root / path).st_mode) for path in ("", "pkg", "pkg/mod.py", "tool")}
    assert modes == {"": 0o555, "pkg": 0o555, "pkg/mod.py": 0o444, "tool": 0o555}
    with pytest.raises(PermissionError):
        if os.geteuid() == 0:  # root ignores modes: show what a user meets instead
            raise PermissionError("read-only")
        open(root / "pkg" / "mod.py", "r+b")
    assert os.readlink(root / "link.py") == "pkg/mod.py"
    assert darwin.TREE.clones_keep_seal
    target = tmp_path / "env" / "site-packages"
    target.parent.mkdir()
    darwin.TREE.clone(str(root), str(target))
    assert count_entries(str(target), writable=True) == 4
    assert {path: stat.S_IMODE(os.lstat(target / path).st_mode) for path in modes} == {
        "": 0o755, "pkg": 0o755, "pkg/mod.py": 0o644, "tool": 0o755}
    (target / "pkg" / "mod.py").write_bytes(b"VALUE = 2\n")
    assert (root / "pkg" / "mod.py").read_bytes() == b"VALUE = 1\n"
    assert stat.S_IMODE(os.lstat(root / "pkg" / "mod.py").st_mode) == 0o444
    darwin.TREE.remove(str(root))
    assert not os.path.lexists(root)


def test_remove_takes_a_read_only_tree_and_never_follows_a_symlink(libsystem, template, tmp_path):
    target = tmp_path / "env"
    darwin.TREE.clone(str(template), str(target))
    os.chmod(target / "pkg" / "sub", 0o555)
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(OSError):
        darwin.TREE.remove(str(link))
    assert _tree(target) == _tree(template)
    darwin.TREE.remove(str(target))
    assert not os.path.lexists(target)
    assert len(_tree(template)) == 6
    assert [name for name, _ in libsystem.default.calls] == ["clonefile"]
