"""Put a catalog's files into an environment: link methods for shared files, writes for per-env ones.

Order matters for crash safety: package files first; the ``.dist-info`` is
assembled in a hidden staging folder (with console scripts written and
``RECORD`` last) and renamed into place at the end.  pip only sees a
distribution once its ``.dist-info`` exists, so a run killed half way never
leaves a package that looks installed but is not; a failing run removes every
file it wrote for the distribution.

The hot loop does a few system calls per file: one directory file descriptor
per directory (targets are created relative to it), then the link method;
directories are shared out to one thread per core.
"""

from __future__ import annotations

import base64
import os
import posixpath
import shutil
from dataclasses import dataclass
from itertools import groupby

from .catalog import EXECUTABLE, SHEBANG, SOURCE, SOURCE_MTIME, Catalog, Entry
from .plugins import Policy
from .report import Report
from .scripts import render, rewrite_python_shebang
from .store import Store
from .strategies import Linker

_USE_DIR_FD = os.open in os.supports_dir_fd and os.link in os.supports_dir_fd
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
INSTALLER = b"holoclone\n"
#: Linking threads: one per core (more measured slower), and none below _PARALLEL_FROM files,
#: where starting a pool costs more than it saves.
_WORKERS = min(8, os.cpu_count() or 1)
_PARALLEL_FROM = 512


@dataclass(frozen=True)
class Layout:
    """Where an environment keeps each install scheme."""

    purelib: str
    platlib: str
    scripts: str
    data: str
    include: str  # headers go to <include>/<distribution name>
    executable: str

    def roots(self, catalog: Catalog) -> dict[str, str]:
        return {
            "purelib": self.purelib,
            "platlib": self.platlib,
            "scripts": self.scripts,
            "data": self.data,
            "headers": os.path.join(self.include, catalog.name),
        }


