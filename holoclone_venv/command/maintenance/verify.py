"""``holoclone store verify``: re-hash every object, check every catalog, repair on request."""

from __future__ import annotations

import functools
import os
import stat
from dataclasses import dataclass, field
from typing import Callable

from ...store.catalog import EXECUTABLE, FIXED_MTIME, Catalog
from ...fsutil import hash_file
from ...store import Store
from . import Progress, file_size, held, read_catalogs


@dataclass
class Problem:
    """Something wrong in the store; ``repaired`` says whether ``--repair`` dealt with it."""

    kind: str  # link, corrupt, foreign, mode, stray, malformed, incomplete, untrusted, template
    path: str
    detail: str
    repaired: bool = False

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class VerifyResult:
    objects: int = 0
    bytes: int = 0
    catalogs: int = 0
    problems: list[Problem] = field(default_factory=list)
    tmp_reclaimed: int = 0

    def found(self, kind: str, path: object, detail: str, repair: Callable[[], None] | bool = False) -> None:
        """Record a problem; run ``repair`` (when given) and say it was repaired."""
        problem = Problem(kind, str(path), detail)
        if callable(repair):
            repair()
            problem.repaired = True
        self.problems.append(problem)

    @property
    def unrepaired(self) -> list[Problem]:
        return [p for p in self.problems if not p.repaired]

    def as_dict(self) -> dict:
        return {
            "objects": self.objects,
            "bytes": self.bytes,
            "catalogs": self.catalogs,
            "problems": [p.as_dict() for p in self.problems],
            "tmp_reclaimed": self.tmp_reclaimed,
            "ok": not self.unrepaired,
        }


def verify(store: Store, repair: bool = False, progress: Progress | None = None) -> VerifyResult:
    """Re-hash every object, check modes, mtimes and catalogs; with ``repair`` remove what is broken.

    Checks: each object's content hashes to its name; it is read-only, has
    executable bits exactly when named ``.x``, and has mtime
    :data:`FIXED_MTIME`; each catalog parses, is stored under its own key, and
    every object it names exists intact with the right size, and agrees with
    the wheel's RECORD it names; objects are regular files of the store's
    owner (or root).  Repair removes corrupt, foreign and stray objects and
    every catalog that is malformed, disagrees with its RECORD or needs a
    missing or corrupt object (the next seeding re-imports its wheel), restores
    the mode and mtime of intact objects, and reclaims stale ``tmp/`` entries.
    Each template is compared with the listing of its files made when it was
    sealed (kind, mode, size, mtime); repair removes one that differs.
    Without ``repair``, a store this process cannot write is checked without
    its lock (:func:`~holoclone_venv.command.maintenance.held`).
    """
    result = VerifyResult()
    # Before the lock, which lives in one of these folders: a link where a store folder belongs (planted by
    # another account that can write into the store) is removed itself, never followed.
    links = store.folder_links()
    for link in links:
        result.found("link", link, "a symbolic link or a file where the store keeps a folder (never followed)",
                     repair and functools.partial(store.remove, link))
    if links and not repair:
        return result  # nothing is looked at through them
    with held(store, changes=repair):
        intact: dict[tuple[str, bool], int] = {}
        files = list(store.iter_object_files())
        total = sum(file_size(str(p)) for p, _ in files)
        for path, named in files:
            st = path.lstat()
            if named is None or not stat.S_ISREG(st.st_mode):
                result.found("stray", path, "not a store object", repair and functools.partial(store.remove, path))
                continue
            if not store.trusted(st):
                # Another account could have put any content here; only the owner's objects are used.
                result.found("foreign", path, f"owned by uid {st.st_uid}, not by the store's owner or root",
                             repair and functools.partial(store.remove, path))
                continue
            digest, executable = named
            try:
                actual, _ = hash_file(path)
            except OSError as error:
                actual = f"unreadable ({error.strerror})"
            result.objects += 1
            result.bytes += st.st_size
            if progress:
                progress(result.bytes, total)
            if actual != digest:
                result.found("corrupt", path, f"content hashes to {actual[:16]}..., not its name",
                             repair and (lambda: store.remove(path)))
                continue
            intact[(digest, executable)] = st.st_size
            wanted = 0o555 if executable else 0o444
            if stat.S_IMODE(st.st_mode) != wanted or int(st.st_mtime) != FIXED_MTIME:
                def restore(path=path, wanted=wanted) -> None:
                    os.chmod(path, wanted)
                    os.utime(path, (FIXED_MTIME, FIXED_MTIME))

                result.found("mode", path, f"mode {stat.S_IMODE(st.st_mode):o} mtime {int(st.st_mtime)}, expected "
                             f"{wanted:o} and {FIXED_MTIME}", repair and restore)
        for key, catalog, why in read_catalogs(store):
            result.catalogs += 1
            catalog_file = str(store.catalog_path(key))
            if catalog is None:
                problem = Problem("malformed", catalog_file, why)
            else:
                lacking = [
                    e.path for e in catalog.entries
                    if intact.get((e.digest, bool(e.flags & EXECUTABLE))) != e.size
                ]
                if (catalog.record, False) not in intact:
                    lacking.append(f"the wheel's RECORD ({catalog.record[:16]}...)")
                disagreeing = [] if lacking else _disagreements(store, catalog)
                if not lacking and not disagreeing:
                    continue
                if lacking:
                    problem = Problem(
                        "incomplete", catalog_file,
                        f"{catalog.name} {catalog.version}: {len(lacking)} objects missing or corrupt (e.g. {lacking[0]})",
                    )
                else:
                    problem = Problem(
                        "untrusted", catalog_file,
                        f"{catalog.name} {catalog.version} disagrees with its wheel's RECORD: {disagreeing[0]}"
                        + (f" (and {len(disagreeing) - 1} more)" if len(disagreeing) > 1 else ""),
                    )
            if repair:
                store.remove_catalog(key)
                problem.repaired = True
            result.problems.append(problem)
        _check_templates(store, result, repair)
        if repair:
            result.tmp_reclaimed = store.reclaim_tmp()
    return result


def _check_templates(store: Store, result: VerifyResult, repair: bool) -> None:
    """Compare every template with the listing made when it was sealed; repair removes one that differs
    (with its plan and listing: the next seeding that wants it builds it again)."""
    from ...store.templates import Listing

    for identity, path in store.iter_templates():
        def drop(path=path, identity=identity) -> None:
            with store.template_claim(identity) as free:  # never under a seeding cloning it
                for part in (path, store.template_plan_path(identity), store.template_files_path(identity)):
                    if free:
                        store.remove(part)

        if not store.has_template(identity):
            result.found("template", path, "not a template this store can clone (another owner's, or an empty "
                         "placeholder restored from a snapshot)", repair and drop)
            continue
        data = store.read_trusted(store.template_files_path(identity))
        try:
            differences = Listing.from_json(data).differences(str(path)) if data is not None else None
        except ValueError as error:
            differences = [f"its listing {store.template_files_path(identity)} is unreadable ({error})"]
        if differences is None:
            result.found("template", path, "no listing of its files to check it against", repair and drop)
        elif differences:
            more = f" (and {len(differences) - 1} more)" if len(differences) > 1 else ""
            result.found("template", path, f"changed since it was sealed: {differences[0]}{more}", repair and drop)


def _disagreements(store: Store, catalog: Catalog) -> list[str]:
    from ...materialize.record import disagreements

    def read_object(digest: str, executable: bool) -> bytes:
        with open(store.object_path(digest, executable), "rb") as handle:
            return handle.read()

    return disagreements(catalog, read_object(catalog.record, False), read_object)
