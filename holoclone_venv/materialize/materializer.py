"""Put catalogs' files into an environment: link methods for shared files, ``envfiles`` for per-env ones.

Order matters for crash safety: package files first; the ``.dist-info`` is
assembled in a hidden staging folder (with console scripts written and
``RECORD`` last) and renamed into place at the end.  pip only sees a
distribution once its ``.dist-info`` exists, so a run killed half way never
leaves a package that looks installed but is not; a failing run removes every
file it wrote for the distribution.

The hot loop does a few system calls per file: one directory file descriptor
per directory (targets are created relative to it), then the link method;
directories are pulled by one worker per core (``materialize/workers.py``), the largest
first, and each worker makes the directories it pulls.  Objects are checked as
they are linked, not in a pass of their own: a reflink opens the object
anyway, so its check is the ``fstat`` of that descriptor (other methods
``lstat`` it).  A missing or changed object raises :class:`DamagedObject`
before anything is linked from it; the caller imports its wheel again.
"""

from __future__ import annotations

import errno
import os
import shutil
from itertools import chain, groupby
from typing import TYPE_CHECKING, Callable, Iterable, NamedTuple, Sequence

from . import record
from ..store.catalog import EXECUTABLE, FIXED_MTIME, HAS_BYTECODE, SHEBANG, Catalog, Entry
from .envfiles import write_console_scripts, write_metadata, write_shebang_script
from ..errors import DamagedObject, Unsupported
from ..fsutil import make_dir_below
from .linking import Linker
from ..report import Report
from .workers import run_pulled
from ..store import Store
from .uninstall import clear_the_way, discard, remove_distribution

if TYPE_CHECKING:
    from ..environment import Layout
    from ..policy import Policy

_USE_DIR_FD = os.open in os.supports_dir_fd and os.link in os.supports_dir_fd
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
#: An object is opened never through a symlink, and never waiting on a FIFO planted in its place.
_OBJECT_FLAGS = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
                 | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
#: Opening an object fails this way when it is gone or is a symlink: a damaged store, not a broken env.
_GONE = frozenset((errno.ENOENT, errno.ELOOP, errno.ENOTDIR))
#: Linking workers (``materialize/workers.py``): one per core (more measured slower), and none below
#: _PARALLEL_FROM files, where starting one costs more than it saves.
_WORKERS = min(8, os.cpu_count() or 1)
_PARALLEL_FROM = 512


