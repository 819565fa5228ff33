"""A hostile co-user of a group-shared store: what another account in the store's group can plant.

The store is made group-shared as teams do (folders of mode 2775, group ``nogroup``), and the
co-user is the real account ``nobody`` (its own group is the store's), running ``sh`` through
``setpriv``: it can rename, remove and create entries in the store's folders, not change the
owner's files.  The store's owner is root here, as on a team store.  Everything runs the real
``virtualenv`` and ``holoclone`` commands on a loop-mounted XFS.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import TAG, holoclone, output, run_in, site_packages, virtualenv
from wheels import write_wheel

NOBODY = 65534
OLD = 1_000_000_000  # 2001: older than any grace period
#: pip must not reach an index: every wheel comes from the test's wheelhouse.
OFFLINE = {"PIP_INDEX_URL": "http://127.0.0.1:9/", "PIP_EXTRA_INDEX_URL": "", "PIP_FIND_LINKS": "",
           "PIP_CONFIG_FILE": os.devnull, "PIP_RETRIES": "0", "PIP_TIMEOUT": "2"}


@pytest.fixture(autouse=True)
def _setpriv(needs_root):
    if shutil.which("setpriv") is None:
        pytest.skip("acting as another account needs setpriv")


def share(store: Path) -> Path:
    """Make ``store`` group-shared: its folders 2775, group ``nogroup`` (the co-user's), files as they are."""
    for dirpath, dirnames, _ in os.walk(store):
        if Path(dirpath).parent == store / "templates":
            dirnames[:] = []  # a template's own tree stays sealed
            continue
        os.chown(dirpath, -1, NOBODY)
        os.chmod(dirpath, 0o2775)
    return store


def as_co_user(store: Path, script: str) -> None:
    """Run the shell ``script`` in the store's folder as ``nobody``, a member of the store's group only."""
    done = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "sh", "-ec", script],
                          cwd=store, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def private_folder(work: Path) -> dict[Path, bytes]:
    """A 0700 folder of the store's owner beside the store, with old files; returns them with their content."""
    private = work / "private"
    (private / "inner").mkdir(parents=True)
    files = {private / "notes.txt": b"keep me\n", private / "stage-x.1.1": b"a staging name\n",
             private / "inner" / "deep.txt": b"me too\n"}
    for path, data in files.items():
        path.write_bytes(data)
        os.utime(path, (OLD, OLD))
    os.utime(private / "inner", (OLD, OLD))
    private.chmod(0o700)
    return files


def intact(files: dict[Path, bytes]) -> bool:
    return all(path.is_file() and path.read_bytes() == data for path, data in files.items())


def refusal(result: subprocess.CompletedProcess, needle: str) -> str:
    """The one line naming ``needle`` of a refused run (non-zero exit, no traceback)."""
    text = output(result)
    assert result.returncode != 0 and "Traceback" not in text, text
    lines = [line for line in text.splitlines() if needle in line]
    assert len(lines) == 1, text
    return lines[0]


@pytest.fixture(scope="module")
def warm(warm_store, xfs) -> Path:
    return warm_store(xfs)


@pytest.fixture
def shared(warm, xfs, unique) -> Path:
    """A group-shared copy of the warm store, in a folder of its own."""
    work = xfs / unique
    work.mkdir()
    subprocess.run(["cp", "-a", "--reflink=auto", str(warm), str(work / "store")], check=True)
    return share(work / "store")


