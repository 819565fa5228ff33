"""Link methods, strategies, and the small state machine that falls back between them.

A :class:`LinkMethod` puts one store object at one place in an environment.
A :class:`Strategy` is an ordered tuple of methods to try.  The
:class:`Linker` remembers, per (store, target directory) pair, which methods
proved unsupported (decided by trying, never by guessing from device numbers)
and records why, so the report can name the real reason for a fallback.

Built-in methods: ``reflink`` (the platform's clone backend), ``hardlink``,
``copy``.  Built-in strategies are registered through the same hook third
parties use (:func:`holoclone_strategies` below).
"""

from __future__ import annotations

import errno
import os
import threading
from typing import Callable, Mapping, Optional

from ..errors import UNSUPPORTED_ERRNOS, MaterializeError, StrictModeError, Unsupported, os_error
# Defined with the hooks that hand them to plugins (holoclone_venv.api re-exports them).
from ..hookspecs import LinkFunction, LinkMethod, OpenLinkFunction, Strategy  # noqa: F401
from ..report import Fallback


def hardlink(source: str, target: str, dir_fd: int | None, mode: int, mtime: int | None) -> None:
    """Hardlink the object; mode and mtime are the object's (0444/0555, ``FIXED_MTIME``)."""
    try:
        os.link(source, target, dst_dir_fd=dir_fd)
    except OSError as error:
        if error.errno in UNSUPPORTED_ERRNOS:
            raise Unsupported(f"hardlink failed: {error.strerror}", error.errno) from None
        raise


def copy(source: str, target: str, dir_fd: int | None, mode: int, mtime: int | None) -> None:
    """Copy the bytes into a new file: always works where the target is writable."""
    src = os.open(source, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode, dir_fd=dir_fd)
        try:
            while True:
                block = os.read(src, 1 << 20)
                if not block:
                    break
                view = memoryview(block)
                while view:
                    view = view[os.write(dst, view) :]
            if mtime is not None and _UTIME_FD:
                os.utime(dst, (mtime, mtime))
        except BaseException:
            os.close(dst)
            _unlink(target, dir_fd)
            raise
        os.close(dst)
        if mtime is not None and not _UTIME_FD:
            # Windows cannot set times through a descriptor: set them by name once closed.
            try:
                os.utime(target, (mtime, mtime), dir_fd=dir_fd)
            except BaseException:
                _unlink(target, dir_fd)
                raise
    finally:
        os.close(src)


_UTIME_FD = os.utime in os.supports_fd


def _unlink(target: str, dir_fd: int | None) -> None:
    try:
        os.unlink(target, dir_fd=dir_fd)
    except OSError:
        pass


HARDLINK = LinkMethod("hardlink", hardlink, counts_as="hardlinked", shares_inode=True, same_filesystem=True)
COPY = LinkMethod("copy", copy, counts_as="copied")


def builtin_methods(clone: LinkFunction | None, native_copy: LinkFunction | None = None,
                    clone_open: OpenLinkFunction | None = None) -> dict[str, LinkMethod]:
    """The built-in methods: ``reflink`` through the clone backend (failing as unsupported
    without one), ``hardlink``, and ``copy`` (the platform's native copy where it has one)."""
    methods = {"hardlink": HARDLINK, "copy": COPY if native_copy is None else LinkMethod("copy", native_copy)}
    if clone is not None:
        methods["reflink"] = LinkMethod("reflink", clone, counts_as="reflinked", same_filesystem=True,
                                        link_open=clone_open)
    else:
        methods["reflink"] = LinkMethod("reflink", _no_clone, counts_as="reflinked", same_filesystem=True)
    return methods


def _no_clone(source: str, target: str, dir_fd: int | None, mode: int, mtime: int | None) -> None:
    raise Unsupported("no clone backend for this platform is installed")


