"""The copy-file-range method and strategy, on the real filesystem under pytest's tmp_path.

Run with ``python -m pytest plugins/holoclone-copy-file-range``; the package
is importable from the source tree, the entry-point test needs it installed.
"""

from __future__ import annotations

import errno
import os
import stat
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest

import holoclone_copy_file_range as plugin
from holoclone_venv.errors import Unsupported
from holoclone_venv.plugins import Plugins
from holoclone_venv.materialize.linking import Linker, builtin_methods

MTIME = 315532800  # the store's fixed source mtime (1980-01-01)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "object"
    path.write_bytes(os.urandom(3 << 20) + b"tail")  # several MB: more than one read/write block
    path.chmod(0o444)
    return path


def test_copies_bytes_mode_and_mtime_relative_to_dir_fd(tmp_path, source):
    target_dir = tmp_path / "env"
    target_dir.mkdir()
    dir_fd = os.open(target_dir, os.O_RDONLY)
    try:
        plugin.copy_file_range_link(str(source), "module.py", dir_fd, 0o644, MTIME)
    finally:
        os.close(dir_fd)
    made = target_dir / "module.py"
    assert made.read_bytes() == source.read_bytes()
    info = made.stat()
    assert stat.S_IMODE(info.st_mode) == 0o644 & ~_umask()
    assert info.st_mtime == MTIME
    assert info.st_ino != source.stat().st_ino  # a new file, never the store object itself


def test_empty_file_and_absolute_target(tmp_path):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    target = tmp_path / "copy"
    plugin.copy_file_range_link(str(empty), str(target), None, 0o755, None)
    assert target.read_bytes() == b""
    assert stat.S_IMODE(target.stat().st_mode) == 0o755 & ~_umask()


def test_an_existing_target_is_an_error_and_left_untouched(tmp_path, source):
    target = tmp_path / "taken"
    target.write_bytes(b"mine")
    with pytest.raises(FileExistsError):
        plugin.copy_file_range_link(str(source), str(target), None, 0o644, None)
    assert target.read_bytes() == b"mine"


def test_cross_filesystem_refusal_is_unsupported_and_leaves_no_target(tmp_path):
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs a second filesystem (/dev/shm) beside tmp_path")
    src = shm / f"holoclone-cfr-{os.getpid()}"
    src.write_bytes(b"x" * 10000)
    try:
        try:
            plugin.copy_file_range_link(str(src), str(tmp_path / "t"), None, 0o644, None)
        except Unsupported as error:
            assert error.errno in plugin.FALLBACK_ERRNOS
            assert not (tmp_path / "t").exists()
        else:  # a kernel that copies across filesystems: then the copy must be complete
            assert (tmp_path / "t").read_bytes() == src.read_bytes()
    finally:
        src.unlink()


def test_without_copy_file_range_the_strategy_falls_back_to_copy(tmp_path, source, monkeypatch):
    # Stand-in for a platform without the call (macOS, Windows): the attribute is absent there.
    monkeypatch.delattr(os, "copy_file_range", raising=False)
    strategy = plugin.holoclone_strategies(builtin_methods(None))[0]
    linker = Linker()
    used = linker.link(strategy.methods, (str(tmp_path), str(tmp_path)), str(source), str(tmp_path / "t"), None, 0o644, None)
    assert used.name == "copy"
    assert (tmp_path / "t").read_bytes() == source.read_bytes()
    [fallback] = linker.fallbacks
    assert (fallback.method, fallback.to, fallback.errno) == ("copy-file-range", "copy", errno.ENOSYS)
    assert "not available" in fallback.reason


def test_strategy_counts_as_copied_and_never_shares_inodes():
    [strategy] = plugin.holoclone_strategies(builtin_methods(None))
    assert strategy.name == "copy-file-range"
    assert [m.name for m in strategy.methods] == ["copy-file-range", "copy"]
    assert all(m.counts_as == "copied" and not m.shares_inode for m in strategy.methods)


def test_registered_as_a_plugin_the_strategy_is_offered():
    plugins = Plugins(load_external=False)
    assert plugins.register(plugin, "copy-file-range", "holoclone-copy-file-range")
    assert "copy-file-range" in plugins.strategies(builtin_methods(None))


def test_installed_distribution_registers_the_entry_point():
    try:
        dist = distribution("holoclone-copy-file-range")
    except PackageNotFoundError:
        pytest.skip("holoclone-copy-file-range is not installed (pip install plugins/holoclone-copy-file-range)")
    assert [(ep.group, ep.name) for ep in dist.entry_points] == [("holoclone", "copy-file-range")]
    plugins = Plugins()
    assert plugins.broken == []
    assert "copy-file-range" in plugins.strategies(builtin_methods(None))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
