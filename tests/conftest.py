"""Fixtures and hooks: real loop-mounted filesystems, one warm-store factory, and test selection.

Filesystem fixtures (``xfs``, ``btrfs``, ``ext4``, ``tmpfs``, ``make_fs``, and
``fs``, which mounts the kind it is indirectly parametrized with) need root,
loop devices and the mkfs tools.  Where those are missing the tests that use
them skip with the reason, unless ``HOLOCLONE_REQUIRE_FS=1`` (set by
``.ci/run``), where a missing filesystem is a failure: CI has them, so those
tests must really run there.

Markers, set by :func:`pytest_collection_modifyitems`:

``root``
    Added to every test that uses a mount fixture or ``needs_root`` (directly or through
    another fixture, as seen in ``item.fixturenames``), or that is
    parametrized with a filesystem kind it mounts through
    ``request.getfixturevalue`` (a parameter value among ``xfs``, ``btrfs``,
    ``ext4``, ``tmpfs``), and to every test marked ``slow``.  Tests that need
    root without mounting, and fixtures that mount on their own, request the
    ``needs_root`` fixture (session-scoped, so any fixture may).  A test
    that mounts at run time without being marked fails, so the selection
    below cannot silently go wrong.
``slow``
    Tests that run the real ``virtualenv``, pip or another tool without a
    mount (more than a second each), set per test or per module, and every
    test using the ``warm_store`` factory.  They are marked ``root`` too.

So ``pytest -m "not root"`` runs exactly the tests that need neither root nor
mounts nor a real virtualenv run, in seconds; ``pytest -m "not slow"`` keeps
the filesystem tests but leaves out the unmounted slow ones.

``store`` is an empty, created :class:`Store` in ``tmp_path`` and ``make_catalog`` writes real
catalogs into one; a module that needs a store's path only names its fixture ``store_dir``.  The
ctypes stand-ins for macOS and Windows are in ``fakes.py``.

Plain functions shared by tests (running virtualenv and holoclone, looking
into environments) are in ``helpers.py``; wheels are built by ``wheels.py``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from helpers import virtualenv

from holoclone_venv.materialize.record import hash_of, record_bytes
from holoclone_venv.store import Store
from holoclone_venv.store.catalog import EXECUTABLE, Catalog, Entry, Script

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


@pytest.fixture(scope="session")
def needs_root() -> None:
    """For tests that need root without mounting anything (skips without it, fails under HOLOCLONE_REQUIRE_FS=1)."""
    if os.geteuid() != 0:
        _unavailable("this test needs root")


@pytest.fixture(scope="module")
def nobody_btrfs(needs_root):
    """``(base, work, user)``: a fresh btrfs, and on it ``work``, a directory owned by ``nobody``.

    ``base`` (mode 0755, outside pytest's 0700 base directory, which another
    user cannot enter) holds the mount; a test module puts there what the
    user must read (a copy of the code under test).  Needs root, setpriv and
    mkfs.btrfs: skips without them, fails under HOLOCLONE_REQUIRE_FS=1.
    """
    import pwd
    import tempfile

    for needed in ("setpriv", "mkfs.btrfs"):
        if shutil.which(needed) is None:
            _unavailable(f"running as another user on a fresh btrfs needs {needed}")
    base = Path(tempfile.mkdtemp(prefix="holoclone-nobody-"))
    base.chmod(0o755)
    mountpoint = None
    try:
        image, mountpoint = base / "btrfs.img", base / "btrfs"
        mountpoint.mkdir()
        with open(image, "wb") as handle:
            handle.truncate(512 << 20)
        for command in (["mkfs.btrfs", "-q", str(image)], ["mount", "-o", "loop", str(image), str(mountpoint)]):
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode:
                if command[0] == "mount":
                    mountpoint = None
                _unavailable(f"{command[0]} failed: {done.stderr.strip()}")
        user = pwd.getpwnam("nobody")
        work = mountpoint / "work"
        work.mkdir()
        os.chown(work, user.pw_uid, user.pw_gid)
        yield base, work, user
    finally:
        if mountpoint is not None:
            subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def unique(request) -> str:
    """A short name unique to this test, for directories on shared session filesystems."""
    return f"{request.node.name[:40].replace('[', '-').replace(']', '')}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def fs(request) -> Path:
    """The session filesystem named by the indirect parameter: ``@pytest.mark.parametrize("fs", ["xfs"], indirect=True)``."""
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="session")
def warm_store(tmp_path_factory):
    """``warm_store(fs=None, *args, fresh=False) -> Path``: a store already filled by one real virtualenv run.

    The run is ``virtualenv --seeder holoclone --holoclone-store STORE *args ENV`` in a new directory on
    ``fs`` (a mounted filesystem; None: the session's temporary directory).  Stores are cached per
    filesystem and arguments for the session, for tests that only read them or add environments
    (put environments beside the store: ``store.parent / unique``).  A test that damages or
    locks the store asks for ``fresh=True``: a store of its own, made the same way.
    """
    made: dict[tuple, Path] = {}

    def get(fs: Path | None = None, *args: str, fresh: bool = False) -> Path:
        key = (str(fs), args)
        if fresh or key not in made:
            parent = fs if fs is not None else tmp_path_factory.mktemp("warm")
            base = parent / f"warm-{uuid.uuid4().hex[:8]}"
            base.mkdir()
            virtualenv(base / "first", *args, store=base / "store")
            if fresh:
                return base / "store"
            made[key] = base / "store"
        return made[key]

    return get


#: Fixtures that mount a filesystem or need root.
MOUNT_FIXTURES = {"xfs", "btrfs", "ext4", "tmpfs", "make_fs", "fs", "fs_base", "needs_root"}
#: Parameter values that name a filesystem a test mounts with ``request.getfixturevalue``.
MOUNT_KINDS = {"xfs", "btrfs", "ext4", "tmpfs"}
#: Fixtures that run the real virtualenv.
SLOW_FIXTURES = {"warm_store"}


def _mounts(item) -> bool:
    if MOUNT_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    params = getattr(getattr(item, "callspec", None), "params", {})
    return any(isinstance(value, str) and value in MOUNT_KINDS for value in params.values())


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)
        if not item.get_closest_marker("root") and (_mounts(item) or item.get_closest_marker("slow")):
            item.add_marker(pytest.mark.root)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Fail a test that mounted a filesystem at run time without carrying the ``root`` marker."""
    outcome = yield
    report = outcome.get_result()
    if call.when != "call" or item.get_closest_marker("root"):
        return
    used = set(getattr(getattr(item, "_request", None), "_fixture_defs", {}) or {})
    if used & MOUNT_FIXTURES:
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} used {sorted(used & MOUNT_FIXTURES)} at run time but is not marked "
                           "'root': teach conftest.pytest_collection_modifyitems about it")


