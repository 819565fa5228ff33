"""What each part of the :class:`~holoclone_venv.store.Store` relies on from the others, declared once.

The store is assembled from parts (folders, staging, caches, templates, plans), each in its own
module; a part calls the others' methods through ``self``.  :class:`StoreParts` names those
methods and the folder paths, so each part type-checks on its own and a reader sees the seams.
At run time it adds nothing: the declarations exist for the type checker only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from .catalog import Catalog
    from .locks import StoreLock


class StoreParts:
    """The folders every part knows (set by ``Store.__init__``) and the methods parts share."""

    root: Path
    objects: Path
    catalogs: Path
    index: Path
    refs: Path
    wheels: Path
    resolutions: Path
    templates: Path
    tmp: Path
    locks: Path
    lock_timeout: float

    if TYPE_CHECKING:
        @property
        def writable(self) -> bool: ...

        def trusted(self, st: os.stat_result) -> bool: ...

        def read_trusted(self, path: str | os.PathLike[str]) -> bytes | None: ...

        def object_path(self, digest: str, executable: bool = False) -> str: ...

        def put_bytes(self, data: bytes) -> str: ...

        def _lock(self, name: str, what: str) -> StoreLock: ...

        def lock(self) -> StoreLock: ...

        def has_object(self, digest: str, size: int, executable: bool = False) -> bool: ...

        def adopt_object(self, staged: str, digest: str, executable: bool, sealed: bool = False) -> None: ...

        def load_catalog(self, key: str) -> Catalog | None: ...

        def write_catalog(self, catalog: Catalog) -> None: ...

        # folders.py
        def list_folder(self, folder: Path) -> list[str]: ...

        def is_folder(self, path: Path) -> bool: ...

        def make_folder(self, folder: Path) -> Path: ...

        def open_lock_file(self, path: str) -> int: ...

        # staging.py
        def write_atomically(self, final: str | os.PathLike[str], data: bytes) -> None: ...

        def tmp_file(self, label: str) -> str: ...

        # templates.py
        def template_leftovers(self) -> Iterator[Path]: ...
