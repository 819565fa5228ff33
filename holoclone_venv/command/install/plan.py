"""The plan of one ``holoclone install``: pip's own answer, read from its report, cached in the store.

The plan comes from pip, run by the environment's interpreter:
``python -m pip install --dry-run --quiet --report - ARGS``.  So markers,
extras, ``-r``/``-c`` files, ``--pre``, index and find-links options, hashes,
``PIP_*`` variables, pip.conf and what is installed already decide it exactly
as they decide ``pip install ARGS``.  That needs pip 22.2 or newer (the
report); an environment without pip, or with an older one, is planned by
virtualenv's embedded pip wheel run by the same interpreter (as
``dependencies.py`` resolves), whose report has the same format.

Each report item becomes one planned item of a kind:

``store``
    a wheel from an index or find-links folder (or a remote wheel URL):
    taken from the store by its sha256, materialized with the strategy;
``local``
    a wheel file named directly (a project's freshly built wheel): installed
    without pip and not kept in the store;
``pip``
    an editable, a local folder, an sdist or a VCS checkout: installed by the
    environment's pip with ``--no-deps`` once its dependencies are in place.

A plan's key is the sha256 of everything that can change pip's answer (see
:func:`plan_key`).  A plan whose every item is pinned (``name==version`` in
the arguments or files, a direct URL or file, or pip's hash-checking mode)
never expires; any other plan expires after the plan TTL, so new releases
still arrive.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from typing import TYPE_CHECKING, Callable, Mapping
from urllib.parse import unquote, urlparse

from ...errors import HoloCloneError
from ...fsutil import folder_listing
from .pipargs import PipArgs, pins, requirement_lines
from .target import Target

if TYPE_CHECKING:
    from ...store import Store

#: Unpinned plans are asked again after this many seconds (``--plan-ttl``).
DEFAULT_PLAN_TTL = 600.0
#: pip's ``--report`` arrived in 22.2.
REPORT_PIP = (22, 2)
_KEY_FORMAT = 1
_PIP_CONFIG_NAMES = (("pip", "pip.conf"), ("pip", "pip.ini"))
_ITEM_FIELDS = {"name": str, "version": str, "url": str, "requested": bool, "sha256": str, "filename": str,
                "kind": str, "pip": list}


class InstallError(HoloCloneError):
    """The install failed; the environment is as it was (exit 1)."""


def pip_command(target: Target) -> list[str]:
    """How to run pip for ``target``: its own pip when it has one that reports, else virtualenv's embedded pip."""
    version = target.pip_version()
    if version is not None and version >= REPORT_PIP:
        return [target.python, "-m", "pip"]
    from virtualenv.seed.wheels.embed import get_embed_wheel

    release = ".".join(map(str, target.interpreter.version))
    wheel = get_embed_wheel("pip", release)
    if wheel is None:
        raise InstallError(f"the environment {target.env_dir} has no pip {'.'.join(map(str, REPORT_PIP))} or newer, "
                           f"and virtualenv bundles none for Python {release}.",
                           "Install a recent pip into it first ('python -m pip install -U pip').")
    return [target.python, os.path.join(str(wheel.path), "pip")]


def run_pip(cmd: list[str]) -> subprocess.CompletedProcess:
    """Run pip (output captured) in a process group of its own, so that when this install is stopped (Ctrl-C,
    SIGTERM) pip and the build backends it started are stopped with it, never left running."""
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                          errors="replace", start_new_session=hasattr(os, "killpg")) as process:
        try:
            stdout, stderr = process.communicate()
        except BaseException:
            stop_process_group(process)
            raise
    return subprocess.CompletedProcess(cmd, process.returncode, stdout, stderr)


def stop_process_group(process: subprocess.Popen) -> None:
    """Kill a process started with ``start_new_session`` and everything it started (where process groups
    exist), and reap it."""
    killpg = getattr(os, "killpg", None)
    if killpg is not None:
        import signal

        try:
            killpg(process.pid, signal.SIGKILL)
        except OSError:
            pass
    process.kill()
    process.wait()


