"""The store's one way in: staged objects and the catalogs that name them, committed in order.

Every writer that brings wheels' contents into the store (the importer, a bundle import, a pull
from a remote store, and so ``holoclone install``, which imports through them) ends with
:meth:`Ingest.commit`, which keeps the catalog invariant in one place:

1. the staged objects are made durable (a crash must not leave a catalog over empty objects, and
   some Windows builds cloned unflushed files as zeroes);
2. the store lock is taken (gc and ``verify --repair`` remove objects and catalogs under it, so
   an object found present here cannot vanish before the catalog naming it is in place);
3. the objects are adopted (renamed into ``objects/``);
4. the catalogs are written, last.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Iterable, NamedTuple, Sequence

from .parts import StoreParts

if TYPE_CHECKING:
    from .catalog import Catalog


class StagedObject(NamedTuple):
    """An object's content written and checked under ``tmp/``, ready to be adopted."""

    digest: str
    executable: bool
    #: The staged file (under the store's ``tmp/``).
    path: str
    #: Its size, where the caller knows it (None: read from the staged file when needed).
    size: int | None = None


class Ingest(StoreParts):
    """Committing staged objects and their catalogs (needs the store's objects, catalogs and lock)."""

    def commit(self, objects: Sequence[StagedObject], catalogs: Iterable[Catalog], stage: str | None,
               sealed: bool = False, adopt_present: bool = False, only_new_catalogs: bool = False) -> None:
        """Make ``objects`` durable, adopt them under the store lock, then write ``catalogs``, in that order.

        ``stage``: the folder the objects were staged in, to make them durable; None when the caller
        already did (a pull flushes as it downloads).  ``sealed``: the objects were sealed (read-only,
        fixed mtime) as they were written.  ``adopt_present``: adopt even an object the store has
        (the same verified bytes replace it, cheaper than checking each first); otherwise an intact
        object in place is kept.  ``only_new_catalogs``: a catalog the store already has is left as
        it is (looked up under the lock, so a concurrent writer's is never replaced).
        """
        if stage is not None:
            from ..platforms import current

            current().make_durable(stage, [staged.path for staged in objects])
        with self.lock():
            for staged in objects:
                if adopt_present or not self.has_object(
                        staged.digest, os.path.getsize(staged.path) if staged.size is None else staged.size,
                        staged.executable):
                    self.adopt_object(staged.path, staged.digest, staged.executable, sealed)
            for catalog in catalogs:
                if not (only_new_catalogs and self.load_catalog(catalog.key) is not None):
                    self.write_catalog(catalog)

    def present(self, digest: str, executable: bool, size: int | None = None) -> bool:
        """Whether the object is in place and intact; ``size`` None (a wheel's RECORD, whose size no catalog
        holds) takes the size of the file in place."""
        if size is None:
            try:
                size = os.lstat(self.object_path(digest, executable)).st_size
            except OSError:
                return False
        return self.has_object(digest, size, executable)
