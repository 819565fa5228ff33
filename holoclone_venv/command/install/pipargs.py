"""``holoclone install``'s command line: holoclone's own options apart from pip's, and pip's read.

holoclone takes ``--python``, ``-q``, ``-v``, ``--refresh``, ``--plan-ttl``
(and the global ``--store``, ``--lock-timeout``) wherever they appear; every
other argument is pip's and keeps pip's meaning: the whole list is what pip
plans with.  This module only reads pip's arguments as far as holoclone needs
them: which files and folders they name (they decide the plan), what is
pinned, which options must reach the pip runs that fetch wheels or build
what cannot come from the store, and which options pip alone must handle.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Sequence

from ...errors import HoloCloneError

#: pip install options that take a value (long and short spellings).
VALUED = {
    "-r", "--requirement", "-c", "--constraint", "-e", "--editable", "-i", "--index-url", "--extra-index-url",
    "-f", "--find-links", "--trusted-host", "--only-binary", "--no-binary", "-C", "--config-settings",
    "--global-option", "--build-option", "--install-option", "--upgrade-strategy", "--platform", "--python-version",
    "--implementation", "--abi", "-t", "--target", "--root", "--prefix", "--src", "--progress-bar", "--log",
    "--log-file", "--proxy", "--retries", "--timeout", "--exists-action", "--cert", "--client-cert", "--cache-dir",
    "--use-feature", "--use-deprecated", "--keyring-provider", "--report", "--python", "--group", "--resume-retries",
    "--root-user-action", "--index", "--extra-index",
}
#: Options that would install somewhere else or only pretend: holoclone installs into the environment.
_REFUSED = {"-t", "--target", "--root", "--prefix", "--user", "--dry-run", "--report", "--python",
            "--platform", "--python-version", "--implementation", "--abi"}
#: Options that decide what is installed: they reach only the planning pip run, never the runs
#: that fetch a planned wheel or install one planned item (those get exact items and --no-deps).
_PLAN_ONLY = {"-r", "--requirement", "-e", "--editable", "-U", "--upgrade", "--upgrade-strategy",
              "--force-reinstall", "--no-deps", "--require-hashes", "-I", "--ignore-installed", "--group",
              "--no-build-isolation-for", "-q", "--quiet", "-v", "--verbose"}
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*===?\s*([^\s;,*]+)\s*(?:;.*)?$")
_INCLUDE = re.compile(r"^\s*(-r|--requirement|-c|--constraint)(?:\s+|=)(\S+)")
_FIND_LINKS = re.compile(r"^\s*(?:-f|--find-links)(?:\s+|=)(\S+)")
#: Where-to-look options a requirements file may hold (pip applies them to the whole run).
_FILE_OPTION = re.compile(r"^\s*(-i|--index-url|--extra-index-url|-f|--find-links|--trusted-host)(?:\s+|=)(\S+)\s*$"
                          r"|^\s*(--no-index|--pre|--prefer-binary)\s*$")


class UsageError(HoloCloneError):
    """A bad command line (exit 2)."""


@dataclass
class Options:
    """holoclone's options of one ``holoclone install``."""

    python: str | None = None
    verbosity: int = 0  # -1 quiet, 0 one summary line, 1 and more: what it does
    refresh: bool = False
    plan_ttl: float | None = None
    store: str | None = None
    lock_timeout: float | None = None


@dataclass
class PipArgs:
    """pip's arguments, as given, and what holoclone reads from them."""

    args: list[str]
    requirement_files: list[str] = field(default_factory=list)
    constraint_files: list[str] = field(default_factory=list)
    editables: list[str] = field(default_factory=list)
    specs: list[str] = field(default_factory=list)
    find_links: list[str] = field(default_factory=list)
    #: Options (with their values) every later pip run gets: index, find-links, constraints, build settings.
    forwarded: list[str] = field(default_factory=list)
    no_deps: bool = False
    force_reinstall: bool = False
    require_hashes: bool = False

    def local_paths(self) -> list[str]:
        """Specs and editables that name a local file or folder (absolute)."""
        return [os.path.abspath(p) for p in [*self.specs, *self.editables] if _is_path(p) and os.path.exists(p)]


def split(argv: Sequence[str]) -> tuple[Options, PipArgs]:
    """Separate holoclone's options from pip's arguments; read pip's.

    Raises :class:`UsageError` for a holoclone option without its value, a bad
    ``--plan-ttl``, no requirement at all, or a pip option that would install
    elsewhere (``--target``, ``--prefix``, ``--root``, ``--user``) or not at all (``--dry-run``, ``--report``).
    """
    options = Options()
    rest: list[str] = []
    items = list(argv)
    i = 0
    while i < len(items):
        arg = items[i]
        name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in ("--python", "--plan-ttl", "--store", "--lock-timeout"):
            if eq:
                value = inline
            elif i + 1 < len(items):
                i += 1
                value = items[i]
            else:
                raise UsageError(f"{name} needs a value.", f"Example: holoclone install {name} VALUE requests")
            _set(options, name, value)
        elif arg in ("-q", "--quiet") or re.fullmatch(r"-q+", arg):
            options.verbosity = -1
        elif arg in ("-v", "--verbose") or re.fullmatch(r"-v+", arg):
            options.verbosity = max(options.verbosity, 0) + (len(arg) - 1 if arg.startswith("-v") and arg != "--verbose" else 1)
        elif arg == "--refresh":
            options.refresh = True
        elif arg in VALUED or (len(arg) > 2 and arg[:2] in VALUED and not arg.startswith("--")):
            rest.append(arg)
            if arg in VALUED and i + 1 < len(items):
                i += 1
                rest.append(items[i])
        else:
            rest.append(arg)
        i += 1
    return options, read_pip_args(rest)


