"""Local projects built the way pip builds them, with the build environment taken from the store.

pip builds a local folder, a local sdist or an editable (PEP 517, PEP 660) in
an isolated environment: a temporary prefix into which a second pip installs
the project's ``[build-system] requires``, hidden from the target
environment's own packages by a ``sitecustomize``.  Making that environment
is most of what a tox, nox or hatch run spends on the project, on every run.

:class:`Builder` makes the same build: the requirements are planned by the
environment's pip (``--ignore-installed``, with the index options of the
command line; the plan cached in the store like every install plan) and
materialized from the store into a build environment in the store's
``tmp/`` folder (reflinks, bytecode shipped); the backend runs in the
target's interpreter with pip's isolation, one process serving every hook of
a build (``_backend.py``).  The built wheel is installed like a local wheel.

What it cannot build as pip would is raised as :class:`NotBuildable`, and the
item goes to the environment's pip as before: a project without a
``[build-system]`` table (pip's legacy setuptools route), a build requirement
that is not a wheel, a backend without ``build_editable``, pip options or
settings that change how pip builds (``--no-build-isolation``,
``--config-settings``, ...).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Mapping

from .buildenv import BuildContext, NotBuildable, build_requirements
from .plan import InstallError, stop_process_group
from .target import Target

LOG = logging.getLogger("holoclone")
#: pip options and configuration keys that change how pip builds: pip builds then.
_PIP_BUILDS = {"--no-build-isolation", "-C", "--config-settings", "--global-option", "--build-option",
               "--no-use-pep517", "--use-pep517", "--check-build-dependencies", "--build-constraint"}
_PIP_BUILD_KEYS = {name.lstrip("-") for name in _PIP_BUILDS if name.startswith("--")}
_BACKEND = Path(__file__).with_name("_backend.py")
_TAIL = 20  # lines of a failed backend's output shown at default verbosity
# pip's isolation (pip/_internal/build_env.py): the environment's own site-packages leave sys.path, the
# build environment's folder joins it through site.addsitedir so that its .pth files are processed.
_SITECUSTOMIZE = """\
import os, site, sys
original = sys.path[:]
known = set()
for path in (site.getsitepackages() if hasattr(site, "getsitepackages") else []):
    site.addsitedir(path, known_paths=known)