def ask_pip(pip: list[str], args: PipArgs, log: Callable[..., None] | None = None) -> list[dict]:
    """Run pip's dry run and return its report's ``install`` items; :class:`InstallError` with pip's error line."""
    cmd = [*pip, "install", "--dry-run", "--quiet", "--report", "-", "--disable-pip-version-check", *args.args]
    if log is not None:
        log("holoclone: planning with pip: %s", " ".join(cmd))
    result = run_pip(cmd)
    if result.returncode:
        from ...seeding.dependencies import last_pip_error

        raise InstallError(f"pip could not plan the install: {last_pip_error(result.stderr, result.stdout)}",
                           "Nothing was changed.")
    try:
        report = json.loads(result.stdout)
        return list(report["install"])
    except (ValueError, KeyError, TypeError):
        raise InstallError("pip's --report output could not be read, so nothing was installed.",
                           "Upgrade pip in the environment ('python -m pip install -U pip').") from None


def items_of(report: list[dict]) -> list[dict]:
    """Planned items (plain dicts, stored as they are) from pip's report items."""
    return [_item(entry) for entry in report]


def _item(entry: dict) -> dict:
    meta, info = entry["metadata"], entry["download_info"]
    name, version, url = str(meta["name"]), str(meta["version"]), str(info["url"])
    direct = bool(entry.get("is_direct"))
    item: dict = {"name": name, "version": version, "url": url, "requested": bool(entry.get("requested")),
                  "direct_url": info if direct else None, "sha256": "", "filename": "", "kind": "pip", "pip": []}
    if isinstance(meta.get("requires_dist"), list):  # what a build of a local project is checked against
        item["requires"] = sorted(map(str, meta["requires_dist"]))
    if "dir_info" in info:
        from urllib.request import url2pathname  # imports http.client and email (~15 ms): only when needed

        path = url2pathname(urlparse(url).path)
        item["pip"] = ["-e", path] if info["dir_info"].get("editable") else [path]
    elif "vcs_info" in info:
        vcs = info["vcs_info"]
        tail = f"#subdirectory={info['subdirectory']}" if info.get("subdirectory") else ""
        item["pip"] = [f"{name} @ {vcs['vcs']}+{url}@{vcs['commit_id']}{tail}"]
    else:
        archive = info.get("archive_info") or {}
        hashes = archive.get("hashes") or {}
        legacy = str(archive.get("hash") or "")
        item["sha256"] = str(hashes.get("sha256") or (legacy[7:] if legacy.startswith("sha256=") else ""))
        item["filename"] = unquote(os.path.basename(urlparse(url).path))
        if item["filename"].endswith(".whl"):
            item["kind"] = "local" if direct and url.startswith("file:") else "store"
        else:
            item["pip"] = [f"{name} @ {url}" if direct else f"{name}=={version}"]
    return item


def is_pinned(items: list[dict], args: PipArgs) -> bool:
    """True when pip would give the same answer tomorrow: every item pinned by ``==`` (in the arguments, their
    files or constraints), named directly (a URL, a file, a folder whose metadata is in the key), or hash-checking."""
    from ...store.catalog import canonical_name

    texts, _, hashes = requirement_lines([*args.requirement_files, *args.constraint_files])
    if args.require_hashes or hashes:
        return True
    pinned = pins(texts, args.specs)
    for item in items:
        vcs = item["kind"] == "pip" and "vcs_info" in (item["direct_url"] or {})
        direct = item["direct_url"] is not None and not vcs
        if not direct and pinned.get(canonical_name(item["name"])) != item["version"]:
            return False
    return True


def new_plan(items: list[dict], args: PipArgs, tag: str) -> dict:
    """The stored form of a plan pip just made: its items, when, whether it is pinned, for which interpreter."""
    return {"created": time.time(), "pinned": is_pinned(items, args), "tag": tag, "items": items}


def valid_items(plan: dict) -> list[dict] | None:
    """A stored plan's items when every one has the fields and types this version writes; else None (ask pip)."""
    items = plan.get("items")
    if not isinstance(items, list):
        return None
    for item in items:
        if not isinstance(item, dict) or any(not isinstance(item.get(k), t) for k, t in _ITEM_FIELDS.items()):
            return None
        if item["kind"] not in ("store", "local", "pip") or not (item["direct_url"] is None
                                                                  or isinstance(item["direct_url"], dict)):
            return None
        if item["kind"] == "store" and ("/" in item["filename"] or not item["filename"].endswith(".whl")):
            return None
        if not isinstance(item.get("requires", []), list):
            return None
    return items


