"""Plain functions the tests share: run the real ``virtualenv`` and ``holoclone``, look inside environments.

Fixtures and hooks live in ``conftest.py``; wheels are built by ``wheels.py``;
independent store checks are in ``storecheck.py``.

Every command run here is isolated from the user's own configuration:
``VIRTUALENV_*`` and ``RCC_HOLOTREE*`` variables are removed and
``VIRTUALENV_CONFIG_FILE`` names a file that does not exist, unless the test
passes its own in ``extra_env`` (a user's virtualenv.ini may itself choose
holoclone, a strategy or a store).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: The running interpreter's ``X.Y`` (environments are made for it).
PY = f"{sys.version_info[0]}.{sys.version_info[1]}"
#: The catalog tag of the running interpreter, e.g. ``cpython-311``.
TAG = f"{sys.implementation.name}-{sys.version_info[0]}{sys.version_info[1]}"
#: A virtualenv.ini that never exists: virtualenv then reads no user configuration.
NO_CONFIG_FILE = str(REPO / "tests" / ".no-such-virtualenv.ini")
_CALLER_PREFIXES = ("VIRTUALENV_", "RCC_HOLOTREE")


def isolated_environ(extra_env: dict | None = None, strip: tuple[str, ...] = ()) -> dict[str, str]:
    """``os.environ`` without the caller's virtualenv/holotree settings, plus ``extra_env``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(_CALLER_PREFIXES + strip)}
    environ["VIRTUALENV_CONFIG_FILE"] = NO_CONFIG_FILE
    environ.update(extra_env or {})
    return environ


def virtualenv_command(env: Path, *args: str, store: Path | None = None, seeder: str | None = "holoclone",
                       python: str | None = None) -> list[str]:
    """The command line :func:`virtualenv` runs (for tests that start it themselves)."""
    cmd = [python or sys.executable, "-m", "virtualenv"]
    if seeder is not None:
        cmd += ["--seeder", seeder]
    if store is not None:
        cmd += ["--holoclone-store", str(store)]
    return [*cmd, *args, str(env)]


def virtualenv(env: Path, *args: str, store: Path | None = None, check: bool = True, extra_env: dict | None = None,
               timeout: float = 600, seeder: str | None = "holoclone", cwd: Path | None = None,
               python: str | None = None) -> subprocess.CompletedProcess:
    """Run the real ``virtualenv`` command, by default with the holoclone seeder.

    ``seeder=None`` runs virtualenv's default seeder (the reference a holoclone env is compared with).
    """
    result = subprocess.run(virtualenv_command(env, *args, store=store, seeder=seeder, python=python),
                            capture_output=True, text=True, env=isolated_environ(extra_env), timeout=timeout, cwd=cwd)
    if check and result.returncode:
        raise AssertionError(f"virtualenv failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def holoclone(*args: str, store: Path | None = None, extra_env: dict | None = None,
              timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real ``holoclone`` command from this source tree (``--store`` first when given)."""
    environ = isolated_environ({"PYTHONPATH": str(REPO), **(extra_env or {})})
    prefix = ["--store", str(store)] if store is not None else []
    return subprocess.run([sys.executable, "-m", "holoclone_venv", *prefix, *args], capture_output=True, text=True,
                          env=environ, timeout=timeout)


def output(result: subprocess.CompletedProcess) -> str:
    """Everything a run printed: stdout, then stderr."""
    return (result.stdout or "") + (result.stderr or "")


def run_in(env: Path, *args: str, check: bool = True, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a program from the environment's bin directory."""
    environ = dict(os.environ)
    environ.update(extra_env or {})
    result = subprocess.run([str(env / "bin" / args[0]), *args[1:]], capture_output=True, text=True, env=environ)
    if check and result.returncode:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def site_packages(env: Path) -> Path:
    """The environment's site-packages directory."""
    return next((env / "lib").glob("*/site-packages"))


def catalogs(store: Path):
    """Every catalog in a store."""
    from holoclone_venv.store import Store

    opened = Store(store)
    return [opened.load_catalog(key) for key, _ in opened.iter_catalogs()]


def catalog_by_name(store: Path, name: str):
    """The one catalog of distribution ``name`` in ``store``."""
    found = [c for c in catalogs(store) if c.name == name]
    assert len(found) == 1, f"expected one catalog of {name}, found {len(found)}"
    return found[0]


def regular_files(root: Path):
    """Every regular file (not symlink) under ``root``."""
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                yield path


def bundled_version(distribution: str) -> str:
    """The version of ``distribution`` virtualenv bundles for the running interpreter."""
    from virtualenv.seed.wheels.embed import BUNDLE_SUPPORT

    return BUNDLE_SUPPORT[PY][distribution].split("-")[1]


def pyvenv_cfg(env: Path) -> dict[str, str]:
    """The ``key = value`` pairs of the environment's pyvenv.cfg."""
    pairs = (line.split("=", 1) for line in (env / "pyvenv.cfg").read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


_SUMMARY = re.compile(r"\bseeded .*: [\d,]+ files \(")


def summary_line(result: subprocess.CompletedProcess) -> str:
    """The one seeding summary of a run: ``seeded pip 26.3: 880 files (...) in 38 ms from STORE``.

    It is found wherever the run printed it (a ``holoclone:`` line, or virtualenv's own seeder line).
    """
    lines = [line for line in output(result).splitlines() if _SUMMARY.search(line)]
    assert len(lines) == 1, output(result)
    return lines[0]


def method_counts(result: subprocess.CompletedProcess) -> dict[str, int]:
    """The summary's files per method: ``{"reflinked": 0, "hardlinked": 0, "copied": 1529}``."""
    found = re.findall(r"([\d,]+) (reflinked|hardlinked|copied)", summary_line(result))
    return {kind: int(number.replace(",", "")) for number, kind in found}


def fallback_lines(result: subprocess.CompletedProcess) -> list[str]:
    """The lines a run printed about a link method that was not available.

    ``holoclone: reflink is not available for DIR (REASON; store on FS, env on FS), so files were copied; ADVICE``.
    """
    return [line for line in output(result).splitlines() if " is not available for " in line]


_DONE = {"copy": "copied", "hardlink": "hardlinked", "reflink": "reflinked"}


def fell_back(line: str, method: str, instead: str) -> bool:
    """True when a fallback line says ``method`` gave way to ``instead`` (``... so files were copied``)."""
    return f"{method} is not available for " in line and f"so files were {_DONE.get(instead, instead)}" in line


@contextlib.contextmanager
def read_only_bind(source: Path, target: Path):
    """``source`` mounted again, read-only, at ``target`` (as root), as a shared store is often offered."""
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "--bind", str(source), str(target)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True)
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)