# -- 1: a link where a store folder belongs --------------------------------------------------------------
@pytest.mark.parametrize("planted", ["tmp", "wheels", "objects/zz"])
def test_a_folder_link_planted_by_a_co_user_never_makes_holoclone_delete_outside_the_store(shared, planted):
    work = shared.parent
    files = private_folder(work)
    as_co_user(shared, f"if [ -e {planted} ]; then mv {planted} {planted}.moved; fi; ln -s {work / 'private'} {planted}")
    link = shared / planted

    gc = holoclone("store", "gc", "--older-than", "0", store=shared)
    line = refusal(gc, str(link))
    assert line.endswith(f"the store folder {link} is a symbolic link or not a folder, and holoclone never follows "
                         "one there. Remove it ('holoclone store verify --repair' does) and check who else can "
                         "write into the store."), line
    assert intact(files)
    if planted == "tmp":  # every seeding reclaims tmp/ first
        seeded = virtualenv(work / "refused", store=shared, check=False)
        refusal(seeded, str(link))
        assert intact(files)

    repaired = holoclone("store", "verify", "--repair", store=shared)
    assert repaired.returncode == 0, output(repaired)
    assert not os.path.lexists(link) and intact(files)
    assert holoclone("store", "gc", store=shared).returncode == 0
    virtualenv(work / "env", store=shared)
    assert str(work / "env") in run_in(work / "env", "pip", "--version").stdout
    assert intact(files) and sorted(p.name for p in (work / "private").iterdir()) == ["inner", "notes.txt", "stage-x.1.1"]


# -- 2: a lock file planted as a link ------------------------------------------------------------------
def test_a_lock_file_link_planted_by_a_co_user_truncates_nothing_and_is_one_sentence(shared):
    work = shared.parent
    files = private_folder(work)
    secret = work / "private" / "notes.txt"
    as_co_user(shared, f"mkdir -p locks; rm -f locks/store.lock; ln -s {secret} locks/store.lock")

    seeded = virtualenv(work / "env", store=shared, check=False)
    line = refusal(seeded, "store.lock")
    assert f"the lock file {shared / 'locks' / 'store.lock'} is a symbolic link" in line, line
    assert intact(files)
    gc = holoclone("store", "gc", store=shared)
    refusal(gc, "is a symbolic link")
    assert intact(files)

    (shared / "locks" / "store.lock").unlink()  # what the sentence says to do
    virtualenv(work / "env2", store=shared)
    assert intact(files)


# -- 3, 4: documents that decide what gets installed -----------------------------------------------
@pytest.fixture
def demo_store(xfs, unique, tmp_path) -> tuple[Path, Path, dict[str, str]]:
    """``(store, wheelhouse, resolution key by version)``: a shared store that resolved hcdemo 1.0 and 2.0."""
    house = tmp_path / "house"
    for version in ("1.0", "2.0"):
        write_wheel(house, "hcdemo", version, {"hcdemo/__init__.py": f"VERSION = {version!r}\n".encode()})
    work = xfs / unique
    work.mkdir()
    store = work / "store"
    resolutions: dict[str, str] = {}
    for version in ("1.0", "2.0"):
        before = set((store / "resolutions").glob("*.json")) if store.exists() else set()
        seed(work / f"first-{version}", store, house, version)
        made = set((store / "resolutions").glob("*.json")) - before
        assert len(made) == 1
        resolutions[version] = made.pop().stem
    return share(store), house, resolutions


def seed(env: Path, store: Path, house: Path, version: str, check: bool = True) -> subprocess.CompletedProcess:
    return virtualenv(env, "--extra-search-dir", str(house), "--holoclone-package", f"hcdemo=={version}",
                      store=store, extra_env=OFFLINE, check=check)


def installed_version(env: Path) -> str:
    return (site_packages(env) / "hcdemo" / "__init__.py").read_text()


def test_a_resolution_planted_by_a_co_user_is_neither_used_nor_pushed(demo_store, tmp_path):
    store, house, resolutions = demo_store
    old, new = (f"resolutions/{resolutions[v]}.json" for v in ("1.0", "2.0"))
    # The co-user's own file, saying that hcdemo==2.0 resolves to the kept hcdemo 1.0 wheel.
    as_co_user(store, f"cp {old} planted.json; rm -f {new}; mv planted.json {new}")
    assert (store / new).stat().st_uid == NOBODY

    key = tmp_path / "fleet.key"
    assert holoclone("store", "keygen", "fleet", "-o", str(key)).returncode == 0
    remote = tmp_path / "remote"
    pushed = holoclone("--json", "store", "push", f"file://{remote}", "--all", "--signing-key", str(key), store=store)
    assert pushed.returncode == 0, output(pushed)
    assert resolutions["2.0"] not in json.loads(pushed.stdout)["resolutions"]
    assert resolutions["1.0"] in json.loads(pushed.stdout)["resolutions"]

    env = store.parent / "env"
    seed(env, store, house, "2.0")
    assert installed_version(env) == "VERSION = '2.0'\n"
    assert (store / new).stat().st_uid == 0  # resolved again, and the owner's document replaced the planted one