def keep_plan(store: Store, key: str, plan: dict) -> None:
    """Keep ``plan`` under ``key`` when the store is writable; a failure only costs the next run a pip plan."""
    if not store.writable:
        return
    try:
        store.write_install_plan(key, plan)
    except OSError as error:
        import logging

        logging.getLogger("holoclone").debug("holoclone: the plan was not kept: %s", error)


def fresh(plan: dict, ttl: float, now: float | None = None) -> bool:
    """Whether a stored plan may be used: pinned, or made less than ``ttl`` seconds ago."""
    if plan.get("pinned") is True:
        return True
    created = plan.get("created")
    now = time.time() if now is None else now
    return isinstance(created, (int, float)) and created <= now + 60 and now - created < ttl


# -- the key --------------------------------------------------------------------------------------
def plan_key(args: PipArgs, target: Target, planner: list[str], environ: Mapping[str, str], cwd: str,
             installed: list[str] | None = None) -> str:
    """sha256 of what decides pip's answer: the arguments and the working directory they are relative to, the
    contents of the ``-r``/``-c`` files (recursively), the local files and folders named (by content or their
    metadata files), local find-links folders' listings, ``PIP_*`` variables, pip's configuration files,
    the planning pip, the interpreter's markers and ABI, and what the environment has installed (``installed``
    when given: a build environment's plan starts from nothing)."""
    texts, links, _ = requirement_lines([*args.requirement_files, *args.constraint_files])
    links += [_local_folder(p) for p in [*args.find_links, *environ.get("PIP_FIND_LINKS", "").split()]]
    facts = target.facts
    document = {
        "format": _KEY_FORMAT,
        "args": args.args,
        "cwd": cwd,
        "files": [[path, hashlib.sha256(text.encode()).hexdigest()] for path, text in texts],
        "local": [[path, _local_digest(path)] for path in args.local_paths()],
        "find_links": [[path, folder_listing(path)] for path in links],
        "pip_env": sorted((k, v) for k, v in environ.items() if k.startswith("PIP_")),
        "pip_config": [[path, _file_digest(path)] for path in pip_config_files(environ, target.env_dir)],
        "planner": [planner[1:], target.pip_version()],
        "interpreter": {k: facts.get(k) for k in ("implementation", "release", "platform", "architecture",
                                                     "markers", "soabi", "cache_tag")},
        "installed": target.installed() if installed is None else installed,
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def _local_folder(link: str) -> str:
    """A find-links folder as a path (``file:`` URLs too); a remote one stays a URL (listed as nothing)."""
    if link.startswith("file:"):
        from urllib.request import url2pathname  # imports http.client and email (~15 ms): only when needed

        return url2pathname(urlparse(link).path)
    return link if "://" in link else os.path.abspath(link)


def _file_digest(path: str) -> str:
    from ...fsutil import hash_file

    try:
        return hash_file(path)[0]
    except OSError:
        return "missing"


def _local_digest(path: str) -> object:
    """A file by content; a project folder by the files that declare its metadata and dependencies."""
    if os.path.isdir(path):
        return [[name, _file_digest(os.path.join(path, name))] for name in ("pyproject.toml", "setup.cfg", "setup.py")]
    return _file_digest(path)


def pip_config_files(environ: Mapping[str, str], env_dir: str) -> list[str]:
    """Every file pip may read its configuration from, on any platform (absent ones cost one stat)."""
    home = os.path.expanduser("~")
    xdg_dirs = environ.get("XDG_CONFIG_DIRS", "/etc/xdg").split(os.pathsep)
    xdg_home = environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    bases = [*xdg_dirs, "/etc", xdg_home, os.path.join(home, "Library", "Application Support"),
             environ.get("APPDATA", ""), environ.get("PROGRAMDATA", "")]
    candidates = [os.path.join(base, *parts) for base in bases if base for parts in _PIP_CONFIG_NAMES]
    candidates += ["/etc/pip.conf", os.path.join(home, ".pip", "pip.conf"), os.path.join(env_dir, "pip.conf"),
                   os.path.join(env_dir, "pip.ini")]
    if environ.get("PIP_CONFIG_FILE"):
        candidates.append(environ["PIP_CONFIG_FILE"])
    return [path for path in dict.fromkeys(candidates) if os.path.isfile(path)]
