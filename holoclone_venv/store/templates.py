"""Templates: a read-only install root per set of catalogs, cloned whole into new environments.

Part of :class:`~holoclone_venv.store.Store` (a mixin: the store stays the
one owner of its folder names)::

    templates/<id>/     the root scheme directory (site-packages) of one set of
                        catalogs for one interpreter and scheme layout, sealed
                        read-only (on btrfs: a read-only subvolume)
    templates/<id>.plan.json
                        what a clone of it still needs per environment (its
                        *plan*: :meth:`Templates.template_plan`), so a seeding
                        need not read whole catalogs, and how many entries a
                        whole clone of it holds
    templates/<id>.files.json
                        its entries as sealed (:class:`Listing`), for ``verify``
    locks/template-use-<id>.lock
                        held shared while a seeding clones the template; gc and
                        repairs remove only a template they can lock exclusively

A template is built beside the others under a staging name
(``templates/.stage-<id>.<pid>.<ns>``) and renamed into place only once
complete and sealed, so a half-built one is never used.  (Beside, not under
``tmp/``: a sealed btrfs subvolume cannot move to another folder, which would
rewrite its ``..``.)  A killed build is reclaimed like any staging leftover.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, NamedTuple

from .locks import StoreLock
from .parts import StoreParts

if TYPE_CHECKING:
    from .catalog import Catalog

#: The schemes inside the install root a template holds (purelib and platlib are one directory then).
INSIDE = ("purelib", "platlib")

_TEMPLATE_ID = re.compile(r"^[0-9a-f]{32}\Z")


class Templates(StoreParts):
    """Where templates live and how they come and go (needs the store's folders)."""

    # Set by Store, with ``tmp_file`` and ``_lock``.
    root: Path
    templates: Path

    def template_path(self, template_id: str) -> Path:
        """Where the template ``template_id`` lives (it may not exist)."""
        if not _TEMPLATE_ID.match(template_id):
            raise ValueError(f"not a template id: {template_id!r}")
        return self.templates / template_id

    def has_template(self, template_id: str) -> bool:
        """True when the template is in place: a real directory (never a link) of a trusted owner, which
        the platform's tree cloner can clone (on btrfs a subvolume: a template restored from a snapshot
        of the store's subvolume is an empty placeholder directory and is never used)."""
        path = self.template_path(template_id)
        try:
            st = os.lstat(path)
        except OSError:
            return False
        import stat

        if not (stat.S_ISDIR(st.st_mode) and self.trusted(st)):
            return False
        from ..platforms import current

        tree = current().tree
        return tree is None or tree.is_template is None or tree.is_template(str(path), st)

    def template_files_path(self, template_id: str) -> Path:
        """Where the listing of template ``template_id``'s files lives (see :class:`Listing`)."""
        return self.templates / f"{self.template_path(template_id).name}.files.json"

    @contextlib.contextmanager
    def template_in_use(self, template_id: str) -> Iterator[None]:
        """Held (shared) while a template is cloned: gc removes only templates it can claim."""
        fd = self._use_lock(template_id)
        try:
            if fd is not None:
                _flock(fd, shared=True, wait=True)
            yield
        finally:
            if fd is not None:
                os.close(fd)

    @contextlib.contextmanager
    def template_claim(self, template_id: str) -> Iterator[bool]:
        """Yields True when no process is cloning the template, which then none can start until the end."""
        fd = self._use_lock(template_id)
        try:
            yield fd is None or _flock(fd, shared=False, wait=False)
        finally:
            if fd is not None:
                os.close(fd)

    def _use_lock(self, template_id: str) -> int | None:
        """An fd of the template's use lock file; None where no lock can be had (a read-only store, which
        no gc changes either, or a platform without ``flock``, which has no tree clones)."""
        if _fcntl() is None:
            return None
        path = self.locks / f"template-use-{self.template_path(template_id).name[:24]}.lock"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:
            try:
                return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return None

    def template_staging(self, template_id: str) -> str:
        """A fresh path beside the templates to build one in (reclaimed if the builder dies)."""
        import time

        self.make_folder(self.templates)
        return f"{self.templates}/.stage-{template_id[:12]}.{os.getpid()}.{time.monotonic_ns()}"

    def template_leftovers(self) -> Iterator[Path]:
        """Staging folders of template builds (reclaimed with ``tmp/`` when their process is gone)."""
        for name in self.list_folder(self.templates):
            if name.startswith(".stage-"):
                yield self.templates / name

    def adopt_template(self, staged: str, template_id: str) -> Path:
        """Rename a complete, sealed template into place; returns its path."""
        final = self.template_path(template_id)
        self.make_folder(final.parent)
        os.rename(staged, final)
        return final

    def template_plan_path(self, template_id: str) -> Path:
        """Where the plan of template ``template_id`` lives (it may not exist)."""
        return self.templates / f"{self.template_path(template_id).name}.plan.json"

    def write_template_plan(self, template_id: str, catalogs: list[Catalog], entries: int) -> None:
        """Keep beside the template what a clone of it needs per environment (only a saving: errors are
        ignored): ``catalogs`` cut down to what lies outside the install root, the files and bytes inside
        it, and ``entries`` (files, links and folders of the template), which lets a clone be checked whole.

        ``{"format": 1, "entries": n, "catalogs": [{"catalog": cut-down catalog JSON, "files": n,
        "bytes": n}, ...]}``, one item per catalog in the order given.
        """
        document = {"format": 1, "entries": entries, "catalogs": [
            {"catalog": catalog._replace(entries=tuple(e for e in catalog.entries if e.scheme not in INSIDE))
             .to_json().decode(),
             "files": sum(1 for e in catalog.entries if e.scheme in INSIDE),
             "bytes": sum(e.size for e in catalog.entries if e.scheme in INSIDE)}
            for catalog in catalogs]}
        try:
            self.write_atomically(self.template_plan_path(template_id), json.dumps(document).encode())
        except OSError:
            pass

    def template_plan_entries(self, template_id: str) -> int | None:
        """How many entries a whole clone of the template holds, by its plan; None when unknown."""
        data = self.read_trusted(self.template_plan_path(template_id))
        try:
            entries = json.loads(data)["entries"] if data is not None else None
        except (ValueError, KeyError, TypeError, RecursionError):
            return None
        return entries if type(entries) is int else None

    def template_plan(self, template_id: str,
                      keys: list[str]) -> tuple[list[Catalog], dict[str, tuple[int, int]]] | None:
        """The cut-down catalogs of the template's plan and, per key, the files and bytes inside the install
        root; None when there is no plan, or it is not the store owner's, or does not describe ``keys``.

        Every cut-down catalog is validated as a catalog is (:meth:`Catalog.from_json`).
        """
        from ..errors import StoreError
        from .catalog import Catalog

        path = self.template_plan_path(template_id)
        data = self.read_trusted(path)
        if data is None:
            return None
        try:
            document = json.loads(data)
            items = document["catalogs"] if document.get("format") == 1 else None
            if not isinstance(items, list) or len(items) != len(keys):
                return None
            catalogs, inside = [], {}
            for key, item in zip(keys, items):
                catalog = Catalog.from_json(item["catalog"].encode(), str(path))
                files, size = item["files"], item["bytes"]
                if (catalog.key != key or any(e.scheme in INSIDE for e in catalog.entries)
                        or type(files) is not int or type(size) is not int or files < 0 or size < 0):
                    return None
                catalogs.append(catalog)
                inside[key] = (files, size)
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError, StoreError):
            return None
        return catalogs, inside

    def iter_template_plans(self) -> Iterator[tuple[str, Path]]:
        """Yield ``(template id, path)`` of every template plan, its template present or not."""
        for name in sorted(self.list_folder(self.templates)):
            identity = name[: -len(".plan.json")]
            if name.endswith(".plan.json") and _TEMPLATE_ID.match(identity):
                yield identity, self.templates / name

    def iter_template_listings(self) -> Iterator[tuple[str, Path]]:
        """Yield ``(template id, path)`` of every template's listing of files, its template present or not."""
        if self.templates.is_dir():
            for path in sorted(self.templates.glob("*.files.json")):
                identity = path.name[: -len(".files.json")]
                if _TEMPLATE_ID.match(identity):
                    yield identity, path

    def iter_templates(self) -> Iterator[tuple[str, Path]]:
        """Yield ``(id, path)`` of every template."""
        for name in sorted(self.list_folder(self.templates)):
            if _TEMPLATE_ID.match(name):
                yield name, self.templates / name

    def template_lock(self, template_id: str) -> StoreLock:
        """Serializes building one template."""
        return self._lock(f"template-{template_id[:24]}", "another process building the same template")