class Materializer:
    """Materializes catalogs from one store with one policy, accumulating one report."""

    def __init__(self, store: Store, policy: Policy, report: Report, strict: bool = False) -> None:
        self.store = store
        self.policy = policy
        self.report = report
        self.linker = Linker(strict=strict, methods=(*policy.strategy.methods, policy.copy_method),
                             reseed=store.reseed_object)
        methods = policy.strategy.methods
        self._full = methods
        self._private = tuple(m for m in methods if not m.shares_inode) or (policy.copy_method,)
        self._copy = (policy.copy_method,)
        self._made_dirs: set[str] = set()

    def run(self, catalogs: Sequence[Catalog], layout: Layout) -> None:
        """Materialize ``catalogs`` into the environment described by ``layout``.

        Their files are linked in one pass, shared out to the workers together
        (a set of many small distributions keeps every core busy, and pays for
        one worker start); each ``.dist-info`` is renamed into place once
        everything is written.  Raises
        :class:`~holoclone_venv.errors.MaterializeError` (disk full,
        permissions), :class:`~holoclone_venv.errors.StrictModeError`; on any
        failure every file written for these distributions is removed again.
        """
        plans: list[_Plan] = []
        try:
            for catalog in catalogs:
                plans.append(self._prepare(catalog, layout))
            self._link_all([(plan.roots, plan.catalog.key, plan.entries) for plan in plans], layout.executable)
            for plan in plans:
                record_rows = self._write_scripts(plan.catalog, plan.roots, layout.executable)
                self._write_metadata(plan.catalog, plan.roots, record_rows, plan.staged_dist_info)
            for plan in plans:
                os.rename(plan.staged_dist_info, plan.dist_info_dir)
                os.rmdir(plan.staging)
        except BaseException:
            for plan in plans:
                shutil.rmtree(plan.staging, ignore_errors=True)
                shutil.rmtree(plan.dist_info_dir, ignore_errors=True)
                discard(plan.catalog, plan.roots)
            raise
        self.report.fallbacks = self.linker.fallbacks

    def _prepare(self, catalog: Catalog, layout: Layout) -> _Plan:
        """Make way for ``catalog`` (an earlier version, a killed run's leftovers); what to link, and where.

        The .dist-info is assembled beside site-packages' distributions, under a
        name no metadata scanner reads, and renamed into place last: pip never
        lists a half-made one.
        """
        roots = layout.scheme_dirs(catalog.name)
        root = roots[catalog.root]
        staging_name = f".{catalog.dist_info}.holoclone-staging"
        staging = os.path.join(root, staging_name)
        shutil.rmtree(staging, ignore_errors=True)  # left by a killed run
        self._remove_previous(catalog, root, layout.data)
        if clear_the_way(catalog, root):
            # Files of this distribution without its .dist-info: a run killed half way.
            discard(catalog, roots)
        prefix = catalog.dist_info + "/"
        entries = [
            e._replace(path=f"{staging_name}/{e.path}") if e.scheme == catalog.root and e.path.startswith(prefix) else e
            for e in catalog.entries
        ]
        return _Plan(catalog, roots, entries, staging, os.path.join(root, catalog.dist_info))

    def for_template(self) -> Materializer:
        """A materializer of the same store and policy for building a template (its own report)."""
        return Materializer(self.store, self.policy, Report(store=self.report.store, strategy=self.report.strategy),
                            strict=self.linker.strict)

    def finish_clone(self, catalog: Catalog, layout: Layout, planned: tuple[int, int] | None = None) -> None:
        """Complete ``catalog`` in an install root cloned whole from a template (``layout.purelib``).

        The clone holds the install root's files; this writes what lies outside
        it (scripts, ``.data`` scripts and data, headers) and what differs per
        environment (console scripts, RECORD).  ``planned`` (files, bytes inside
        the install root) marks ``catalog`` as a template plan's cut-down one.
        Only for a fresh clone: the caller removes the whole clone on failure.
        """
        roots = layout.scheme_dirs(catalog.name)
        inside = {layout.purelib, layout.platlib}
        outside = [e for e in catalog.entries if roots[e.scheme] not in inside]
        cut_down = planned is not None
        if planned is None:
            planned = len(catalog.entries) - len(outside), sum(e.size for e in catalog.entries if roots[e.scheme] in inside)
        self.report.counts["snapshotted"] = self.report.counts.get("snapshotted", 0) + planned[0]
        self.report.bytes += planned[1]
        self._link_all([(roots, catalog.key, outside)], layout.executable)
        record_rows = self._write_scripts(catalog, roots, layout.executable)
        info_dir = os.path.join(roots[catalog.root], catalog.dist_info)
        os.unlink(os.path.join(info_dir, "RECORD"))  # the template's: this environment's is written next
        whole = (lambda: self.store.require_catalog(catalog.key)) if cut_down else None
        self._write_metadata(catalog, roots, record_rows, info_dir, whole)
        self.report.fallbacks = self.linker.fallbacks

    def _link_all(self, parts: list[tuple[dict[str, str], str, list[Entry]]], executable: str) -> None:
        """Link every entry of ``parts``: each is (scheme roots, catalog key, entries), the entries of one
        directory next to each other (as catalogs keep them)."""
        groups: list[_Group] = []
        for roots, key, entries in parts:
            for (scheme, directory), group in groupby(entries, key=_directory_of):
                root = roots[scheme]
                self._mkdir(root)  # the workers make the directories below the install roots
                groups.append((root, directory, key, list(group)))
        files = sum(len(group[3]) for group in groups)
        workers = _WORKERS if files >= _PARALLEL_FROM else 1

        def work(share, forked: bool):
            if forked:  # this process's Linker learns apart; what it learned goes back with the result
                self.linker = self.linker.apart()
            linked = self._link_groups(chain.from_iterable(share), executable)
            return linked, self.linker.learned() if forked else None

        results: list = run_pulled(_by_directory(groups), workers, work)
        counts = self.report.counts
        for (found, size, generated), learned in results:
            if learned is not None:
                self.linker.merge(learned)
            for bucket, n in found.items():
                counts[bucket] = counts.get(bucket, 0) + n
            self.report.bytes += size
            self.report.generated += generated

    def _link_groups(self, groups: Iterable[_Group], executable: str) -> tuple[dict[str, int], int, int]:
        """Link the entries of some directories; returns (count per bucket, bytes, files written per env).

        The hot path (every file of every environment): per file, choose the chain, check the
        object (by the descriptor the link uses, where the method takes one), call the method
        that works for this pair, and use the Linker's bookkeeping only when it fails.
        Raises :class:`DamagedObject` (with the group's catalog key) for an object that fails the check.
        """
        tally: dict[str, int] = {}
        objects = str(self.store.objects)
        never_hardlink, always_copy = self.policy.never_hardlink, self.policy.always_copy
        link, settled = self.linker.link, self.linker.settled
        intact, object_path = self.store.intact, self.store.object_path
        full, private, copy, made = self._full, self._private, self._copy, self._made_dirs
        total = generated = 0
        for root, directory, key, group in groups:
            pair = (objects, root)
            target_dir = make_dir_below(root, directory, made) if directory else root
            dir_fd = os.open(target_dir, _DIR_FLAGS) if _USE_DIR_FD else None
            try:
                for entry in group:
                    flags = entry.flags
                    if flags & SHEBANG:
                        write_shebang_script(object_path(entry.digest, bool(flags & EXECUTABLE)),
                                             os.path.join(target_dir, entry.path.rpartition("/")[2]), executable)
                        generated += 1
                        continue
                    path, digest = entry.path, entry.digest
                    source = object_path(digest, bool(flags & EXECUTABLE))  # the store spells its own paths
                    name = path.rpartition("/")[2]
                    target = name if dir_fd is not None else os.path.join(target_dir, name)
                    mode = 0o755 if flags & EXECUTABLE else 0o644
                    mtime = FIXED_MTIME if flags & HAS_BYTECODE else None
                    # The rules are asked only where they change something: a hardlink, a copy rule.
                    chain = copy if always_copy and always_copy(path) else full
                    method = settled(chain, pair)
                    if method is not None and method.shares_inode and never_hardlink(path):
                        chain = private
                        method = settled(chain, pair)
                    link_open = method.link_open if method is not None else None
                    try:
                        fd = os.open(source, _OBJECT_FLAGS) if link_open is not None else None
                        st = os.fstat(fd) if fd is not None else os.lstat(source)
                    except OSError as error:
                        if error.errno in _GONE:
                            raise DamagedObject(source, key) from None
                        raise
                    try:
                        if not intact(st, entry.size):
                            raise DamagedObject(source, key)
                        try:
                            if method is None:
                                raise Unsupported("not settled yet")
                            if link_open is not None and fd is not None:  # one without the other: never
                                link_open(fd, entry.size, target, dir_fd, mode, mtime)
                            else:
                                method.link(source, target, dir_fd, mode, mtime)
                        except (Unsupported, OSError):
                            if chain is full and never_hardlink(path):  # falling back must keep the rules too
                                chain = private
                            # The Linker tries the chain, records why a method gave up, or raises one clear error.
                            method = link(chain, pair, source, target, dir_fd, mode, mtime, target_dir)
                    finally:
                        if fd is not None:
                            os.close(fd)
                    tally[method.counts_as] = tally.get(method.counts_as, 0) + 1
                    total += entry.size
            finally:
                if dir_fd is not None:
                    os.close(dir_fd)
        return tally, total, generated

    def _mkdir(self, path: str) -> None:
        """Make an install root (site-packages, bin...) and its parents."""
        if path not in self._made_dirs:
            os.makedirs(path, exist_ok=True)
            self._made_dirs.add(path)

    def _write_scripts(self, catalog: Catalog, roots: dict[str, str], executable: str) -> list[record.Row]:
        if not catalog.scripts:
            return []
        self._mkdir(roots["scripts"])
        rows = write_console_scripts(catalog, roots, executable)
        self.report.generated += len(rows)
        return rows

    def _write_metadata(self, catalog: Catalog, roots: dict[str, str], extra_rows: list[record.Row], info_dir: str,
                        whole: Callable[[], Catalog] | None = None) -> None:
        """INSTALLER and RECORD into ``info_dir`` (see :func:`~holoclone_venv.materialize.envfiles.write_metadata`);
        RECORD's shared rows are cloned by a method that never shares the inode."""
        pair = (str(self.store.objects), roots[catalog.root])

        def clone(source: str, target: str) -> None:
            self.linker.link(self._private, pair, source, target, None, 0o644, None, info_dir)

        write_metadata(self.store, catalog, roots, extra_rows, info_dir, clone, whole)
        self.report.generated += 2

    def _remove_previous(self, catalog: Catalog, root: str, env_dir: str) -> None:
        """Uninstall an earlier version of the same distribution, as an installer would."""
        remove_distribution(catalog.name, root, env_dir)


class _Plan(NamedTuple):
    """A catalog made ready to link: its scheme roots, its entries (the .dist-info's staged), the
    staging folder and the .dist-info's final place."""

    catalog: Catalog
    roots: dict[str, str]
    entries: list[Entry]
    staging: str
    dist_info_dir: str

    @property
    def staged_dist_info(self) -> str:
        """Where the .dist-info is assembled before it is renamed to ``dist_info_dir``."""
        return os.path.join(self.staging, self.catalog.dist_info)


#: (install root, directory below it or "", catalog key, the entries to link into that directory)
_Group = tuple[str, str, str, list[Entry]]


def _by_directory(groups: list[_Group]) -> list[list[_Group]]:
    """The groups of each target directory (several distributions may share one) together, so no two
    workers create files side by side; the directories with the most files first, so the workers
    pulling them end close together."""
    together: dict[tuple[str, str], list[_Group]] = {}
    for group in groups:
        together.setdefault((group[0], group[1]), []).append(group)
    return sorted(together.values(), key=lambda item: -sum(len(group[3]) for group in item))


def _directory_of(entry: Entry) -> tuple[str, str]:
    return entry.scheme, entry.path.rpartition("/")[0]


__all__ = ["Materializer"]
