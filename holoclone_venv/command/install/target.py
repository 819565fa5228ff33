"""The environment ``holoclone install`` installs into: found, checked to be virtual, and asked once.

The target is an existing virtual environment, whoever made it (virtualenv,
venv, uv): ``--python`` names its directory or its interpreter, else
``$VIRTUAL_ENV``.  Its own interpreter is asked (one short subprocess) for
what decides a pip plan and where files go: ``sys.prefix`` against
``sys.base_prefix`` (a non-virtual target is refused), the install scheme's
directories, the marker environment and the ABI.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Mapping, NamedTuple

from ...environment import Interpreter, Layout
from ...errors import HoloCloneError

# Runs inside the target interpreter (isolated, but with site: before 3.11 site.py makes sys.prefix the venv).
_QUERY = r"""
import json, os, platform, sys, sysconfig
names = sysconfig.get_scheme_names()
scheme = "venv" if "venv" in names else None
paths = sysconfig.get_paths(scheme) if scheme else sysconfig.get_paths()
impl = sys.implementation
iv = impl.version
version = "%d.%d.%d" % iv[:3] + ("" if iv.releaselevel == "final" else iv.releaselevel[0] + str(iv.serial))
markers = {
    "implementation_name": impl.name, "implementation_version": version, "os_name": os.name,
    "platform_machine": platform.machine(), "platform_release": platform.release(),
    "platform_system": platform.system(), "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "platform_python_implementation": platform.python_implementation(),
    "python_version": ".".join(platform.python_version_tuple()[:2]), "sys_platform": sys.platform,
}
json.dump({
    "prefix": sys.prefix, "base_prefix": getattr(sys, "base_prefix", sys.prefix),
    "executable": sys.executable, "implementation": platform.python_implementation(),
    "release": list(sys.version_info[:3]), "platform": sysconfig.get_platform(),
    "architecture": 64 if sys.maxsize > 2**32 else 32, "markers": markers,
    "soabi": sysconfig.get_config_var("SOABI") or "", "cache_tag": impl.cache_tag or "",
    "purelib": paths["purelib"], "platlib": paths["platlib"], "scripts": paths["scripts"],
}, sys.stdout)
"""


class TargetError(HoloCloneError):
    """The target is missing or is not a virtual environment (a usage error: exit 2)."""


class Target(NamedTuple):
    """An existing virtual environment and what its interpreter said about itself."""

    env_dir: str
    python: str
    interpreter: Interpreter
    layout: Layout
    #: What decides a pip plan besides the arguments: markers, ABI, platform (see plan keys).
    facts: dict

    @property
    def site_dirs(self) -> list[str]:
        """purelib, and platlib when it differs: where installed distributions are listed."""
        return list(dict.fromkeys((self.layout.purelib, self.layout.platlib)))

    def installed(self) -> list[str]:
        """Names of the ``.dist-info``/``.egg-info`` entries installed now (sorted): pip's plan depends on them."""
        found = []
        for site in self.site_dirs:
            try:
                names = os.listdir(site)
            except FileNotFoundError:
                continue
            found += [n for n in names if n.endswith((".dist-info", ".egg-info", ".egg-link"))]
        return sorted(found)

    def pip_version(self) -> tuple[int, ...] | None:
        """The version of the pip installed in the environment, or None when it has none."""
        from ...store.catalog import canonical_name

        for entry in self.installed():
            stem, _, suffix = entry.rpartition(".")
            name, _, version = stem.partition("-")
            if suffix == "dist-info" and canonical_name(name) == "pip":
                return tuple(int(p) if p.isdigit() else 0 for p in version.split(".")[:3])
        return None


def find_target(python: str | None, environ: Mapping[str, str]) -> Target:
    """The environment ``--python`` names (its directory or interpreter), else ``$VIRTUAL_ENV``.

    Raises :class:`TargetError` with one sentence when there is none, when it
    does not exist or has no interpreter, or when it is not a virtual
    environment (``sys.prefix == sys.base_prefix``, no ``pyvenv.cfg``).
    """
    given = python or environ.get("VIRTUAL_ENV")
    if not given:
        raise TargetError("no environment to install into: no --python was given and VIRTUAL_ENV is not set.",
                          "Pass --python ENV (the environment's directory or its interpreter), or activate it.")
    given = os.path.abspath(os.path.expanduser(given))
    if os.path.isdir(given):
        executable = _interpreter_in(given)
    elif os.path.isfile(given):
        executable = given
    else:
        raise TargetError(f"the environment {given} does not exist.", "Create it first, or pass another --python.")
    facts = _query(executable)
    env_dir = facts["prefix"]
    if os.path.normcase(os.path.realpath(env_dir)) == os.path.normcase(os.path.realpath(facts["base_prefix"])) \
            or not os.path.isfile(os.path.join(env_dir, "pyvenv.cfg")):
        raise TargetError(f"{given} is not a virtual environment (its interpreter's prefix {env_dir} is the "
                          "base installation's), so nothing was installed.",
                          "Create one with virtualenv or 'python -m venv' and pass it with --python.")
    release = tuple(facts["release"])
    interpreter = Interpreter(
        executable=executable, implementation=facts["implementation"], version=release[:2], release=release,
        platform=facts["platform"], architecture=facts["architecture"],
        markers=tuple(sorted(facts["markers"].items())),
    )
    include = os.path.join(env_dir, "include", "site", f"python{release[0]}.{release[1]}")
    layout = Layout(purelib=facts["purelib"], platlib=facts["platlib"], scripts=facts["scripts"], data=env_dir,
                    include=include, executable=executable)
    return Target(env_dir, executable, interpreter, layout, facts)


def _interpreter_in(env_dir: str) -> str:
    """The interpreter of an environment directory (``bin/python`` or ``Scripts/python.exe``)."""
    for candidate in (("bin", "python"), ("bin", "python3"), ("Scripts", "python.exe")):
        path = os.path.join(env_dir, *candidate)
        if os.path.isfile(path):
            return path
    raise TargetError(f"{env_dir} has no Python interpreter (no bin/python), so it is not a virtual environment "
                      "and nothing was installed.", "Pass an environment made by virtualenv, venv or uv.")


def _query(executable: str) -> dict:
    try:
        result = subprocess.run([executable, "-I", "-c", _QUERY], capture_output=True, text=True,
                                stdin=subprocess.DEVNULL, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise TargetError(f"cannot run the interpreter {executable}: {getattr(error, 'strerror', None) or error}.",
                          "Pass a working environment with --python.") from None
    try:
        if result.returncode:
            raise ValueError(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "no output")
        return json.loads(result.stdout)
    except (ValueError, IndexError) as error:
        raise TargetError(f"the interpreter {executable} did not describe itself ({error}).",
                          "Pass a working Python environment with --python.") from None