system = set(os.path.normcase(path) for path in sys.path[len(original):])
sys.path = [path for path in original if os.path.normcase(path) not in system]
site.addsitedir({site_dir!r})
"""


class StalePlan(InstallError):
    """A built project does not match the stored plan (its version or dependencies changed): plan again."""


def source_of(item: dict) -> tuple[str, bool] | None:
    """``(path, editable)`` of a planned item that is a local folder or sdist (what pip would build), else None."""
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    info = item.get("direct_url")
    if item["kind"] != "pip" or not isinstance(info, dict) or not str(info.get("url", "")).startswith("file:"):
        return None
    path = url2pathname(urlparse(info["url"]).path)
    if isinstance(info.get("dir_info"), dict):
        return (path, bool(info["dir_info"].get("editable"))) if os.path.isdir(path) else None
    if "archive_info" in info and path.endswith((".tar.gz", ".zip")) and os.path.isfile(path):
        return path, False
    return None


def pip_builds(args: list[str], environ: Mapping[str, str], config_files: list[str]) -> str | None:
    """Why pip must build this command's projects itself (its options or settings change pip's build), or None."""
    for arg in args:
        name = arg.partition("=")[0] if arg.startswith("--") else arg[:2]
        if name in _PIP_BUILDS:
            return f"pip's {name} is given"
    for variable in (f"PIP_{key.upper().replace('-', '_')}" for key in _PIP_BUILD_KEYS):
        if variable in environ:
            return f"{variable} is set"
    import configparser

    for path in config_files:
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError):
            return f"pip's configuration {path} could not be read"
        if any(parser.has_option(section, key) for section in parser.sections() for key in _PIP_BUILD_KEYS):
            return f"pip's configuration {path} sets how it builds"
    return None


def build_system(project: str) -> tuple[list[str], str, list[str]]:
    """``(requires, backend, backend-path)`` of a project's ``[build-system]`` as pip reads them.

    :class:`NotBuildable` without a readable pyproject.toml that has the table (pip then takes its legacy
    setuptools route, or reports the file in its own words).
    """
    path = os.path.join(project, "pyproject.toml")
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise NotBuildable(f"{project} has no pyproject.toml") from None
    try:
        import tomllib  # type: ignore[import-not-found,unused-ignore]
    except ImportError:  # Python < 3.11
        import tomli as tomllib  # type: ignore[no-redef,import-not-found,unused-ignore]
    try:
        table = tomllib.loads(text).get("build-system")
    except ValueError:
        raise NotBuildable(f"{path} is not valid TOML") from None
    if not isinstance(table, dict) or not isinstance(table.get("requires"), list) \
            or not all(isinstance(r, str) for r in table["requires"]):
        raise NotBuildable(f"{path} has no [build-system] requires")
    backend = table.get("build-backend") or "setuptools.build_meta:__legacy__"
    backend_path = table.get("backend-path") or []
    if not isinstance(backend, str) or not isinstance(backend_path, list):
        raise NotBuildable(f"{path} has a malformed [build-system] table")
    return list(table["requires"]), backend, [os.path.join(project, str(p)) for p in backend_path]


class Builder:
    """Builds the local projects of one install into wheels; everything it made goes with :meth:`close`."""

    def __init__(self, context: BuildContext) -> None:
        self.context = context
        self._scratch: Path | None = None

    def build(self, item: dict) -> dict:
        """The item as a ``local`` item whose ``wheel`` is the project built by its PEP 517 backend.

        Raises :class:`NotBuildable` (pip builds it), :class:`StalePlan` (the built wheel's name, version
        or requirements differ from the plan's) or :class:`InstallError` (the build failed).
        """
        found = source_of(item)
        if found is None:
            raise NotBuildable(f"{item['url']} is not a local project")
        source, editable = found
        work = Path(tempfile.mkdtemp(prefix="build-", dir=self._scratch_dir()))
        project = _unpack(source, work / "src") if os.path.isfile(source) else source
        requires, backend, backend_path = build_system(project)
        if sys.stderr.isatty() and LOG.isEnabledFor(logging.INFO):  # a build can take long: say what it waits for
            LOG.info("holoclone: building %s with %s ...", os.path.basename(source.rstrip(os.sep)), backend)
        installed = build_requirements(self.context, work / "env", requires, {})
        kind = "editable" if editable else "wheel"
        with Hooks(self.context.target.python, project, backend, backend_path, self._isolation(work),
                   work / "backend.log") as hooks:
            extra = hooks.call(f"get_requires_for_build_{kind}", None)  # (config_settings)
            if not _satisfied(extra, installed, self.context.target):
                hooks.close()  # the new packages' .pth files are read by a new process only
                installed = build_requirements(self.context, work / "env", [*requires, *map(str, extra)],
                                               installed)
                hooks.start()
            (work / "dist").mkdir()
            # (wheel_directory, config_settings, metadata_directory)
            name = hooks.call(f"build_{kind}", str(work / "dist"), None, None)
        wheel = work / "dist" / str(name)
        if not isinstance(name, str) or os.path.basename(name) != name or not name.endswith(".whl") \
                or not wheel.is_file():
            raise InstallError(f"the build backend of {project} named {name!r} as its wheel, which it did not make "
                               "in the folder it was given; nothing was changed.")
        return {**item, "kind": "local", "wheel": str(wheel), **_checked(wheel, item, self.context.check_requires)}

    def close(self) -> None:
        """Remove the build environments, unpacked sdists and wheels."""
        if self._scratch is not None:
            if self.context.store.writable:
                self.context.store.remove(self._scratch)
            else:
                shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def _scratch_dir(self) -> Path:
        # In the store's tmp/ when it can be written: the build environment is then cloned from the store.
        if self._scratch is None:
            store = self.context.store
            self._scratch = store.staging_dir("build") if store.writable else Path(
                tempfile.mkdtemp(prefix="holoclone-build-"))
        return self._scratch

    def _isolation(self, work: Path) -> dict[str, str]:
        custom = work / "isolation"
        custom.mkdir(exist_ok=True)
        (custom / "sitecustomize.py").write_text(_SITECUSTOMIZE.format(site_dir=str(work / "env" / "site")))
        environ = dict(self.context.environ)
        environ.update(PYTHONNOUSERSITE="1", PYTHONPATH=str(custom),
                       PATH=os.pathsep.join(filter(None, [str(work / "env" / "bin"), environ.get("PATH")])))
        return environ


def _satisfied(extra: Any, installed: dict[str, str], target: Target) -> bool:
    """Whether the requirements a backend asked for (``get_requires_for_build_*``) are in the build environment."""
    from packaging.requirements import InvalidRequirement, Requirement

    from ...store.catalog import canonical_name

    if not isinstance(extra, list):
        raise InstallError(f"the build backend answered {extra!r} for its build requirements, not a list.")
    markers = {**dict(target.interpreter.markers), "extra": ""}
    for text in extra:
        try:
            requirement = Requirement(str(text))
        except InvalidRequirement as error:
            raise InstallError(f"the build backend asked for {text!r}, which is not a requirement: {error}.") from None
        if requirement.marker is not None and not requirement.marker.evaluate(markers):
            continue
        version = installed.get(canonical_name(requirement.name))
        if version is None or not requirement.specifier.contains(version, prereleases=True):
            return False
    return True


def _unpack(archive: str, into: Path) -> str:
    """Unpack an sdist as pip does (its single top folder is the project); members that would land outside
    ``into`` or are links out of it refuse the archive."""
    import tarfile
    import zipfile

    into.mkdir()
    try:
        if archive.endswith(".zip"):
            with zipfile.ZipFile(archive) as bundle:
                bundle.extractall(into)  # zipfile drops absolute and ".." parts of member names
        else:
            if not hasattr(tarfile, "data_filter"):
                raise NotBuildable("this Python's tarfile cannot refuse unsafe sdist members (no data filter)")
            with tarfile.open(archive) as bundle:
                bundle.extractall(into, filter="data")
    except (OSError, tarfile.TarError, zipfile.BadZipFile, EOFError) as error:
        raise InstallError(f"the sdist {archive} could not be unpacked: {error}; nothing was changed.",
                           "Rebuild it.") from None
    entries = os.listdir(into)
    return str(into / entries[0]) if len(entries) == 1 and (into / entries[0]).is_dir() else str(into)


def _checked(wheel: Path, item: dict, check_requires: bool) -> dict:
    """Name and version of the built wheel, checked against the planned item's (when it has them)."""
    from email.parser import BytesParser
    import zipfile

    from ...store.catalog import canonical_name

    try:
        with zipfile.ZipFile(wheel) as bundle:
            member = next(n for n in bundle.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
            metadata = BytesParser().parsebytes(bundle.read(member))
    except (OSError, StopIteration, zipfile.BadZipFile, KeyError):
        raise InstallError(f"the build backend made {wheel.name}, which is not a wheel with METADATA.") from None
    name, version = str(metadata["Name"]), str(metadata["Version"])
    if item["name"] and (canonical_name(item["name"]) != canonical_name(name)
                         or _normal_version(item["version"]) != _normal_version(version)) \
            or check_requires and "requires" in item \
            and _normal_requires(item["requires"]) != _normal_requires(metadata.get_all("Requires-Dist") or []):
        raise StalePlan(f"{name} {version} as built today does not match the plan made for {item['name']} "
                        f"{item['version']}.")
    return {"name": name, "version": version}


def _normal_version(text: str) -> object:
    """A version to compare (``1.0`` equals ``1.0.0``), or the text when it is not a PEP 440 version."""
    from packaging.version import InvalidVersion, Version

    try:
        return Version(text)
    except InvalidVersion:
        return text


def _normal_requires(texts: list) -> list[str]:
    """Requirements as packaging writes them, sorted: spelled differently by pip's report and the METADATA
    file, the same requirement compares equal."""
    from packaging.requirements import InvalidRequirement, Requirement

    found = []
    for text in map(str, texts):
        try:
            found.append(str(Requirement(text)))
        except InvalidRequirement:
            found.append(text.strip())
    return sorted(found)


class Hooks:
    """One backend process (``_backend.py``) in the target's interpreter, answering hook calls in turn."""

    def __init__(self, python: str, project: str, backend: str, backend_path: list[str], environ: dict[str, str],
                 log: Path) -> None:
        self._cmd = [python, str(_BACKEND), backend, json.dumps(backend_path)]
        self._project, self._environ, self._log = project, environ, log
        self._process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        with open(self._log, "ab") as log:
            self._process = subprocess.Popen(self._cmd, cwd=self._project, env=self._environ, stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE, stderr=log, text=True,
                                             start_new_session=hasattr(os, "killpg"))

    def call(self, hook: str, *args: Any) -> Any:
        """The hook's return value; :class:`NotBuildable` when the backend lacks it, :class:`InstallError` when it
        fails (with the last line the backend printed)."""
        assert self._process is not None and self._process.stdin and self._process.stdout
        LOG.debug("holoclone: build backend hook %s in %s", hook, self._project)
        try:
            self._process.stdin.write(json.dumps({"hook": hook, "args": args}) + "\n")
            self._process.stdin.flush()
        except OSError:
            pass  # the backend is gone: its answer (none) says so below
        answer = json.loads(self._process.stdout.readline() or '{"error": "the backend process ended"}')
        if answer.get("missing"):
            raise NotBuildable(f"the build backend has no {hook} hook")
        if "error" in answer:
            # As pip does, the backend's own words come first (its last lines; all of them at -v).
            lines = self._log.read_text(errors="replace").rstrip().splitlines()
            LOG.debug("%s", "\n".join(lines[:-_TAIL]))
            LOG.warning("%s", "\n".join(f"  {line}" for line in lines[-_TAIL:]))
            raise InstallError(f"building {self._project} failed in {hook}: {answer['error']}; the environment is "
                               "as it was.", "The build backend's output is above (all of it with -v).")
        return answer["result"]

    def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin:
            process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            stop_process_group(process)

    def __enter__(self) -> Hooks:
        return self

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        if error is None:
            self.close()
        elif self._process is not None:  # Ctrl-C, SIGTERM, a failed hook: the backend and its children stop
            stop_process_group(self._process)
            self._process = None