def _fcntl():
    try:
        import fcntl
    except ImportError:
        return None
    return fcntl


def _flock(fd: int, shared: bool, wait: bool) -> bool:
    """Take a ``flock`` on ``fd``; False when ``wait`` is off and another process holds a conflicting one."""
    fcntl = _fcntl()
    operation = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB)
    try:
        fcntl.flock(fd, operation)
    except BlockingIOError:
        return False
    return True


# -- what a template holds, for checks --------------------------------------------------------

def _entries(root: str) -> Iterator[tuple[str, os.stat_result]]:
    """``(path, lstat)`` of every entry under ``root`` (not ``root``), never following a symlink."""
    pending = [root]
    while pending:
        with os.scandir(pending.pop()) as found:
            for entry in found:
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode):
                    pending.append(entry.path)
                yield entry.path, info


def walk_files(root: str) -> list[str]:
    """Every regular file under ``root`` (for flushing)."""
    return [path for path, info in _entries(root) if stat.S_ISREG(info.st_mode)]


def count_entries(root: str, writable: bool = False) -> int:
    """How many entries lie under ``root``; with ``writable`` each file and folder gets its owner's write
    bit back (a clone of a template sealed by its modes becomes an ordinary, writable tree)."""
    if writable:
        count = 0
        for path, info in _entries(root):
            count += 1
            if not stat.S_ISLNK(info.st_mode) and not info.st_mode & stat.S_IWUSR:
                os.chmod(path, stat.S_IMODE(info.st_mode) | stat.S_IWUSR)
        info = os.lstat(root)
        os.chmod(root, stat.S_IMODE(info.st_mode) | stat.S_IWUSR)
        return count
    # Only counting: the kind from the directory entry (d_type), no stat per file.
    count, pending = 0, [root]
    while pending:
        with os.scandir(pending.pop()) as found:
            for entry in found:
                count += 1
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
    return count


