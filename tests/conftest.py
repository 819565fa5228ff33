"""Shared fixtures: real loop-mounted filesystems and real virtualenv runs.

Filesystem fixtures need root, loop devices and the mkfs tools.  Where those
are missing the tests that use them skip with the reason, unless
``HOLOCLONE_REQUIRE_FS=1`` (set by ``.ci/run``), where a missing filesystem is
an error: CI has them, so those tests must really run there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REQUIRE_FS = os.environ.get("HOLOCLONE_REQUIRE_FS") == "1"

# size in MB and mkfs command per filesystem
# (images are sparse: size costs nothing until used; session filesystems are shared by many tests)
_FILESYSTEMS = {
    "xfs": (2048, ["mkfs.xfs", "-q", "-m", "reflink=1"]),
    "btrfs": (1024, ["mkfs.btrfs", "-q"]),
    "ext4": (1024, ["mkfs.ext4", "-q", "-F"]),
}


def _unavailable(reason: str):
    if REQUIRE_FS:
        pytest.fail(f"HOLOCLONE_REQUIRE_FS=1 but {reason}")
    pytest.skip(reason)


def _mount(kind: str, base: Path, size_mb: int | None = None) -> Path:
    if os.geteuid() != 0:
        _unavailable(f"mounting {kind} needs root")
    mountpoint = base / f"{kind}-{uuid.uuid4().hex[:8]}"
    mountpoint.mkdir(parents=True)
    if kind == "tmpfs":
        cmd = ["mount", "-t", "tmpfs", "-o", f"size={size_mb or 1024}m", "tmpfs", str(mountpoint)]
    else:
        default_size, mkfs = _FILESYSTEMS[kind]
        if shutil.which(mkfs[0]) is None:
            _unavailable(f"{mkfs[0]} is not installed (apt-get install xfsprogs btrfs-progs)")
        image = base / f"{mountpoint.name}.img"
        with open(image, "wb") as handle:
            handle.truncate((size_mb or default_size) << 20)
        made = subprocess.run([*mkfs, str(image)], capture_output=True, text=True)
        if made.returncode:
            _unavailable(f"{mkfs[0]} failed: {made.stderr.strip()}")
        cmd = ["mount", "-o", "loop", str(image), str(mountpoint)]
    mounted = subprocess.run(cmd, capture_output=True, text=True)
    if mounted.returncode:
        _unavailable(f"cannot mount {kind} ({mounted.stderr.strip()}); loop devices or the module may be missing")
    return mountpoint


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture(scope="session")
def fs_base(tmp_path_factory) -> Path:
    # Loop images live on the disk, not in tmpfs, so large sizes cost no memory.
    return tmp_path_factory.mktemp("filesystems")


def _fs_fixture(kind: str):
    @pytest.fixture(scope="session")
    def fixture(fs_base):
        path = _mount(kind, fs_base)
        yield path
        _umount(path)

    fixture.__name__ = kind
    fixture.__doc__ = f"A freshly made, loop-mounted {kind} filesystem (session-wide)."
    return fixture


xfs = _fs_fixture("xfs")
btrfs = _fs_fixture("btrfs")
ext4 = _fs_fixture("ext4")
tmpfs = _fs_fixture("tmpfs")


@pytest.fixture
def make_fs(fs_base):
    """Mount a new filesystem of a given kind and size for one test: ``make_fs("ext4", 64)``."""
    mounted = []

    def make(kind: str, size_mb: int | None = None) -> Path:
        path = _mount(kind, fs_base, size_mb)
        mounted.append(path)
        return path

    yield make
    for path in mounted:
        _umount(path)


@pytest.fixture
def unique(request) -> str:
    """A short name unique to this test, for directories on shared session filesystems."""
    return f"{request.node.name[:40].replace('[', '-').replace(']', '')}-{uuid.uuid4().hex[:6]}"


def virtualenv(env: Path, *args: str, store: Path | None = None, check: bool = True,
               extra_env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real ``virtualenv`` command with the holoclone seeder."""
    cmd = [sys.executable, "-m", "virtualenv", "--seeder", "holoclone"]
    if store is not None:
        cmd += ["--holoclone-store", str(store)]
    cmd += [*args, str(env)]
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUALENV_", "RCC_HOLOTREE"))}
    environ.update(extra_env or {})
    result = subprocess.run(cmd, capture_output=True, text=True, env=environ, timeout=timeout)
    if check and result.returncode:
        raise AssertionError(f"virtualenv failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def env_python(env: Path) -> Path:
    return env / "bin" / "python"


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
    return next((env / "lib").glob("python*/site-packages"))


def catalogs(store: Path):
    """Every catalog in a store."""
    from holoclone_venv.store import Store

    opened = Store(store)
    return [opened.load_catalog(key) for key, _ in opened.iter_catalogs()]


def regular_files(root: Path):
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                yield path