def _set(options: Options, name: str, value: str) -> None:
    if name == "--python":
        options.python = value
    elif name == "--store":
        options.store = value
    else:
        try:
            number = float(value)
        except ValueError:
            raise UsageError(f"{name} takes a number of seconds, not {value!r}.") from None
        if number < 0 or (name == "--lock-timeout" and number == 0):
            raise UsageError(f"{name} must be {'positive' if name == '--lock-timeout' else 'zero or more'}, got {value}.")
        if name == "--plan-ttl":
            options.plan_ttl = number
        else:
            options.lock_timeout = number


def read_pip_args(args: list[str]) -> PipArgs:
    """Read pip's install arguments (see :func:`split`)."""
    parsed = PipArgs(args=list(args))
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-") and arg != "-":
            name, value = _option(args, i)
            step = 1 if value is None or "=" in arg or (len(arg) > 2 and not arg.startswith("--")) else 2
            if name in _REFUSED:
                raise UsageError(f"holoclone install does not take pip's {name}: it installs into the environment "
                                 "--python names, with pip's plan.", f"Leave out {name}, or run the environment's pip.")
            if name in ("-r", "--requirement"):
                parsed.requirement_files.append(value or "")
            elif name in ("-c", "--constraint"):
                parsed.constraint_files.append(value or "")
            elif name in ("-e", "--editable"):
                parsed.editables.append(value or "")
            elif name in ("-f", "--find-links"):
                parsed.find_links.append(value or "")
            parsed.no_deps |= name == "--no-deps"
            parsed.force_reinstall |= name == "--force-reinstall"
            parsed.require_hashes |= name == "--require-hashes"
            if name not in _PLAN_ONLY:
                if name in ("-c", "--constraint"):
                    parsed.forwarded += [name, os.path.abspath(value or "")]
                else:
                    parsed.forwarded += args[i:i + step]
            i += step
        else:
            parsed.specs.append(arg)
            i += 1
    if not (parsed.requirement_files or parsed.editables or parsed.specs):
        raise UsageError("name what to install: requirements, -r FILE or -e PATH.",
                         "Example: holoclone install --python .venv -r requirements.txt")
    parsed.forwarded += file_options(parsed.requirement_files)
    return parsed


def file_options(files: list[str]) -> list[str]:
    """The index, find-links and trusted-host options inside requirement files (and the files they include),
    as arguments: the pip runs that fetch a planned wheel or build a planned sdist are not given the files
    (they would install everything again), yet must look where pip looked.  A relative find-links folder is
    relative to its file."""
    texts, _, _ = requirement_lines(files)
    found: list[str] = []
    for path, text in texts:
        for raw in text.splitlines():
            match = _FILE_OPTION.match(raw.split(" #", 1)[0])
            if match is None:
                continue
            if match.group(3):
                found.append(match.group(3))
                continue
            name, value = match.group(1), match.group(2)
            if name in ("-f", "--find-links") and "://" not in value:
                value = os.path.normpath(os.path.join(os.path.dirname(path), os.path.expanduser(value)))
            found += [name, value]
    return found


def _option(args: list[str], i: int) -> tuple[str, str | None]:
    """(option name, its value or None) of the option at ``args[i]``."""
    arg = args[i]
    if arg.startswith("--"):
        name, eq, value = arg.partition("=")
        if eq:
            return name, value
        if name in VALUED:
            return name, args[i + 1] if i + 1 < len(args) else None
        return name, None
    name = arg[:2]
    if name in VALUED:
        if len(arg) > 2:
            return name, arg[2:].lstrip("=")
        return name, args[i + 1] if i + 1 < len(args) else None
    return arg, None


def _is_path(spec: str) -> bool:
    return "://" not in spec and (spec.startswith((".", "/", "~")) or os.sep in spec or "/" in spec
                                  or spec.endswith((".whl", ".tar.gz", ".zip")))


def requirement_lines(files: list[str]) -> tuple[list[tuple[str, str]], list[str], bool]:
    """The requirement and constraint files with every file they include: ``[(absolute path, text)]``, the
    local find-links folders they name, and whether any line carries ``--hash`` (pip's hash-checking mode).

    A missing file is recorded as ``<missing>``: pip reports it in its own words.
    """
    texts: list[tuple[str, str]] = []
    links: list[str] = []
    hashes = False
    seen: set[str] = set()

    def visit(path: str) -> None:
        nonlocal hashes
        path = os.path.abspath(path)
        if path in seen:
            return
        seen.add(path)
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                text = handle.read()
        except OSError:
            texts.append((path, "<missing>"))
            return
        texts.append((path, text))
        base = os.path.dirname(path)
        for raw in text.splitlines():
            line = raw.split(" #", 1)[0].strip()
            hashes |= "--hash" in line or line.startswith("--require-hashes")
            include, found = _INCLUDE.match(line), _FIND_LINKS.match(line)
            if include and "://" not in include.group(2):
                visit(os.path.join(base, include.group(2)))
            elif found and "://" not in found.group(1):
                links.append(os.path.normpath(os.path.join(base, found.group(1))))
            elif found and found.group(1).startswith("file:"):
                links.append(found.group(1))

    for name in files:
        visit(name)
    return texts, links, hashes


def pins(texts: list[tuple[str, str]], specs: list[str]) -> dict[str, str]:
    """``{canonical name: version}`` of every ``name==version`` requirement or constraint."""
    from ...store.catalog import canonical_name

    found: dict[str, str] = {}
    lines = [line for _, text in texts for line in text.splitlines()] + list(specs)
    for raw in lines:
        match = _PIN.match(raw.split(" #", 1)[0].split(" --hash", 1)[0].strip())
        if match:
            found[canonical_name(match.group(1))] = match.group(2)
    return found
