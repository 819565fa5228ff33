"""macOS: clones through ``clonefile(2)`` / ``fclonefileat(2)`` from libSystem (APFS, macOS 10.12+).

Chosen by ``platforms/__init__.py`` on macOS; its :data:`PLUGIN` is the
platform plugin.  The library is loaded on first use, never at import, so
this module imports on any platform.  Every foreign function has its
``argtypes`` and ``restype`` declared before it is called.

One clone per file on the per-file path; :data:`TREE` clones a whole
template directory in one call (APFS serializes metadata calls, so per-file
clones top out at a few thousand files a second whatever the thread count).
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import threading

from ..errors import UNSUPPORTED_ERRNOS, Unsupported
from .base import PlatformPlugin, TreeCloner, process_umask, remove_tree

LIBSYSTEM = "/usr/lib/libSystem.B.dylib"
CLONE_NOFOLLOW = 0x1
CLONE_NOOWNERCOPY = 0x2
#: Never follow a symlink at the source; the clone belongs to the user making
#: it, not to the owner of the store object.
CLONE_FLAGS = CLONE_NOFOLLOW | CLONE_NOOWNERCOPY

MFSTYPENAMELEN = 16
MAXPATHLEN = 1024


class Statfs(ctypes.Structure):
    """``struct statfs`` with 64-bit inodes (the only layout on arm64, ``statfs$INODE64`` on x86_64)."""

    _fields_ = [
        ("f_bsize", ctypes.c_uint32),
        ("f_iosize", ctypes.c_int32),
        ("f_blocks", ctypes.c_uint64),
        ("f_bfree", ctypes.c_uint64),
        ("f_bavail", ctypes.c_uint64),
        ("f_files", ctypes.c_uint64),
        ("f_ffree", ctypes.c_uint64),
        ("f_fsid", ctypes.c_int32 * 2),
        ("f_owner", ctypes.c_uint32),
        ("f_type", ctypes.c_uint32),
        ("f_flags", ctypes.c_uint32),
        ("f_fssubtype", ctypes.c_uint32),
        ("f_fstypename", ctypes.c_char * MFSTYPENAMELEN),
        ("f_mntonname", ctypes.c_char * MAXPATHLEN),
        ("f_mntfromname", ctypes.c_char * MAXPATHLEN),
        ("f_flags_ext", ctypes.c_uint32),
        ("f_reserved", ctypes.c_uint32 * 7),
    ]


def _open_library() -> ctypes.CDLL:
    """Load libSystem (errno kept by ctypes for ``ctypes.get_errno``)."""
    return ctypes.CDLL(LIBSYSTEM, use_errno=True)


_lock = threading.Lock()
_library: ctypes.CDLL | None = None


def _declare(lib: ctypes.CDLL) -> None:
    """Declare the prototypes; a function missing from an old libSystem is simply left undeclared."""
    prototypes = {
        "clonefile": ([ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint32], ctypes.c_int),
        "fclonefileat": ([ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32], ctypes.c_int),
        "statfs": ([ctypes.c_char_p, ctypes.POINTER(Statfs)], ctypes.c_int),
        "statfs$INODE64": ([ctypes.c_char_p, ctypes.POINTER(Statfs)], ctypes.c_int),
    }
    for name, (argtypes, restype) in prototypes.items():
        # getattr, not lib[name]: only attribute access caches the function
        # object, so prototypes set on an indexed one would be lost.
        function = getattr(lib, name, None)
        if function is None:
            continue
        function.argtypes = argtypes
        function.restype = restype


def _libsystem() -> ctypes.CDLL:
    global _library
    with _lock:
        if _library is None:
            lib = _open_library()
            _declare(lib)
            _library = lib
        return _library


def _function(name: str):
    """``name`` from libSystem, or :class:`Unsupported` when this macOS lacks it (before 10.12)."""
    try:
        return getattr(_libsystem(), name)
    except (OSError, AttributeError) as error:
        raise Unsupported(f"{name} is not available on this system ({error})", errno.ENOSYS) from None


def clonefile(source: str, target: str, dir_fd: int | None, mode: int, mtime: int | None) -> None:
    """Create ``target`` as an APFS clone of ``source`` (the :data:`~holoclone_venv.hookspecs.LinkFunction` contract).

    With ``dir_fd`` the clone is made with ``fclonefileat`` relative to it,
    otherwise with ``clonefile``.  Raises :class:`Unsupported` when the volume
    or the pair of volumes cannot clone (no target then exists), and
    ``OSError`` for real failures (``EEXIST`` with the existing file left
    alone, ``ENOSPC``, ``EROFS``).  A clone that succeeded but whose mode or
    time cannot be set is removed before the error is raised.  Without
    ``mtime`` the clone keeps the store object's timestamps.
    """
    name = os.fsencode(target)
    if dir_fd is None:
        call = _function("clonefile")
        result = call(os.fsencode(source), name, CLONE_FLAGS)
    else:
        call = _function("fclonefileat")
        src = os.open(source, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            result = call(src, dir_fd, name, CLONE_FLAGS)
        finally:
            os.close(src)
    if result != 0:
        # A failed clone creates nothing, and on EEXIST the file there is not
        # ours: nothing to remove.
        code = ctypes.get_errno()
        if code in UNSUPPORTED_ERRNOS:
            raise Unsupported(f"clonefile failed: [Errno {code}] {os.strerror(code)}", code)
        # ENOENT names the source: the materializer made the target's
        # directory, so a missing file is a store object that vanished.
        raise OSError(code, os.strerror(code), source if code == errno.ENOENT else target)
    try:
        # The clone carries the source's metadata: the store object's
        # read-only mode (0444/0555) and its timestamps.  Set what the
        # environment wants instead, as a fresh file would have.
        # A clone is not created through open(2), so the kernel does not apply
        # the umask: apply it here, read once on the main thread (never from
        # this worker: reading the umask means setting it for the process).
        os.chmod(target, mode & ~process_umask() & 0o7777, dir_fd=dir_fd)
        if mtime is not None:
            os.utime(target, (mtime, mtime), dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(target, dir_fd=dir_fd)
        except OSError:
            pass
        raise


def filesystem_name(path: str) -> str | None:
    """statfs(2) ``f_fstypename`` of ``path`` (``apfs``, ``hfs``, ``smbfs``...), or None when unavailable."""
    try:
        lib = _libsystem()
        # x86_64: the plain symbol has the old 32-bit-inode layout; arm64 has only the new one.
        call = getattr(lib, "statfs$INODE64", None) or getattr(lib, "statfs")
    except (OSError, AttributeError):
        return None
    buf = Statfs()
    if call(os.fsencode(path), ctypes.byref(buf)) != 0:
        return None
    return buf.f_fstypename.decode("utf-8", "replace") or None


def prepare_template(path: str) -> None:
    """An empty directory at ``path``; :class:`Unsupported` when its volume is known not to be APFS."""
    parent = os.path.dirname(os.path.abspath(path))
    found = filesystem_name(parent)
    if found is not None and found != "apfs":
        raise Unsupported(f"{parent} is on {found}, not APFS: clonefile cannot clone a tree there", errno.ENOTSUP)
    os.mkdir(path)


def seal(path: str) -> None:
    """Make every file and folder of the template read-only (its owner's write bits cleared).

    APFS has no read-only subtree, and the template's files are written with
    the environment's modes (0644 and 0755 less the umask).  Without this an
    in-place edit of a template file would reach every environment cloned
    from it later.  A clone carries these modes (clonefile(2) copies mode and
    times); the caller gives the clone its write bits back.
    """
    for directory, folders, files in os.walk(path, topdown=False):
        for name in files + folders:
            _clear_write_bits(os.path.join(directory, name))
    _clear_write_bits(path)


def _clear_write_bits(path: str) -> None:
    info = os.lstat(path)
    if not stat.S_ISLNK(info.st_mode):  # a link's own mode means nothing, and chmod would follow it
        os.chmod(path, stat.S_IMODE(info.st_mode) & ~0o222)


def clone_tree(template: str, target: str) -> None:
    """``clonefile(template, target, CLONE_FLAGS)`` of a whole directory, in one atomic call.

    :class:`Unsupported` when the volume or the pair of volumes cannot
    (ENOTSUP, EXDEV...), ``FileExistsError`` when ``target`` exists (left
    alone), ``OSError`` otherwise; a failed clonefile creates nothing.
    """
    call = _function("clonefile")
    # CLONE_NOOWNERCOPY as for single files: the clone belongs to whoever makes it.
    if call(os.fsencode(template), os.fsencode(target), CLONE_FLAGS) != 0:
        code = ctypes.get_errno()
        if code in UNSUPPORTED_ERRNOS:
            raise Unsupported(f"clonefile of the tree {template} failed: [Errno {code}] {os.strerror(code)}", code)
        raise OSError(code, os.strerror(code), template if code == errno.ENOENT else target)


TREE = TreeCloner("darwin-clonefile", prepare_template, seal, clone_tree, remove_tree, in_smart=True,
                  clones_keep_seal=True)

PLUGIN = PlatformPlugin("darwin-clonefile", clonefile, filesystem_name, prepare=process_umask)