# -- a store and its catalogs: ``store`` is always an opened Store (a plain path is ``store_dir``) --
@pytest.fixture
def store(tmp_path):
    """An empty, created store under tmp_path."""
    made = Store(tmp_path / "store", lock_timeout=5.0)
    made.check(create=True)
    return made


@pytest.fixture
def make_catalog():
    """``make_catalog(store, name, files, version="1.0", executable=(), scripts=(), write=True)``.

    Stores each file's bytes as an object (executable ones as ``.x``), stores the
    wheel's RECORD listing them, and writes the catalog, as the importer would.
    """

    def make(target: Store, name: str, files: dict, version: str = "1.0", executable=(), scripts=(),
             write: bool = True, tag: str = "cpython-311") -> Catalog:
        entries = []
        for path, data in sorted(files.items()):
            digest = hashlib.sha256(data).hexdigest()
            is_exe = path in executable
            if not target.has_object(digest, len(data), is_exe):
                staged = target.tmp_file("test-object")
                with open(staged, "xb") as handle:
                    handle.write(data)
                target.adopt_object(staged, digest, is_exe)
            entries.append(Entry("purelib", path, digest, len(data), EXECUTABLE if is_exe else 0))
        dist_info = f"{name}-{version}.dist-info"
        rows = [(path, hash_of(data), len(data)) for path, data in sorted(files.items())]
        rows.append((f"{dist_info}/RECORD", "", ""))
        record = target.put_bytes(record_bytes(rows))
        wheel = f"{name}-{version}-py3-none-any.whl"
        catalog = Catalog(
            name=name, version=version, wheel=wheel,
            wheel_sha256=hashlib.sha256(f"{name}-{version}-{tag}".encode() + os.urandom(8)).hexdigest(),
            tag=tag, dist_info=dist_info, root="purelib", record=record,
            entries=tuple(entries), scripts=tuple(Script(n, "console", t) for n, t in scripts),
        )
        if write:
            target.write_catalog(catalog)
        return catalog

    return make
