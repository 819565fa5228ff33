"""The files under ``objects/``: every object, and everything else found there (for ``verify``).

``objects/ab/<62 hex>`` holds the content whose sha256 is ``ab<62 hex>``; ``.x`` marks the same
content with executable bits.  Only the store spells these names; ``verify`` asks here which of
the files it finds are objects.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Iterator

from .parts import StoreParts

_PREFIX = re.compile(r"^[0-9a-f]{2}\Z")
_REST = re.compile(r"^([0-9a-f]{62})(\.x)?\Z")


class ObjectFiles(StoreParts):
    """Listing ``objects/`` (needs the store's folders)."""

    def iter_objects(self) -> Iterator[tuple[str, bool, Path]]:
        """Yield ``(digest, executable, path)`` for every object file.

        Raises :class:`StoreError` when a link stands where a folder of objects belongs."""
        for prefix in sorted(self.list_folder(self.objects)):
            sub = self.objects / prefix
            if not self.is_folder(sub):
                continue  # a stray file: verify reports it
            for name in sorted(self.list_folder(sub)):
                executable = name.endswith(".x")
                yield prefix + (name[:-2] if executable else name), executable, sub / name

    def iter_object_files(self) -> Iterator[tuple[Path, tuple[str, bool] | None]]:
        """Yield ``(path, (digest, executable))`` for every entry under ``objects/``, and ``(path, None)``
        for one whose place or name is not an object's (a stray: a file beside the prefix folders, a
        folder of another name, a name that is no digest).  Whether the entry is a regular file is
        the caller's question."""
        for prefix in sorted(self.list_folder(self.objects)):
            sub = self.objects / prefix
            if not stat.S_ISDIR(sub.lstat().st_mode):  # a file or a link where a folder belongs
                yield sub, None
                continue
            for name in sorted(self.list_folder(sub)):
                match = _REST.match(name) if _PREFIX.match(prefix) else None
                yield sub / name, (prefix + match.group(1), bool(match.group(2))) if match else None