class Materializer:
    """Materializes catalogs from one store with one policy, accumulating one report."""

    def __init__(self, store: Store, policy: Policy, report: Report, strict: bool = False) -> None:
        self.store = store
        self.policy = policy
        self.report = report
        self.linker = Linker(strict=strict, methods=(*policy.strategy.methods, policy.copy_method))
        methods = policy.strategy.methods
        self._full = methods
        self._private = tuple(m for m in methods if not m.shares_inode) or (policy.copy_method,)
        self._copy = (policy.copy_method,)
        self._made_dirs: set[str] = set()

    def run(self, catalog: Catalog, layout: Layout) -> None:
        """Materialize ``catalog`` into the environment described by ``layout``.

        Raises :class:`~holoclone_venv.errors.MaterializeError` (disk full,
        permissions), :class:`~holoclone_venv.errors.StrictModeError`; on any
        failure every file written for the distribution is removed again.
        """
        roots = layout.roots(catalog)
        root = roots[catalog.root]
        dist_info_dir = os.path.join(root, catalog.dist_info)
        # The .dist-info is assembled beside site-packages' distributions, under a name no
        # metadata scanner reads, and renamed into place last: pip never lists a half-made one.
        staging_name = f".{catalog.dist_info}.holoclone-staging"
        staging = os.path.join(root, staging_name)
        shutil.rmtree(staging, ignore_errors=True)  # left by a killed run
        self._remove_previous(catalog, root, layout.data)
        prefix = catalog.dist_info + "/"
        body = [e for e in catalog.entries if not (e.scheme == catalog.root and e.path.startswith(prefix))]
        meta = [
            e._replace(path=f"{staging_name}/{e.path}")
            for e in catalog.entries
            if e.scheme == catalog.root and e.path.startswith(prefix)
        ]
        try:
            self._link_all(body, roots, layout.executable)
            self._link_all(meta, roots, layout.executable)
            record_rows = self._write_scripts(catalog, roots, layout.executable)
            self._write_metadata(catalog, roots, record_rows, os.path.join(staging, catalog.dist_info))
            os.rename(os.path.join(staging, catalog.dist_info), dist_info_dir)
            os.rmdir(staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(dist_info_dir, ignore_errors=True)
            _discard(catalog, roots)
            raise
        self.report.fallbacks = self.linker.fallbacks

    def _link_all(self, entries: list[Entry], roots: dict[str, str], executable: str) -> None:
        groups = [(key, list(group)) for key, group in groupby(entries, key=_directory_of)]
        for (scheme, directory), _ in groups:
            self._mkdir(os.path.join(roots[scheme], directory) if directory else roots[scheme])
        workers = min(_WORKERS, len(groups)) if len(entries) >= _PARALLEL_FROM else 1
        if workers == 1:
            results = [self._link_groups(groups, roots, executable)]
        else:
            # Creating and cloning files is kernel work that releases the GIL: two threads
            # materialize torch+numpy+pandas+scipy 1.25x faster than one on two cores (more
            # threads than cores were slower). Directories are dealt out whole, so no two
            # threads create files in one directory.
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(workers) as pool:
                shares = [groups[i::workers] for i in range(workers)]
                results = list(pool.map(lambda share: self._link_groups(share, roots, executable), shares))
        counts = self.report.counts
        for found, size, generated in results:
            for bucket, n in found.items():
                counts[bucket] = counts.get(bucket, 0) + n
            self.report.bytes += size
            self.report.generated += generated

    def _link_groups(self, groups, roots: dict[str, str], executable: str) -> tuple[dict[str, int], int, int]:
        """Link the entries of some directories; returns (count per bucket, bytes, files written per env)."""
        counts: dict[str, int] = {}
        objects = str(self.store.objects)
        object_path = self.store.object_path
        never_hardlink, always_copy = self.policy.never_hardlink, self.policy.always_copy
        link = self.linker.link
        total = generated = 0
        for (scheme, directory), group in groups:
            root = roots[scheme]
            target_dir = os.path.join(root, directory) if directory else root
            pair = (objects, root)
            dir_fd = os.open(target_dir, _DIR_FLAGS) if _USE_DIR_FD else None
            try:
                for entry in group:
                    if entry.flags & SHEBANG:
                        self._write_shebang_script(entry, target_dir, executable)
                        generated += 1
                        continue
                    path = entry.path
                    name = path.rpartition("/")[2]
                    chain = self._copy if always_copy(path) else self._private if never_hardlink(path) else self._full
                    executable_bit = entry.flags & EXECUTABLE
                    method = link(
                        chain, pair, object_path(entry.digest, bool(executable_bit)),
                        name if dir_fd is not None else os.path.join(target_dir, name), dir_fd,
                        0o755 if executable_bit else 0o644, SOURCE_MTIME if entry.flags & SOURCE else None,
                        target_dir,
                    )
                    counts[method.counts_as] = counts.get(method.counts_as, 0) + 1
                    total += entry.size
            finally:
                if dir_fd is not None:
                    os.close(dir_fd)
        return counts, total, generated

    def _mkdir(self, path: str) -> None:
        if path not in self._made_dirs:
            os.makedirs(path, exist_ok=True)
            self._made_dirs.add(path)

    def _write_shebang_script(self, entry: Entry, target_dir: str, executable: str) -> None:
        with open(self.store.object_path(entry.digest, bool(entry.flags & EXECUTABLE)), "rb") as handle:
            content = rewrite_python_shebang(handle.read(), executable)
        _write(os.path.join(target_dir, entry.path.rpartition("/")[2]), content, 0o755)

    def _write_scripts(self, catalog: Catalog, roots: dict[str, str], executable: str) -> list[tuple[str, str, str]]:
        rows = []
        if not catalog.scripts:
            return rows
        self._mkdir(roots["scripts"])
        relative = _relative(roots["scripts"], roots[catalog.root])
        for script in catalog.scripts:
            content = render(script.template, executable)
            _write(os.path.join(roots["scripts"], script.name), content, 0o755)
            rows.append((posixpath.join(relative, script.name), _record_hash(_sha256(content)), str(len(content))))
            self.report.generated += 1
        return rows

    def _write_metadata(
        self, catalog: Catalog, roots: dict[str, str], extra_rows: list[tuple[str, str, str]], info_dir: str
    ) -> None:
        """Write INSTALLER and RECORD (listing every installed file) into ``info_dir``.

        RECORD's rows for the catalog's own files are the same in every
        environment with the same layout (paths are relative), so they are kept
        as a store object, cloned into place, and only the rows that differ per
        environment (scripts with this interpreter, INSTALLER, RECORD) are
        appended: for torch that is 3 MB per environment not written twice.
        """
        root = roots[catalog.root]
        relative = {scheme: _relative(path, root) for scheme, path in roots.items()}
        tail = []
        for entry in catalog.entries:
            if entry.flags & SHEBANG:  # rewritten per environment: hash what was written
                with open(os.path.join(roots[entry.scheme], entry.path), "rb") as handle:
                    data = handle.read()
                tail.append((posixpath.join(relative[entry.scheme], entry.path), _record_hash(_sha256(data)), len(data)))
        tail.extend(extra_rows)
        info = catalog.dist_info
        tail.append((f"{info}/INSTALLER", _record_hash(_sha256(INSTALLER)), len(INSTALLER)))
        tail.append((f"{info}/RECORD", "", ""))
        _write(os.path.join(info_dir, "INSTALLER"), INSTALLER, 0o644)
        record = os.path.join(info_dir, "RECORD")
        source = self._record_object(catalog, relative)
        if source is None:
            _write(record, (_csv(self._record_rows(catalog, relative)) + _csv(tail)).encode("utf-8"), 0o644)
        else:
            self.linker.link(self._private, (str(self.store.objects), root), source, record, None, 0o644, None, info_dir)
            with open(record, "ab") as handle:
                handle.write(_csv(tail).encode("utf-8"))
        self.report.generated += 2

    @staticmethod
    def _record_rows(catalog: Catalog, relative: dict[str, str]) -> list[tuple[str, str, int]]:
        b64 = base64.urlsafe_b64encode
        root = catalog.root
        return [
            # A sha256 is 32 bytes: 43 base64 characters and one '=' of padding, which RECORD omits.
            (e.path if e.scheme == root else posixpath.join(relative[e.scheme], e.path),
             "sha256=" + b64(bytes.fromhex(e.digest))[:43].decode(), e.size)
            for e in catalog.entries
            if not e.flags & SHEBANG
        ]

    def _record_object(self, catalog: Catalog, relative: dict[str, str]) -> str | None:
        """Path of the store object with the shared part of RECORD, made on first use; None if unavailable."""
        import hashlib
        import json

        layout = hashlib.sha256(json.dumps(relative, sort_keys=True).encode()).hexdigest()[:16]
        index = self.store.catalogs / f"{catalog.key}.record-{layout}"
        try:
            digest = index.read_text(encoding="ascii").strip()
            if len(digest) == 64 and os.path.exists(self.store.object_path(digest)):
                return self.store.object_path(digest)
        except OSError:
            pass
        if not self.store.writable:
            return None
        try:
            digest = self.store.put_bytes(_csv(self._record_rows(catalog, relative)).encode("utf-8"))
            self.store.write_atomically(index, digest.encode("ascii"))
        except OSError:
            return None  # only a saving: the environment gets a RECORD written in full
        return self.store.object_path(digest)

    def _remove_previous(self, catalog: Catalog, root: str, env_dir: str) -> None:
        """Uninstall an earlier version of the same distribution, as an installer would."""
        from .uninstall import remove_distribution

        remove_distribution(catalog.name, root, env_dir)


def _discard(catalog: Catalog, roots: dict[str, str]) -> None:
    """Remove what a failed run wrote for ``catalog`` (every path it would install), then emptied folders."""
    folders = set()
    paths = [os.path.join(roots[e.scheme], e.path) for e in catalog.entries]
    paths += [os.path.join(roots["scripts"], s.name) for s in catalog.scripts]
    for path in paths:
        try:
            os.unlink(path)
        except OSError:
            pass
        folders.add(os.path.dirname(path))
    for folder in sorted(folders, key=len, reverse=True):
        while folder not in roots.values():
            try:
                os.rmdir(folder)
            except OSError:
                break
            folder = os.path.dirname(folder)


def _directory_of(entry: Entry) -> tuple[str, str]:
    return entry.scheme, entry.path.rpartition("/")[0]


def _relative(path: str, start: str) -> str:
    rel = os.path.relpath(path, start).replace(os.sep, "/")
    return "" if rel == "." else rel


def _sha256(data: bytes) -> bytes:
    import hashlib

    return hashlib.sha256(data).digest()


def _record_hash(digest: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _csv(rows: list) -> str:
    """Rows in RECORD's CSV dialect (as pip writes it)."""
    import csv
    import io

    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    return text.getvalue()


def _write(path: str, data: bytes, mode: int) -> None:
    """Write a per-environment file atomically (temp file, then rename over any old one)."""
    tmp = f"{path}.holoclone-tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.replace(tmp, path)


__all__ = ["INSTALLER", "Layout", "Materializer"]
