"""What a dependency set asks for: requirement files and specs, read and checked before anything is made.

holoclone materializes wheels, so a requirement that can only be met by
building (an editable install, a project directory, a VCS checkout) is
refused here, before virtualenv creates the environment, with how to
proceed.  What decides a resolution besides the text is collected too: the
files a requirement file includes, and the local wheels and find-links
folders it names, by content.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Iterable

from ..errors import HoloCloneError

_INCLUDE = re.compile(r"^\s*(?:-r|--requirement|-c|--constraint)(?:\s+|=)(\S+)")
_FIND_LINKS = re.compile(r"^\s*(?:-f|--find-links)(?:\s+|=)(\S+)")
_EDITABLE = re.compile(r"^\s*(?:-e|--editable)(?:\s|=|$)")
_VCS = re.compile(r"(?:^|@\s*)(?:git|hg|svn|bzr)\+", re.IGNORECASE)


class ResolveError(HoloCloneError):
    """The requested packages could not be resolved to wheels."""


@dataclass
class Requirements:
    """Requirement files (with what they include) and specs, checked."""

    texts: list[tuple[str, str]] = field(default_factory=list)  # (absolute path, text)
    specs: tuple[str, ...] = ()
    #: Local wheel files and find-links folders the files name: they decide the resolution by content.
    local_paths: list[str] = field(default_factory=list)


def read_requirements(files: Iterable[str], specs: Iterable[str]) -> Requirements:
    """Read and check ``--holoclone-requirements`` files and ``--holoclone-package`` specs.

    Raises :class:`ResolveError` for a missing or unreadable file, an option
    given as a spec, or an editable, directory or VCS requirement.
    """
    found = Requirements(specs=tuple(specs))
    for spec in found.specs:
        if not spec.strip() or spec.lstrip().startswith("-"):
            raise ResolveError(
                f"--holoclone-package takes a requirement such as 'numpy>=2', not {spec!r}.",
                "Put pip options into a requirements file or pip.conf.",
            )
        _refuse_unbuilt(spec.strip(), "--holoclone-package")
        _check_syntax(spec.strip(), "--holoclone-package")
    seen: set[str] = set()

    def visit(path: str, included_from: str | None) -> None:
        path = os.path.abspath(path)
        if path in seen:
            return
        seen.add(path)
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except FileNotFoundError:
            if included_from is not None:
                # pip reports a missing include itself, with its own wording.
                found.texts.append((path, "<missing>"))
                return
            raise ResolveError(
                f"the requirements file {path} does not exist.", "Check the --holoclone-requirements path."
            ) from None
        except (OSError, UnicodeDecodeError) as error:
            raise ResolveError(
                f"cannot read the requirements file {path}: {getattr(error, 'strerror', None) or error}.",
                "Check the --holoclone-requirements path and its permissions.",
            ) from None
        found.texts.append((path, text))
        base = os.path.dirname(path)
        for raw in text.splitlines():
            line = raw.split(" #", 1)[0].strip()
            if not line or line.startswith("#"):
                continue
            include = _INCLUDE.match(line)
            links = _FIND_LINKS.match(line)
            if include:
                if "://" not in include.group(1):
                    visit(os.path.join(base, include.group(1)), path)
            elif links:
                if "://" not in links.group(1) or links.group(1).startswith("file://"):
                    found.local_paths.append(_local(links.group(1), base))
            elif not line.startswith("-") or _EDITABLE.match(line):
                _refuse_unbuilt(line, path)
                _check_syntax(line, path)
                if line.endswith(".whl") and "://" not in line.replace("file://", ""):
                    found.local_paths.append(_local(line, base))

    for name in files:
        visit(name, None)
    return found


def _local(reference: str, base: str) -> str:
    reference = reference[len("file://"):] if reference.startswith("file://") else reference
    return os.path.normpath(os.path.join(base, os.path.expanduser(reference)))


def _check_syntax(line: str, where: str) -> None:
    """Refuse a requirement pip could never parse (``numpy>=``), before anything is made.

    Checked with ``packaging``'s PEP 508 parser, as pip parses it.  Lines this check
    cannot judge alone are left to pip: wheel files and URLs, per-requirement options
    (``--hash``), ``${VARIABLES}`` and continued lines.
    """
    if line.endswith("\\") or "${" in line or " -" in line or "://" in line:
        return
    if line.split(";", 1)[0].strip().endswith(".whl"):
        return
    try:
        from packaging.requirements import InvalidRequirement, Requirement
    except ImportError:  # packaging is a dependency; without it pip still reports the error, later
        return
    try:
        Requirement(line)
    except InvalidRequirement as error:
        detail = (str(error).splitlines() or ["unreadable"])[0].strip()  # the lines after it draw an arrow
        raise ResolveError(
            f"{line!r} in {where} is not a valid requirement ({detail}), and nothing was created.",
            "Write it as pip does, e.g. 'numpy>=2', 'numpy==2.3.0' or 'numpy'.",
        ) from None


def _refuse_unbuilt(line: str, where: str) -> None:
    """Refuse what pip can only build, never download as a wheel."""
    kind = ""
    if _EDITABLE.match(line):
        kind = "an editable requirement"
    elif _VCS.search(line):
        kind = "a VCS requirement"
    elif "://" not in line and not line.split(";", 1)[0].strip().endswith(".whl") and (
        line.startswith((".", "/", "~")) or "/" in line or os.sep in line
    ):
        kind = "a project directory or source path"
    if kind:
        raise ResolveError(
            f"{line!r} in {where} is {kind}; holoclone materializes wheels only, and nothing was created.",
            "Build a wheel first ('pip wheel --no-deps -w wheels/ PATH') and list the .whl file, or install it "
            "with the environment's pip once it is created.",
        )