def test_a_kept_wheel_replaced_by_a_co_user_is_never_imported(demo_store, tmp_path):
    store, house, resolutions = demo_store
    document = json.loads((store / "resolutions" / f"{resolutions['2.0']}.json").read_bytes())
    name, digest = next((n, d) for n, d in document["wheels"] if n.startswith("hcdemo-"))
    kept = store / "wheels" / digest / name
    # The co-user's wheel of the same name and size, given the kept wheel's mtime: the wheel-digest
    # cache, keyed by (name, size, mtime), takes it for the kept one unless the file's owner is checked.
    evil = _wheel_of_size(tmp_path / "evil", kept.stat().st_size)
    (store / "evil.whl").write_bytes(evil.read_bytes())
    os.chown(store / "evil.whl", NOBODY, NOBODY)
    mtime = kept.stat().st_mtime_ns
    catalog = next(p for p in (store / "catalogs").glob(f"{digest}-*.json"))
    as_co_user(store, f"touch -d @{mtime // 10**9}.{mtime % 10**9:09d} evil.whl; rm -f {kept.relative_to(store)}; "
                      f"mv evil.whl {kept.relative_to(store)}; rm -f {catalog.relative_to(store)}")
    assert kept.stat().st_uid == NOBODY and kept.stat().st_mtime_ns == mtime

    env = store.parent / "env"
    seed(env, store, house, "2.0")
    assert installed_version(env) == "VERSION = '2.0'\n"
    assert kept.stat().st_uid == 0  # resolved again: the owner's wheel replaced the planted one


def _wheel_of_size(folder: Path, size: int) -> Path:
    """A wheel of hcdemo 2.0 whose code is not hcdemo's, padded to exactly ``size`` bytes."""
    import hashlib

    for pad in range(400):
        noise = hashlib.sha256(str(pad).encode()).hexdigest() * 4
        shutil.rmtree(folder, ignore_errors=True)
        wheel = write_wheel(folder, "hcdemo", "2.0",
                            {"hcdemo/__init__.py": f"V=0#{noise[:pad]}\n".encode()})
        if wheel.stat().st_size == size:
            return wheel
    raise AssertionError(f"no padding gives a wheel of {size} bytes")


def test_two_catalogs_swapped_by_a_co_user_are_refused_in_one_sentence_and_verify_heals(demo_store):
    store, house, _ = demo_store
    by_version = {}
    for path in (store / "catalogs").glob(f"*-{TAG}.json"):
        document = json.loads(path.read_bytes())
        if document["name"] == "hcdemo":
            by_version[document["version"]] = path
    one, two = (by_version[v].relative_to(store) for v in ("1.0", "2.0"))
    as_co_user(store, f"mv {one} swap.json; mv {two} {one}; mv swap.json {two}")  # the owner's files, renamed

    env = store.parent / "env"
    line = refusal(seed(env, store, house, "2.0", check=False), str(store / two))
    assert f"the catalog {store / two} describes hcdemo 1.0 (" in line, line
    assert "Run 'holoclone store verify --repair' to remove it" in line
    assert not (site_packages(env) / "hcdemo").exists()

    assert holoclone("store", "verify", "--repair", store=store).returncode == 0
    seed(store.parent / "healed", store, house, "2.0")
    assert installed_version(store.parent / "healed") == "VERSION = '2.0'\n"