def builtin_strategies(methods: Mapping[str, LinkMethod]) -> list[Strategy]:
    """``smart``, ``reflink``, ``hardlink``, ``copy`` and ``snapshot`` built from ``methods``."""
    from ..settings import BUILTIN_STRATEGIES as described

    r, h, c = methods["reflink"], methods["hardlink"], methods["copy"]
    return [
        Strategy("smart", (r, h, c), described["smart"]),
        Strategy("reflink", (r, c), described["reflink"]),
        Strategy("hardlink", (h, c), described["hardlink"]),
        Strategy("copy", (c,), described["copy"]),
        Strategy("snapshot", (r, h, c), described["snapshot"], whole_tree=True),
    ]


_STATE_LOCK = threading.Lock()
#: What a Linker found out (:meth:`Linker.learned`): fallbacks (as :meth:`Fallback.fields`), disabled
#: method names per pair, and the (pair, method name) that worked.
Learned = tuple[list[tuple], dict[tuple[str, str], set[str]], set[tuple[tuple[str, str], str]]]



class Linker:
    """Tries a strategy's methods per file and remembers what does not work where.

    A method that fails on the first file of a pair is disabled for that pair
    for the rest of the run (one system call wasted, not thousands).  A method
    that worked before and fails for one file (too many links on one inode,
    say) falls back for that file only.  With ``strict`` any fallback raises
    :class:`StrictModeError`.

    ``methods`` are every method the run may use.  ``reseed(source)`` replaces
    a source that can be shared no more (EMLINK: an inode at its link limit, a
    ReFS region at 8,175 references) by a fresh copy, and returns True when it
    did, so the method is retried.
    """

    def __init__(self, strict: bool = False, methods: tuple[LinkMethod, ...] = (),
                 fallbacks: list[Fallback] | None = None, reseed: Optional[Callable[[str], bool]] = None,
                 disabled: dict[tuple[str, str], set[str]] | None = None,
                 worked: set[tuple[tuple[str, str], str]] | None = None) -> None:
        self.strict = strict
        self.methods = methods
        self.fallbacks: list[Fallback] = [] if fallbacks is None else fallbacks
        self.reseed = reseed
        self._disabled = {} if disabled is None else disabled
        self._worked = set() if worked is None else worked

    def settled(self, chain: tuple[LinkMethod, ...], pair: tuple[str, str]) -> LinkMethod | None:
        """The method of ``chain`` that has already worked for ``pair`` and is first in line, if any.

        The materializer calls it directly and comes to :meth:`link` only when it
        fails, so the per-file cost of the bookkeeping is paid once per pair.
        """
        disabled = self._disabled.get(pair)
        for method in chain:
            if disabled and method.name in disabled:
                continue
            return method if (pair, method.name) in self._worked else None
        return None

    def link(
        self, chain: tuple[LinkMethod, ...], pair: tuple[str, str], source: str, target: str,
        dir_fd: int | None, mode: int, mtime: int | None, where: str = "",
    ) -> LinkMethod:
        """Put ``source`` at ``target`` with the first method of ``chain`` that works; return it.

        ``pair`` is (store objects dir, install root): the unit for which a
        failed method is remembered.  ``where`` is the target's directory, for
        messages (``target`` may be a bare name relative to ``dir_fd``).
        """
        where = where or pair[1]
        disabled = self._disabled.get(pair)
        last: Unsupported | None = None
        for index, method in enumerate(chain):
            if disabled and method.name in disabled:
                continue
            try:
                try:
                    method.link(source, target, dir_fd, mode, mtime)
                except Unsupported as error:
                    if error.errno != errno.EMLINK or self.reseed is None or not self.reseed(source):
                        raise
                    method.link(source, target, dir_fd, mode, mtime)  # once more, from the fresh object
            except Unsupported as error:
                last = error
                self._give_up(chain, index, pair, method, error, os.path.join(where, os.path.basename(target)))
                disabled = self._disabled.get(pair)
                continue
            except OSError as error:
                raise _materialize_error(error, os.path.join(where, os.path.basename(target)), pair[0]) from None
            if (pair, method.name) not in self._worked:
                self._worked.add((pair, method.name))
            return method
        raise MaterializeError(
            f"no link method could write {os.path.join(where, os.path.basename(target))}: "
            f"{last.reason if last else 'none left'}."
        )

    def record_fallback(self, fallback: Fallback) -> None:
        """Record a fallback decided outside the per-file loop (a whole-tree clone that could not be made)."""
        with _STATE_LOCK:
            self.fallbacks.append(fallback)

    def apart(self) -> Linker:
        """A copy for a forked worker, knowing what this one knows but with no fallbacks yet:
        what it learns comes back through :meth:`learned` and :meth:`merge`."""
        return Linker(self.strict, self.methods, [], self.reseed,
                      {pair: set(names) for pair, names in self._disabled.items()}, set(self._worked))

    def learned(self) -> Learned:
        """What this Linker found out, in plain values: its fallbacks, the methods it disabled and
        those that worked."""
        return [fallback.fields() for fallback in self.fallbacks], self._disabled, self._worked

    def merge(self, learned: Learned) -> None:
        """Take in what a worker's Linker (:meth:`apart`) :meth:`learned`, as if it had been learned here."""
        fallbacks, disabled, worked = learned
        self._worked |= worked
        for pair, names in disabled.items():
            self._disabled.setdefault(pair, set()).update(n for n in names if (pair, n) not in self._worked)
        for fallback in (Fallback(*fields) for fields in fallbacks):
            key = (fallback.method, fallback.source_dir, fallback.target_dir)
            same = next((f for f in self.fallbacks if (f.method, f.source_dir, f.target_dir) == key), None)
            if same is None:
                self.fallbacks.append(fallback)
            else:
                same.files += fallback.files

    def _give_up(self, chain, index, pair, method, error: Unsupported, path: str) -> None:
        with _STATE_LOCK:  # materializing threads share this state; it only changes on failures
            self._record_give_up(chain, index, pair, method, error, path)

    def _record_give_up(self, chain, index, pair, method, error: Unsupported, path: str) -> None:
        disabled = self._disabled.setdefault(pair, set())
        # Across filesystems no method that needs one filesystem can work: skip them all
        # at once, so the user reads one fallback with its real cause, not one per method.
        cross_device = error.errno == errno.EXDEV
        skipped = {m.name for m in (*chain, *self.methods) if cross_device and m.same_filesystem}
        following = next((m.name for m in chain[index + 1 :] if m.name not in disabled | skipped), "nothing")
        if self.strict:
            raise StrictModeError(
                f"{method.name} failed for {path} ({error.reason}) and --holoclone-strict "
                f"forbids falling back to {following}.",
                "Put the store and the environment on one filesystem that supports it, or drop --holoclone-strict.",
            )
        # EAGAIN says "not this file, not now" (ZFS refuses to clone blocks of its open transaction
        # group, and no sync a user may call waits for it): the next file may well clone.
        if (pair, method.name) not in self._worked and error.errno != errno.EAGAIN:
            disabled.add(method.name)
            disabled |= skipped
        for fallback in self.fallbacks:
            if fallback.method == method.name and (fallback.source_dir, fallback.target_dir) == pair:
                fallback.files += 1
                return
        # What the strategy uses next, not what this one file's chain does (bytecode skips
        # hardlinks): the report must read the same whichever file failed first.
        names = [m.name for m in self.methods]
        after = names[names.index(method.name) + 1 :] if method.name in names else [following]
        instead = next((name for name in after if name not in disabled | skipped), following)
        self.fallbacks.append(Fallback(method.name, instead, error.reason, error.errno, pair[0], pair[1], 1))


def _materialize_error(error: OSError, path: str, objects: str) -> MaterializeError:
    if error.errno == errno.ENOENT and str(error.filename or "").startswith(objects):
        return MaterializeError(
            f"store object {error.filename} vanished while writing {path}.",
            "Another process removed it (gc?); run again.",
        )
    return os_error(error, f"writing {path}", error_class=MaterializeError)  # type: ignore[return-value]
