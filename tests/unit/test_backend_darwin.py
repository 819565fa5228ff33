"""The macOS clonefile backend, run here against a recording stand-in for libSystem.

No Darwin kernel is available, so the stand-in plays its part: it checks
every call against the declared ``argtypes`` exactly as ctypes would,
records the calls, and either fails with a scripted errno or makes a real
file in ``tmp_path`` that, like an APFS clone, carries the source's data,
mode and timestamps.  Everything after the library call (chmod, utime,
clean-up) runs for real.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import subprocess
import sys
import threading

import pluggy
import pytest

from holoclone_venv import hookspecs
from holoclone_venv.errors import Unsupported
from holoclone_venv.platforms import base, darwin


FIXED_MTIME = 315532800  # 1980-01-01, what the store gives sources


@pytest.fixture
def store_object(tmp_path):
    """A read-only store object with an old mtime, like the store keeps."""
    path = tmp_path / "objects" / "ab" / "cdef"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"print('hello')\n" * 100)
    os.chmod(path, 0o444)
    os.utime(path, (1_000_000_000, 1_000_000_000))
    return path


@pytest.fixture
def env_dir(tmp_path):
    path = tmp_path / "env" / "site-packages"
    path.mkdir(parents=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    yield path, fd
    os.close(fd)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_module_imports_without_libsystem():
    # Loading the library at import would fail here: there is no libSystem on Linux.
    code = "import holoclone_venv.platforms.darwin as d; assert d._library is None"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_registers_as_the_clone_backend_plugin():
    pm = pluggy.PluginManager("holoclone")
    pm.add_hookspecs(hookspecs)
    pm.register(darwin.PLUGIN, name="platform")
    backend = pm.hook.holoclone_clone_backend()
    assert backend == hookspecs.CloneBackend("darwin-clonefile", darwin.clonefile)


def test_at_fdcwd_is_gone():
    assert not hasattr(darwin, "AT_FDCWD") and not hasattr(darwin, "CLONE_UNSUPPORTED")


@pytest.fixture
def umask_calls(monkeypatch):
    """Forget the remembered umask and record every os.umask call, with the thread making it."""
    monkeypatch.setattr(base, "_umask", None)
    calls = []
    real = os.umask

    def recording(mask):
        calls.append(threading.current_thread() is threading.main_thread())
        return real(mask)

    monkeypatch.setattr(os, "umask", recording)
    return calls


def test_umask_is_read_once_on_the_main_thread_when_the_backend_is_made(libsystem, store_object, env_dir,
                                                                          umask_calls):
    # D2: setting the umask from a worker would give files made meanwhile by other threads 022.
    darwin.PLUGIN.holoclone_clone_backend()
    assert umask_calls and all(umask_calls)
    made_by_main = len(umask_calls)
    errors = []

    def worker(name):
        try:
            darwin.clonefile(str(store_object), name, env_dir[1], 0o664, None)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(f"m{i}.py",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(umask_calls) == made_by_main  # no worker touched the umask
    for i in range(4):
        assert stat.S_IMODE((env_dir[0] / f"m{i}.py").stat().st_mode) == 0o664 & ~_umask()


def test_fsync_each_flushes_every_path_and_skips_vanished_ones(tmp_path, monkeypatch):
    # What darwin's (and other platforms') make_durable is.
    flushed = []
    monkeypatch.setattr(os, "fsync", lambda fd: flushed.append(os.fstat(fd).st_ino))
    for name in ("a", "b"):
        (tmp_path / name).write_bytes(name.encode())
    base.fsync_each(str(tmp_path), [str(tmp_path / "a"), str(tmp_path / "gone"), str(tmp_path / "b")])
    assert flushed == [(tmp_path / "a").stat().st_ino, (tmp_path / "b").stat().st_ino]


def test_clone_in_a_directory_uses_fclonefileat_and_sets_mode_and_mtime(libsystem, store_object, env_dir):
    lib = libsystem.default
    directory, dir_fd = env_dir
    darwin.clonefile(str(store_object), "mod.py", dir_fd, 0o644, FIXED_MTIME)

    [(name, (src_fd, at, target, flags))] = lib.calls
    assert name == "fclonefileat"
    assert isinstance(src_fd, int) and at == dir_fd and target == b"mod.py"
    assert flags == darwin.CLONE_NOFOLLOW | darwin.CLONE_NOOWNERCOPY == 0x3
    made = directory / "mod.py"
    assert made.read_bytes() == store_object.read_bytes()
    info = made.stat()
    # Not the 0444 and the old time the clone carried over from the store object.
    assert stat.S_IMODE(info.st_mode) == 0o644 & ~_umask()
    assert info.st_mtime == FIXED_MTIME
    # The source descriptor was closed again.
    with pytest.raises(OSError):
        os.fstat(src_fd)


def test_clone_to_a_full_path_uses_clonefile(libsystem, store_object, env_dir):
    lib = libsystem.default
    directory, _ = env_dir
    target = directory / "tool"
    darwin.clonefile(str(store_object), str(target), None, 0o755, None)

    assert lib.calls == [("clonefile", (os.fsencode(store_object), os.fsencode(target), 0x3))]
    assert stat.S_IMODE(target.stat().st_mode) == 0o755 & ~_umask()


def test_every_function_has_its_prototype_declared(libsystem, store_object, env_dir):
    lib = libsystem.default
    darwin.clonefile(str(store_object), "x", env_dir[1], 0o644, None)
    darwin.filesystem_name(str(store_object))
    functions = lib.functions()
    assert functions["clonefile"].argtypes == [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint32]
    assert functions["fclonefileat"].argtypes == [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    for function in functions.values():
        assert function.restype is ctypes.c_int, function.name
        assert function.argtypes is not None, function.name


@pytest.mark.parametrize("code", ["ENOTSUP", "EXDEV", "EINVAL", "ENOTTY", "EPERM", "EACCES", "ENOSYS"])
def test_cannot_clone_here_falls_back(libsystem, store_object, env_dir, code):
    libsystem(fail=getattr(errno, code))
    with pytest.raises(Unsupported) as caught:
        darwin.clonefile(str(store_object), "mod.py", env_dir[1], 0o644, None)
    assert caught.value.errno == getattr(errno, code)
    assert os.listdir(env_dir[0]) == []


@pytest.mark.parametrize("code", ["ENOSPC", "EROFS", "EIO"])
def test_real_failures_are_errors_not_fallbacks(libsystem, store_object, env_dir, code):
    libsystem(fail=getattr(errno, code))
    with pytest.raises(OSError) as caught:
        darwin.clonefile(str(store_object), "mod.py", env_dir[1], 0o644, None)
    assert not isinstance(caught.value, Unsupported)
    assert caught.value.errno == getattr(errno, code)
    assert os.listdir(env_dir[0]) == []


def test_vanished_store_object_is_named_in_the_error(libsystem, store_object, env_dir):
    target = env_dir[0] / "mod.py"
    store_object.unlink()
    with pytest.raises(FileNotFoundError) as caught:
        darwin.clonefile(str(store_object), str(target), None, 0o644, None)
    assert caught.value.filename == str(store_object)


def test_existing_target_is_an_error_and_left_intact(libsystem, store_object, env_dir):
    directory, dir_fd = env_dir
    (directory / "mod.py").write_bytes(b"mine")
    with pytest.raises(FileExistsError):
        darwin.clonefile(str(store_object), "mod.py", dir_fd, 0o644, None)
    assert (directory / "mod.py").read_bytes() == b"mine"


def test_clone_is_removed_when_its_time_cannot_be_set(libsystem, store_object, env_dir, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(darwin.os, "utime", refuse)
    with pytest.raises(PermissionError):
        darwin.clonefile(str(store_object), "mod.py", env_dir[1], 0o644, FIXED_MTIME)
    assert os.listdir(env_dir[0]) == []


def test_macos_without_clonefile_falls_back(libsystem, store_object, env_dir):
    libsystem(missing=("clonefile", "fclonefileat"))
    with pytest.raises(Unsupported) as caught:
        darwin.clonefile(str(store_object), "mod.py", env_dir[1], 0o644, None)
    assert caught.value.errno == errno.ENOSYS
    assert os.listdir(env_dir[0]) == []


def test_unloadable_library_falls_back(monkeypatch, store_object, env_dir):
    def broken():
        raise OSError("dlopen(/usr/lib/libSystem.B.dylib): image not found")

    monkeypatch.setattr(darwin, "_open_library", broken)
    monkeypatch.setattr(darwin, "_library", None)
    with pytest.raises(Unsupported):
        darwin.clonefile(str(store_object), "mod.py", env_dir[1], 0o644, None)


def test_statfs_structure_matches_the_64_bit_inode_layout():
    assert ctypes.sizeof(darwin.Statfs) == 2168
    assert darwin.Statfs.f_fsid.offset == 48
    assert darwin.Statfs.f_type.offset == 60
    assert darwin.Statfs.f_fstypename.offset == 72
    assert darwin.Statfs.f_mntonname.offset == 88
    assert darwin.Statfs.f_flags_ext.offset == 2136


def test_filesystem_name_prefers_the_64_bit_inode_statfs(libsystem, tmp_path):
    assert darwin.filesystem_name(str(tmp_path)) == "apfs"
    assert [name for name, _ in libsystem.default.calls] == ["statfs$INODE64"]

    lib = libsystem(missing=("statfs$INODE64",), fstypename=b"hfs")
    assert darwin.filesystem_name(str(tmp_path)) == "hfs"
    assert lib.calls == [("statfs", (os.fsencode(tmp_path), lib.calls[0][1][1]))]


def test_filesystem_name_is_none_when_statfs_fails(libsystem, tmp_path):
    libsystem(fail=errno.ENOENT)
    assert darwin.filesystem_name(str(tmp_path / "gone")) is None
