"""``holoclone install``: the same environment as ``pip install`` with the same arguments, from the store.

Every case runs the real pip twice on the same inputs: once as ``ENV/bin/python -m pip install ARGS``
and once through ``holoclone install --python ENV ARGS``, into two environments made alike, and compares
what pip itself says afterwards (``pip freeze --all`` and ``pip inspect``).  The wheels are small but real
(extras, markers, console scripts, two versions of one distribution) and come from a local find-links
folder with no index, so no test needs the network.  Everything lives on a real XFS filesystem.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest
from helpers import holoclone, output, site_packages, virtualenv
from wheels import WheelSpec, build_wheel

from holoclone_venv.platforms.linux import shares_extents

pytestmark = pytest.mark.slow

#: pip reaches no index: everything comes from the find-links folder.
OFFLINE = {"PIP_INDEX_URL": "http://127.0.0.1:9/", "PIP_EXTRA_INDEX_URL": "", "PIP_FIND_LINKS": "",
           "PIP_CONFIG_FILE": os.devnull, "PIP_RETRIES": "0", "PIP_TIMEOUT": "2", "PIP_NO_INPUT": "1"}


def _wheel(dest: Path, name: str, version: str, requires: tuple[str, ...] = (), extras: tuple[str, ...] = (),
           scripts: str | None = None) -> Path:
    spec = WheelSpec(name, version, entry_points=scripts)
    spec.add(f"{name}/__init__.py", f"VERSION = {version!r}\n\ndef main():\n    print('{name}', VERSION)\n")
    text = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    text += "".join(f"Provides-Extra: {extra}\n" for extra in extras)
    text += "".join(f"Requires-Dist: {r}\n" for r in requires)
    spec.add(f"{spec.dist_info}/METADATA", text)
    return build_wheel(dest, spec)


@pytest.fixture(scope="module")
def house(tmp_path_factory) -> Path:
    """A find-links folder: alpha (an extra, a marker that never holds, a console script), beta 1.0 and 2.0,
    gamma (alpha's extra), delta (behind the marker), and a local project folder with an in-tree backend."""
    dest = tmp_path_factory.mktemp("house") / "wheels"
    _wheel(dest, "alpha", "1.0", requires=("beta>=1.0", 'gamma; extra == "more"', 'delta; python_version < "3"'),
           extras=("more",), scripts="[console_scripts]\nalpha = alpha:main\n")
    _wheel(dest, "beta", "1.0")
    _wheel(dest, "beta", "2.0", scripts="[console_scripts]\nbeta = beta:main\n")
    _wheel(dest, "gamma", "1.0")
    _wheel(dest, "delta", "1.0")
    return dest


@pytest.fixture
def envs(xfs, unique):
    """Two environments made alike (holoclone seeds pip into both from a store on XFS), and that store."""
    store = xfs / f"store-{unique}"
    made = []
    for name in ("pip", "holo"):
        env = xfs / f"env-{name}-{unique}"
        virtualenv(env, "--no-setuptools", "--no-wheel", store=store)
        made.append(env)
    return made[0], made[1], store


def pip_install(env: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(env / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, env={**os.environ, **OFFLINE}, cwd=cwd)


def hc_install(env: Path | None, store: Path, *args: str, extra_env: dict | None = None,
               cwd: Path | None = None) -> subprocess.CompletedProcess:
    target = ["--python", str(env)] if env is not None else []
    if cwd is None:
        return holoclone("install", *target, *args, store=store, extra_env={**OFFLINE, **(extra_env or {})})
    from helpers import REPO, isolated_environ

    environ = isolated_environ({"PYTHONPATH": str(REPO), **OFFLINE, **(extra_env or {})})
    return subprocess.run([str(Path(os.sys.executable)), "-m", "holoclone_venv", "--store", str(store), "install",
                           *target, *args], capture_output=True, text=True, env=environ, cwd=cwd)


def freeze(env: Path) -> list[str]:
    result = subprocess.run([str(env / "bin" / "python"), "-m", "pip", "freeze", "--all"], capture_output=True,
                            text=True, check=True)
    return sorted(result.stdout.split("\n"))


def inspect(env: Path) -> dict[str, tuple]:
    """What ``pip inspect`` says of each distribution, without what differs by installer."""
    result = subprocess.run([str(env / "bin" / "python"), "-m", "pip", "inspect"], capture_output=True, text=True,
                            check=True)
    found = {}
    for dist in json.loads(result.stdout)["installed"]:
        meta = dist["metadata"]
        found[meta["name"]] = (meta["version"], dist.get("requested"), dist.get("direct_url"))
    return found


def same_as_pip(env_pip: Path, env_holo: Path) -> None:
    assert freeze(env_holo) == freeze(env_pip)
    assert inspect(env_holo) == inspect(env_pip)
    check = subprocess.run([str(env_holo / "bin" / "python"), "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout


def test_extras_and_markers_as_pip_with_requested_scripts_and_reflinks(envs, house):
    env_pip, env_holo, store = envs
    args = ["--no-index", "-f", str(house), "alpha[more]"]
    assert pip_install(env_pip, *args).returncode == 0
    result = hc_install(env_holo, store, *args)
    assert result.returncode == 0, output(result)
    assert "holoclone: installed" in result.stderr and "plan from pip" in result.stderr
    same_as_pip(env_pip, env_holo)
    site = site_packages(env_holo)
    assert "delta" not in freeze(env_holo)[0] and not list(site.glob("delta*"))
    assert (site / "alpha-1.0.dist-info" / "REQUESTED").exists()
    assert not (site / "beta-1.0.dist-info" / "REQUESTED").exists()  # a dependency, not asked for
    # The console script runs with the environment's interpreter.
    script = env_holo / "bin" / "alpha"
    assert script.read_text().startswith(f"#!{env_holo / 'bin' / 'python'}")
    assert subprocess.run([str(script)], capture_output=True, text=True).stdout.split() == ["alpha", "1.0"]
    # Package files (bytecode included) are reflinks of the store's objects: shared extents on XFS.
    files = [p for p in (site / "alpha").rglob("*") if p.is_file()]
    assert any(p.suffix == ".pyc" for p in files) and all(shares_extents(str(p)) for p in files)
    # pip uninstalls it completely, console script included.
    subprocess.run([str(env_holo / "bin" / "python"), "-m", "pip", "uninstall", "-y", "alpha"], check=True,
                   capture_output=True)
    assert not script.exists() and not (site / "alpha").exists()
