"""Stand-ins for the C libraries the macOS and Windows backends load through ctypes, for tests on Linux.

A :class:`FakeFunction` refuses a call before its prototype (``argtypes``, ``restype``) is declared and
checks each argument as ctypes would, so a backend that forgets a prototype fails here as it would on
the real platform.  :class:`FakeLibSystem` does on real Linux files what macOS's clonefile,
fclonefileat and statfs would (files, directories and symlinks, with the errno macOS sets).  The
Windows kernel32 stand-in builds on :class:`FakeLibrary` in its own test module.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import stat

import pytest

from holoclone_venv.platforms import darwin

UNSET = object()
_utime = os.utime  # the stand-in's own, untouched by tests that make utime fail
AT_FDCWD = -2  # Darwin's value (-100 on Linux)


class FakeFunction:
    """One foreign function: refuses calls before its prototype is declared, then asks its library."""

    def __init__(self, lib: FakeLibrary, name: str) -> None:
        self.lib, self.name = lib, name
        self.argtypes = None
        self.restype = UNSET

    def __call__(self, *args):
        assert self.argtypes is not None and self.restype is not UNSET, f"{self.name} called undeclared"
        assert len(args) == len(self.argtypes), f"{self.name}: {len(args)} arguments"
        for value, argtype in zip(args, self.argtypes):
            argtype.from_param(value)  # raises TypeError where ctypes would
        return self.lib.invoke(self.name, args)


class FakeLibrary:
    """A loaded library: its functions as attributes (a missing one raises AttributeError, as ctypes
    does); a call runs the method named ``_<function>`` (``$`` spelled ``_``)."""

    def __init__(self, names, missing=()) -> None:
        self._functions = {name: FakeFunction(self, name) for name in names if name not in missing}

    def __getattr__(self, name):
        try:
            return self.__dict__["_functions"][name]
        except KeyError:
            raise AttributeError(name) from None

    def functions(self) -> dict:
        return self._functions

    def invoke(self, name: str, args: tuple):
        return getattr(self, "_" + name.replace("$", "_"))(*args)


class FakeLibSystem(FakeLibrary):
    """clonefile (of files, directories and symlinks), fclonefileat and statfs, doing on Linux what macOS
    would.  Every call is recorded in ``calls``; ``fail`` makes every call fail with that errno;
    ``fstypename`` is what statfs reports (None: statfs fails with ENOENT)."""

    def __init__(self, missing=(), fail: int | None = None, fstypename: bytes | None = b"apfs") -> None:
        super().__init__(("clonefile", "fclonefileat", "statfs", "statfs$INODE64"), missing)
        self.calls: list[tuple[str, tuple]] = []
        self.fail = fail
        self.fstypename = fstypename

    def invoke(self, name: str, args: tuple):
        self.calls.append((name, args))
        if self.fail is not None:
            ctypes.set_errno(self.fail)
            return -1
        return super().invoke(name, args)

    @staticmethod
    def _clone(src_fd: int, target: bytes, dir_fd: int | None) -> int:
        try:
            dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=dir_fd)
        except OSError as error:
            ctypes.set_errno(error.errno)
            return -1
        info = os.fstat(src_fd)
        os.write(dst, os.pread(src_fd, info.st_size, 0))
        # An APFS clone keeps the source's mode and timestamps.
        os.fchmod(dst, stat.S_IMODE(info.st_mode))
        _utime(dst, ns=(info.st_atime_ns, info.st_mtime_ns))
        os.close(dst)
        return 0

    def _clonefile(self, source: bytes, target: bytes, flags: int) -> int:
        if os.path.lexists(target):
            ctypes.set_errno(errno.EEXIST)
            return -1
        try:
            info = os.lstat(source)
            if stat.S_ISLNK(info.st_mode):
                assert flags & darwin.CLONE_NOFOLLOW, "clonefile would have followed the symlink"
                os.symlink(os.readlink(source), target)
                return 0
            if stat.S_ISDIR(info.st_mode):
                # Atomic, as APFS makes it: build aside, then appear at once.
                aside = target + b".fake-partial"
                shutil.copytree(source, aside, symlinks=True)
                os.rename(aside, target)
                return 0
            src = os.open(source, os.O_RDONLY)
        except OSError as error:
            ctypes.set_errno(error.errno)
            return -1
        try:
            return self._clone(src, target, None)
        finally:
            os.close(src)

    def _fclonefileat(self, src_fd: int, dir_fd: int, target: bytes, flags: int) -> int:
        return self._clone(src_fd, target, None if dir_fd == AT_FDCWD else dir_fd)

    def _statfs(self, path: bytes, buf) -> int:
        if self.fstypename is None:
            ctypes.set_errno(errno.ENOENT)
            return -1
        buf._obj.f_fstypename = self.fstypename
        return 0

    _statfs_INODE64 = _statfs


@pytest.fixture
def libsystem(monkeypatch):
    """Install a stand-in libSystem; ``libsystem(**options)`` replaces it with another."""

    def install(**options) -> FakeLibSystem:
        lib = FakeLibSystem(**options)
        monkeypatch.setattr(darwin, "_open_library", lambda: lib)
        monkeypatch.setattr(darwin, "_library", None)
        return lib

    install.default = install()
    return install