class Listing(NamedTuple):
    """A sealed template's entries as built: relative path -> (kind, mode, size, mtime in ns).

    Kept beside the template (``<id>.files.json``) so ``verify`` can tell a
    template edited or emptied after it was sealed (an in-place edit would
    reach every later environment cloned from it).
    """

    entries: dict[str, tuple[str, int, int, int]]

    def to_json(self) -> bytes:
        return json.dumps({"format": 1, "entries": self.entries}, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Listing:
        """Raises ValueError for anything but a listing this module wrote."""
        try:
            document = json.loads(data)
            entries = document["entries"] if document.get("format") == 1 else None
            if not isinstance(entries, dict):
                raise ValueError("no entries")
            return cls({str(k): (str(v[0]), int(v[1]), int(v[2]), int(v[3])) for k, v in entries.items()})
        except (KeyError, TypeError, IndexError, AttributeError, RecursionError) as error:
            raise ValueError(str(error)) from None

    def differences(self, root: str) -> list[str]:
        """What differs between the tree at ``root`` and this listing, one phrase each (empty: none)."""
        found = listing(root).entries
        problems = [f"{path} is missing" for path in sorted(self.entries.keys() - found.keys())]
        problems += [f"{path} was added" for path in sorted(found.keys() - self.entries.keys())]
        problems += [f"{path} changed (kind, mode, size, mtime {found[path]}, built as {self.entries[path]})"
                     for path in sorted(self.entries.keys() & found.keys()) if found[path] != self.entries[path]]
        return problems


def _kind(mode: int) -> str:
    return "dir" if stat.S_ISDIR(mode) else "link" if stat.S_ISLNK(mode) else "file" if stat.S_ISREG(mode) else "other"


def listing(root: str) -> Listing:
    """The :class:`Listing` of the tree at ``root`` (folders carry no size or mtime: entries in them change both)."""
    entries = {}
    for path, info in _entries(root):
        kind = _kind(info.st_mode)
        relative = os.path.relpath(path, root).replace(os.sep, "/")
        if kind == "dir":
            entries[relative] = (kind, stat.S_IMODE(info.st_mode), 0, 0)
        else:
            entries[relative] = (kind, stat.S_IMODE(info.st_mode), info.st_size, info.st_mtime_ns)
    return Listing(entries)
