"""Trust: nothing from a bundle or a planted store file writes outside the env, deletes what is not ours, or runs.

Everything runs the real ``virtualenv`` and ``holoclone`` commands on a real
loop-mounted XFS (ext4 for the full disk).  Bundles are made by ``holoclone
store export`` and then edited the way an attacker would: unpacked, a catalog
changed, packed again.  One warm store per module is only read; a test that
damages a store damages a reflinked copy of it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import marshal
import os
import signal
import stat
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest
from helpers import (
    PY,
    catalog_by_name,
    holoclone,
    isolated_environ,
    output,
    pyvenv_cfg,
    run_in,
    site_packages,
    virtualenv,
    virtualenv_command,
)
from wheels import write_wheel

from holoclone_venv.store.catalog import EXECUTABLE, FIXED_MTIME
from holoclone_venv.platforms.linux import shares_extents
from holoclone_venv.store import Store

NOBODY = 65534


# -- helpers -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def store_dir(warm_store, xfs) -> Path:
    """A store on XFS warmed by one real seeding (pip and setuptools); tests only read it."""
    return warm_store(xfs)


def copy_store(source: Path, target: Path) -> Path:
    """A reflinked copy keeping modes, owners and mtimes, for a test that damages its store."""
    subprocess.run(["cp", "-a", "--reflink=auto", str(source), str(target)], check=True)
    return target


def store_files(store_dir: Path) -> dict[str, bytes]:
    """Every object and catalog of a store by relative path, with its content."""
    found = {}
    for part in ("objects", "catalogs"):
        base = store_dir / part
        for dirpath, _, names in os.walk(base):
            for name in names:
                path = Path(dirpath, name)
                found[str(path.relative_to(store_dir))] = path.read_bytes() if not path.is_symlink() else b"->"
    return found


def tree_listing(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, tuple]:
    """Kind, mode, owner and content hash of every entry under ``root`` (``skip`` left out)."""
    found = {}
    for dirpath, dirnames, names in os.walk(root):
        dirnames[:] = [d for d in dirnames if Path(dirpath, d) not in skip]
        for name in dirnames + names:
            path = Path(dirpath, name)
            if path in skip:
                continue
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                found[str(path)] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                found[str(path)] = ("dir", stat.S_IMODE(st.st_mode), st.st_uid)
            else:
                found[str(path)] = ("file", stat.S_IMODE(st.st_mode), st.st_uid,
                                    hashlib.sha256(path.read_bytes()).hexdigest())
    return found


def real_member(distribution: str, member: str) -> bytes:
    """A file as virtualenv's bundled wheel of ``distribution`` ships it (the truth an env must get)."""
    from virtualenv.seed.wheels.embed import BUNDLE_FOLDER, BUNDLE_SUPPORT

    with zipfile.ZipFile(Path(BUNDLE_FOLDER) / BUNDLE_SUPPORT[PY][distribution]) as archive:
        return archive.read(member)


def object_path(store_dir: Path, name: str, path: str) -> Path:
    entry = next(e for e in catalog_by_name(store_dir, name).entries if e.path == path)
    return Path(Store(store_dir).object_path(entry.digest, bool(entry.flags & EXECUTABLE)))


def export(store_dir: Path, bundle: Path, *selectors: str) -> Path:
    result = holoclone("store", "export", *selectors, "-o", str(bundle), store=store_dir)
    assert result.returncode == 0, output(result)
    return bundle


def read_bundle(bundle: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(bundle) as archive:
        return [(member, archive.extractfile(member).read()) for member in archive]


def write_bundle(bundle: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(bundle, "w", format=tarfile.PAX_FORMAT) as archive:
        for member, data in members:
            member = tarfile.TarInfo(member.name) if member.size != len(data) else member
            member.size = len(data)
            member.mode = member.mode or 0o444
            archive.addfile(member, io.BytesIO(data))
    return bundle


def edit_catalog(members, change) -> list:
    """The bundle's members with ``change(document)`` applied to its (one) catalog."""
    edited = []
    for member, data in members:
        if member.name.startswith("catalogs/"):
            document = json.loads(data)
            change(document)
            data = json.dumps(document).encode()
            member = tarfile.TarInfo(member.name)
        edited.append((member, data))
    return edited


def with_object(members, data: bytes) -> tuple[list, str]:
    """The bundle's members with an object holding ``data`` added before the catalogs; returns its digest."""
    digest = hashlib.sha256(data).hexdigest()
    member = tarfile.TarInfo(f"objects/{digest[:2]}/{digest[2:]}")
    member.mode, member.mtime = 0o444, FIXED_MTIME
    first_catalog = next(i for i, (m, _) in enumerate(members) if m.name.startswith("catalogs/"))
    return members[:first_catalog] + [(member, data)] + members[first_catalog:], digest


def import_bundle(store_dir: Path, bundle: Path) -> subprocess.CompletedProcess:
    # Unsigned bundles need --trust-unsigned; what is checked here must hold even then.
    return holoclone("store", "import", "--trust-unsigned", str(bundle), store=store_dir)


def one_sentence(result: subprocess.CompletedProcess, status: int = 2) -> str:
    """The one line a refused command printed (exit ``status``, no traceback)."""
    text = output(result)
    assert result.returncode == status, text
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


def verify(store_dir: Path) -> tuple[int, list[dict]]:
    result = holoclone("store", "verify", "--json", store=store_dir)
    assert result.returncode in (0, 1), output(result)
    return result.returncode, json.loads(result.stdout)["problems"]


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def make_foreign(path: Path, data: bytes, mode: int = 0o444) -> None:
    """A file of another account with a store object's mode and mtime."""
    path.write_bytes(data)
    os.chmod(path, mode)
    os.utime(path, (FIXED_MTIME, FIXED_MTIME))
    os.chown(path, NOBODY, NOBODY)


# -- 1: malformed catalogs -----------------------------------------------------------------------
def _escaping_name(document: dict) -> None:
    document["name"] = "../../../../escaped"
    document["dist_info"] = f"../../../../escaped-{document['version']}.dist-info"


def _absolute_dist_info(document: dict) -> None:
    document["dist_info"] = f"/tmp/holoclone-trust-absolute/pip-{document['version']}.dist-info"


def _unknown_root(document: dict) -> None:
    document["root"] = "scripts"


MALFORMED = {"name-with-dotdot": _escaping_name, "absolute-dist-info": _absolute_dist_info,
             "unknown-root": _unknown_root}


@pytest.mark.parametrize("edit", MALFORMED)
def test_a_bundle_with_a_malformed_catalog_is_refused_and_nothing_is_imported(store_dir, xfs, unique, edit):
    work = xfs / unique
    work.mkdir()
    members = edit_catalog(read_bundle(export(store_dir, work / "pip.tar", "pip")), MALFORMED[edit])
    bundle = write_bundle(work / "edited.tar", members)
    target = work / "target"

    line = one_sentence(import_bundle(target, bundle))
    assert "malformed" in line and "Nothing was imported" in line, line
    assert store_files(target) == {}
    assert not list((target / "tmp").glob("*"))

    # The same bundle into a store that has the catalog: refused too, the store unchanged.
    copy = copy_store(store_dir, work / "copy")
    before = store_files(copy)
    one_sentence(import_bundle(copy, bundle))
    assert store_files(copy) == before


@pytest.mark.parametrize("edit", MALFORMED)
def test_a_planted_malformed_catalog_is_reported_and_seeding_with_it_fails_writing_nothing_outside(
        store_dir, xfs, unique, edit):
    work = xfs / unique
    work.mkdir()
    copy = copy_store(store_dir, work / "store")
    path = Store(copy).catalog_path(catalog_by_name(copy, "pip").key)
    document = json.loads(path.read_bytes())
    MALFORMED[edit](document)
    path.write_bytes(json.dumps(document).encode())

    status, problems = verify(copy)
    assert status == 1
    assert [(p["kind"], p["path"]) for p in problems] == [("malformed", str(path))], problems

    env = work / "env"
    outside = tree_listing(work, skip=(env, copy))  # ../../../../escaped from site-packages lands here
    result = virtualenv(env, store=copy, check=False)
    text = output(result)
    assert result.returncode != 0 and "Traceback" not in text, text
    reported = [line for line in text.splitlines() if "malformed" in line]
    assert len(reported) == 1 and str(path) in reported[0], text
    assert tree_listing(work, skip=(env, copy)) == outside
    assert not list(work.parent.glob("escaped*"))
    assert not os.path.lexists("/tmp/holoclone-trust-absolute")
    assert "holoclone" not in pyvenv_cfg(env)
    assert not list(env.glob("lib/python*/site-packages/pip*"))


# -- 2: an import never replaces a catalog, and never takes one its RECORD does not vouch for -----
def _swap_init(members, data: bytes) -> list:
    members, digest = with_object(members, data)

    def change(document):
        for entry in document["entries"]:
            if entry[1] == "pip/__init__.py":
                entry[2], entry[3] = digest, len(data)

    return edit_catalog(members, change)


EVIL_INIT = b"raise SystemExit('pip/__init__.py from a bundle ran')\n"


def test_an_import_never_replaces_a_catalog_and_an_identical_bundle_is_skipped(store_dir, xfs, unique):
    work = xfs / unique
    work.mkdir()
    copy = copy_store(store_dir, work / "store")
    key = catalog_by_name(copy, "pip").key
    catalog_file = Store(copy).catalog_path(key)
    original = catalog_file.read_bytes()
    pristine = export(store_dir, work / "pip.tar", "pip")
    before = store_files(copy)

    swapped = write_bundle(work / "swapped.tar", _swap_init(read_bundle(pristine), EVIL_INIT))
    line = one_sentence(import_bundle(copy, swapped))
    assert key in line and "nothing was imported" in line, line
    assert catalog_file.read_bytes() == original
    assert store_files(copy) == before  # not even the bundle's extra object

    env = work / "env"
    virtualenv(env, "--holoclone-strategy", "hardlink", store=copy)
    assert (site_packages(env) / "pip" / "__init__.py").read_bytes() == real_member("pip", "pip/__init__.py")
    assert str(env) in run_in(env, "pip", "--version").stdout

    same = import_bundle(copy, pristine)
    assert same.returncode == 0, output(same)
    assert catalog_file.read_bytes() == original
    assert store_files(copy) == before


def test_a_catalog_disagreeing_with_its_record_is_refused_by_import_and_reported_by_verify(store_dir, xfs, unique):
    work = xfs / unique
    work.mkdir()
    swapped = write_bundle(work / "swapped.tar",
                           _swap_init(read_bundle(export(store_dir, work / "pip.tar", "pip")), EVIL_INIT))
    target = work / "target"
    line = one_sentence(import_bundle(target, swapped))
    assert "disagrees with its wheel's RECORD or sources" in line and "pip/__init__.py" in line, line
    assert store_files(target) == {}

    # Planted straight into a store, with its object in place and looking intact.
    copy = copy_store(store_dir, work / "store")
    assert verify(copy) == (0, [])
    digest = hashlib.sha256(EVIL_INIT).hexdigest()
    planted = Path(Store(copy).object_path(digest))
    planted.parent.mkdir(exist_ok=True)
    planted.write_bytes(EVIL_INIT)
    os.chmod(planted, 0o444)
    os.utime(planted, (FIXED_MTIME, FIXED_MTIME))
    path = Store(copy).catalog_path(catalog_by_name(copy, "pip").key)
    document = json.loads(path.read_bytes())
    for entry in document["entries"]:
        if entry[1] == "pip/__init__.py":
            entry[2], entry[3] = digest, len(EVIL_INIT)
    path.write_bytes(json.dumps(document).encode())
    status, problems = verify(copy)
    assert status == 1
    assert [(p["kind"], p["path"]) for p in problems] == [("untrusted", str(path))], problems
    assert "pip/__init__.py" in problems[0]["detail"]


def _marker_code(marker: Path) -> bytes:
    return f"\nopen({str(marker)!r}, 'w').write('ran')\n".encode()


def test_a_bundle_swapping_bytecode_is_refused_and_never_runs_in_a_new_env(store_dir, xfs, unique):
    work = xfs / unique
    work.mkdir()
    marker = work / "bytecode-ran"
    members = read_bundle(export(store_dir, work / "pip.tar", "pip"))
    source = real_member("pip", "pip/__init__.py")
    pyc_path = f"pip/__pycache__/__init__.{sys.implementation.cache_tag}.pyc"
    real_pyc = object_path(store_dir, "pip", pyc_path).read_bytes()
    # Same header (magic, flags, the fixed source mtime and size): Python takes it as valid bytecode.
    evil = real_pyc[:16] + marshal.dumps(compile(source + _marker_code(marker), "pip/__init__.py", "exec"))
    members, digest = with_object(members, evil)

    def change(document):
        for entry in document["entries"]:
            if entry[1] == pyc_path:
                entry[2], entry[3] = digest, len(evil)

    bundle = write_bundle(work / "bytecode.tar", edit_catalog(members, change))
    target = work / "target"
    imported = import_bundle(target, bundle)
    env = work / "env"
    virtualenv(env, store=target)
    run_in(env, "python", "-c", "import pip")
    assert not marker.exists(), "bytecode from a bundle ran in a new environment"
    assert imported.returncode == 2, output(imported)


def test_a_bundle_swapping_a_console_script_is_refused_and_never_runs_in_a_new_env(store_dir, xfs, unique):
    work = xfs / unique
    work.mkdir()
    marker = work / "script-ran"

    def change(document):
        for script in document["scripts"]:
            first, _, rest = base64.b64decode(script[2]).partition(b"\n")
            script[2] = base64.b64encode(first + _marker_code(marker) + rest).decode()

    bundle = write_bundle(work / "scripts.tar", edit_catalog(read_bundle(export(store_dir, work / "pip.tar", "pip")),
                                                             change))
    target = work / "target"
    imported = import_bundle(target, bundle)
    env = work / "env"
    virtualenv(env, store=target)
    run_in(env, "pip", "--version")
    assert not marker.exists(), "a console script from a bundle ran in a new environment"
    assert imported.returncode == 2, output(imported)


def test_a_catalog_planted_by_another_account_is_never_used_for_a_new_env(store_dir, xfs, unique):
    work = xfs / unique
    work.mkdir()
    copy = copy_store(store_dir, work / "store")
    catalog = catalog_by_name(copy, "pip")
    other = next(e for e in catalog.entries if e.path == "pip/__main__.py")  # an intact object of the store's owner
    path = Store(copy).catalog_path(catalog.key)
    document = json.loads(path.read_bytes())
    for entry in document["entries"]:
        if entry[1] == "pip/__init__.py":
            entry[2], entry[3] = other.digest, other.size
    path.unlink()
    path.write_bytes(json.dumps(document).encode())
    os.chown(path, NOBODY, NOBODY)  # as another account can where catalogs/ is writable by others

    env = work / "env"
    virtualenv(env, store=copy, check=False)
    installed = site_packages(env) / "pip" / "__init__.py"
    assert installed.exists() and installed.read_bytes() == real_member("pip", "pip/__init__.py")


# -- 3, 4: objects are never followed through symlinks, nor taken from another account ----------------
def _link_text(target: Path, start: Path, length: int) -> str:
    """A relative link text to ``target`` exactly ``length`` bytes long, so the link's own size is the object's."""
    text = os.path.relpath(target, start)
    need = length - len(text)
    assert need >= 0
    if need % 2:
        text = text.replace("/", "//", 1)
    return "./" * (need // 2) + text


# hardlink checks an object by lstat; reflink by fstat of the descriptor it clones from (opened O_NOFOLLOW).
@pytest.mark.parametrize("strategy", ["hardlink", "reflink"])
@pytest.mark.parametrize("owner", [NOBODY, 0], ids=["foreign-target", "root-target"])
def test_an_object_replaced_by_a_symlink_is_reported_and_never_linked(store_dir, xfs, unique, owner, strategy):
    work = xfs / unique
    (work / "elsewhere").mkdir(parents=True)
    copy = copy_store(store_dir, work / "store")
    obj = object_path(copy, "pip", "pip/__init__.py")
    real = real_member("pip", "pip/__init__.py")
    assert obj.read_bytes() == real
    outside = work / "elsewhere" / "planted.py"
    make_foreign(outside, b"#" * (len(real) - 1) + b"\n")
    os.chown(outside, owner, owner)  # owned by root, only "never through a link" keeps it out
    obj.unlink()
    obj.symlink_to(_link_text(outside, obj.parent, len(real)))
    os.utime(obj, (FIXED_MTIME, FIXED_MTIME), follow_symlinks=False)
    assert obj.lstat().st_size == len(real) and obj.stat().st_ino == outside.stat().st_ino

    status, problems = verify(copy)
    assert status == 1 and ("stray", str(obj)) in [(p["kind"], p["path"]) for p in problems], problems

    env = work / "env"
    virtualenv(env, "--holoclone-strategy", strategy, store=copy)
    installed = site_packages(env) / "pip" / "__init__.py"
    assert installed.stat().st_ino != outside.stat().st_ino
    assert installed.read_bytes() == real
    assert str(env) in run_in(env, "pip", "--version").stdout
    # Re-imported: the object is a regular file of the store's owner again; the outside file untouched.
    st = obj.lstat()
    assert stat.S_ISREG(st.st_mode) and st.st_uid == 0 and obj.read_bytes() == real
    assert outside.read_bytes() == b"#" * (len(real) - 1) + b"\n"
    assert outside.stat().st_uid == owner and stat.S_IMODE(outside.stat().st_mode) == 0o444


def test_a_fifo_in_place_of_an_object_is_reimported_without_waiting_on_it(store_dir, xfs, unique):
    work = xfs / unique
    work.mkdir()
    copy = copy_store(store_dir, work / "store")
    member = "pip/_internal/commands/install.py"  # not the first file: the reflink is settled by then
    obj = object_path(copy, "pip", member)
    real = real_member("pip", member)
    obj.unlink()
    os.mkfifo(obj, 0o444)

    env = work / "env"
    virtualenv(env, "--holoclone-strategy", "reflink", store=copy)  # opening the FIFO to clone would block
    installed = site_packages(env) / member
    assert installed.read_bytes() == real and shares_extents(installed)
    assert stat.S_ISREG(obj.lstat().st_mode) and obj.read_bytes() == real
    assert str(env) in run_in(env, "pip", "--version").stdout


def test_an_object_of_another_account_is_reimported_never_linked(store_dir, xfs, unique):
    work = xfs / unique
    work.mkdir()
    copy = copy_store(store_dir, work / "store")
    obj = object_path(copy, "pip", "pip/__init__.py")
    real = real_member("pip", "pip/__init__.py")
    swapped = b"raise SystemExit('foreign')\n".ljust(len(real) - 1, b"#") + b"\n"
    assert len(swapped) == len(real)
    obj.unlink()  # a new inode: the warm store's copy may share its data, not its inode
    make_foreign(obj, swapped)

    env = work / "env"
    virtualenv(env, "--holoclone-strategy", "hardlink", store=copy)
    installed = site_packages(env) / "pip" / "__init__.py"
    assert installed.read_bytes() == real
    assert str(env) in run_in(env, "pip", "--version").stdout
    st = obj.lstat()
    assert st.st_uid == 0 and obj.read_bytes() == real
    assert installed.stat().st_ino == st.st_ino  # hardlinked: the re-imported object, not the foreign one


# -- 5: reclaiming staging never follows a link out ---------------------------------------------
def test_reclaiming_a_dead_runs_staging_never_changes_what_its_links_point_to(store_dir, xfs, unique):
    work = xfs / unique
    private = work / "private"
    (private / "inner").mkdir(parents=True)
    (private / "secret.txt").write_bytes(b"keep me\n")
    (private / "inner" / "deep.txt").write_bytes(b"me too\n")
    os.chmod(private / "secret.txt", 0o400)
    os.chmod(private / "inner", 0o700)
    os.chmod(private, 0o700)
    copy = copy_store(store_dir, work / "store")
    staging = copy / "tmp" / f"stage-x.{dead_pid()}.{time.monotonic_ns()}"
    (staging / "sub").mkdir(parents=True)
    (staging / "link").symlink_to(private)
    (staging / "sub" / "link").symlink_to(private / "inner")
    (staging / "sub" / "file").write_bytes(b"staged\n")
    os.chmod(staging / "sub", 0o500)
    before = tree_listing(private)

    virtualenv(work / "env", store=copy)
    assert not os.path.lexists(staging), "the dead run's staging was not reclaimed"
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    assert stat.S_IMODE((private / "inner").stat().st_mode) == 0o700
    assert tree_listing(private) == before


# -- 6: --symlink-app-data environments ----------------------------------------------------------
def _image_dirs(site: Path) -> set[Path]:
    """The app-data image directories the entries of ``site`` link to."""
    links = [entry for entry in site.iterdir() if entry.is_symlink()]
    assert links, f"{site} holds no links into the app-data"
    return {Path(os.readlink(link)).parent for link in links}


def test_seeding_over_a_symlink_app_data_env_leaves_the_app_data_image_untouched(store_dir, xfs, unique):
    work = xfs / unique
    work.mkdir()
    app_data = work / "app-data"
    env = work / "env"
    virtualenv(env, "--symlink-app-data", "--app-data", str(app_data), seeder=None)
    site = site_packages(env)
    assert (site / "pip").is_symlink()
    images = _image_dirs(site)
    before = {image: tree_listing(image) for image in images}

    virtualenv(env, "--app-data", str(app_data), store=store_dir)
    assert not (site / "pip").is_symlink() and (site / "pip").is_dir()
    assert str(site / "pip") in run_in(env, "pip", "--version").stdout
    assert run_in(env, "python", "-c", "import setuptools, pip").returncode == 0
    assert "holoclone" in pyvenv_cfg(env)
    assert {image: tree_listing(image) for image in images} == before

    later = work / "later"
    virtualenv(later, "--symlink-app-data", "--app-data", str(app_data), seeder=None)
    assert (site_packages(later) / "pip").is_symlink()
    assert str(later) in run_in(later, "pip", "--version").stdout


# -- 7: SIGTERM while materializing --------------------------------------------------------------
def _big_wheel(directory: Path) -> Path:
    files = {f"hcbig/m{i // 100:02d}/f{i:04d}.py": f"VALUE = {i}\n".encode() for i in range(2000)}
    files.update({f"hcbig/m{d:02d}/__init__.py": b"" for d in range(20)})
    files["hcbig/__init__.py"] = b"READY = True\n"
    return write_wheel(directory, "hcbig", "1.0", files)


def _looks_installed_only_when_complete(env: Path) -> None:
    site = site_packages(env)
    for dist_info in site.glob("*.dist-info"):
        record = dist_info / "RECORD"
        assert record.exists(), f"{dist_info.name} has no RECORD"
        for row in record.read_text().splitlines():
            path = row.split(",")[0]
            assert os.path.lexists(site / path), f"{dist_info.name} is listed but {path} is missing"
    if "holoclone" in pyvenv_cfg(env):
        assert list(site.glob("hcbig-1.0.dist-info")), "pyvenv.cfg says seeded but hcbig is not installed"
    for hidden in site.glob(".*holoclone-staging"):
        pytest.fail(f"staging {hidden.name} was left in site-packages")


def test_a_run_stopped_by_sigterm_while_materializing_leaves_nothing_half_installed(store_dir, xfs, unique):
    work = xfs / unique
    work.mkdir()
    copy = copy_store(store_dir, work / "store")
    requirements = work / "requirements.txt"
    requirements.write_text(f"{_big_wheel(work / 'wheels')}\n")
    args = ("--no-setuptools", "--holoclone-requirements", str(requirements))
    extra = {"PIP_NO_INDEX": "1"}
    virtualenv(work / "warm", *args, store=copy, extra_env=extra)  # resolve and import once

    during = 0
    for trial, delay in enumerate((0.0, 0.02, 0.05, 0.25)):
        env = work / f"env-{trial}"
        process = subprocess.Popen(virtualenv_command(env, *args, store=copy), stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, env=isolated_environ(extra))
        while process.poll() is None and not list(env.glob("lib/python*/site-packages/hcbig")):
            time.sleep(0.001)
        time.sleep(delay)
        process.send_signal(signal.SIGTERM)
        text, _ = process.communicate(timeout=120)
        assert "Traceback" not in text, text
        if process.returncode == 0:
            continue  # finished before the signal
        # virtualenv writes pyvenv.cfg last, so a signal landing after that (while the process exits) leaves a
        # complete environment marked seeded; one landing earlier leaves no mark. Either way, what is there
        # must be whole:
        _looks_installed_only_when_complete(env)  # a .dist-info is there only when all it lists is
        if not list(site_packages(env).glob("hcbig-*.dist-info")):
            during += 1  # stopped while materializing hcbig (later, it is complete and stays)

        again = virtualenv(env, *args, store=copy, extra_env=extra, check=False)
        assert again.returncode == 0 and "File exists" not in output(again), output(again)
        _looks_installed_only_when_complete(env)
        assert run_in(env, "python", "-c", "import hcbig.m19.f1999 as m; print(m.VALUE)").stdout.strip() == "1999"
    assert during >= 2, "SIGTERM landed during materialization in fewer than 2 of 4 runs"


# -- 8: a full disk while importing a bundle -----------------------------------------------------
def _fill(fs: Path, leave_mb: float) -> None:
    st = os.statvfs(fs)
    size = max(0, st.f_bfree * st.f_frsize - int(leave_mb * (1 << 20)))
    fd = os.open(fs / "ballast", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.posix_fallocate(fd, 0, size)
    finally:
        os.close(fd)


def test_a_full_disk_during_store_import_is_one_sentence_and_leaves_the_store_clean(store_dir, make_fs, tmp_path):
    bundle = export(store_dir, tmp_path / "all.tar", "--all")
    fs = make_fs("ext4", 64)
    target = fs / "store"
    Store(target).check(create=True)
    _fill(fs, 4)

    line = one_sentence(import_bundle(target, bundle))
    assert "disk" in line and "is full" in line and "Free some space" in line, line
    assert verify(target) == (0, [])
    assert not list((target / "catalogs").glob("*.json"))
    assert not list((target / "tmp").glob("*"))

    os.unlink(fs / "ballast")
    again = import_bundle(target, bundle)
    assert again.returncode == 0, output(again)
    assert len(list((target / "catalogs").glob("*.json"))) == 2
    assert verify(target) == (0, [])


# -- 9: requirements -----------------------------------------------------------------------------
@pytest.mark.parametrize("line", ["-e .", "./project", "{work}/project",
                                  "git+https://github.com/pypa/sampleproject.git",
                                  "sampleproject @ git+https://github.com/pypa/sampleproject.git"])
def test_a_requirement_holoclone_cannot_materialize_stops_before_the_env_exists(store_dir, xfs, unique, line):
    work = xfs / unique
    (work / "project").mkdir(parents=True)
    (work / "project" / "pyproject.toml").write_text("[project]\nname = 'project'\nversion = '1'\n")
    requirements = work / "requirements.txt"
    requirements.write_text(line.format(work=work) + "\n")
    env = work / "env"
    result = virtualenv(env, "--holoclone-requirements", str(requirements), store=store_dir, check=False, cwd=work)
    said = one_sentence(result)
    assert "holoclone materializes wheels only" in said and "Build a wheel first" in said, said
    assert not os.path.lexists(env)


def test_a_missing_requirements_file_stops_before_the_env_exists(store_dir, xfs, unique):
    work = xfs / unique
    work.mkdir()
    env = work / "env"
    said = one_sentence(virtualenv(env, "--holoclone-requirements", str(work / "missing.txt"), store=store_dir,
                                   check=False))
    assert str(work / "missing.txt") in said and "does not exist" in said, said
    assert not os.path.lexists(env)


def test_a_rebuilt_local_wheel_of_the_same_name_gives_its_new_content(store_dir, xfs, unique):
    work = xfs / unique
    work.mkdir()
    copy = copy_store(store_dir, work / "store")
    requirements = work / "requirements.txt"
    wheel = write_wheel(work / "wheels", "hcrebuilt", "1.0", {"hcrebuilt/__init__.py": b"VALUE = 'first'\n"})
    requirements.write_text(f"{wheel}\n")
    args = ("--no-setuptools", "--holoclone-requirements", str(requirements))
    code = "import hcrebuilt; print(hcrebuilt.VALUE)"
    virtualenv(work / "one", *args, store=copy, extra_env={"PIP_NO_INDEX": "1"})
    assert run_in(work / "one", "python", "-c", code).stdout.strip() == "first"

    rebuilt = write_wheel(work / "wheels", "hcrebuilt", "1.0", {"hcrebuilt/__init__.py": b"VALUE = 'other'\n"})
    assert rebuilt == wheel
    virtualenv(work / "two", *args, store=copy, extra_env={"PIP_NO_INDEX": "1"})
    assert run_in(work / "two", "python", "-c", code).stdout.strip() == "other"
    assert run_in(work / "one", "python", "-c", code).stdout.strip() == "first"


def test_a_requirement_pip_cannot_satisfy_shows_pips_own_error(store_dir, xfs, unique):
    work = xfs / unique
    work.mkdir()
    requirements = work / "requirements.txt"
    requirements.write_text("hcnothere==1.0\n")
    result = virtualenv(work / "env", "--holoclone-requirements", str(requirements), store=store_dir, check=False,
                        extra_env={"PIP_NO_INDEX": "1"})
    text = output(result)
    assert result.returncode != 0 and "Traceback" not in text, text
    lines = [line for line in text.splitlines() if "hcnothere" in line]
    assert len(lines) == 1, text
    assert "No matching distribution found for hcnothere==1.0" in lines[0], lines[0]


# -- 10: shared stores ---------------------------------------------------------------------------
def test_doctor_reports_a_store_others_can_write_into(store_dir, xfs, unique):
    work = xfs / unique
    work.mkdir()
    copy = copy_store(store_dir, work / "store")
    clean = holoclone("doctor", str(work), store=copy)
    assert clean.returncode == 0 and "other accounts" not in output(clean), output(clean)

    os.chmod(copy / "catalogs", 0o777)
    result = holoclone("doctor", str(work), store=copy)
    assert result.returncode == 1, output(result)
    problems = [line for line in result.stdout.splitlines() if line.startswith("problem:")]
    assert len(problems) == 1 and f"{copy / 'catalogs'} (mode 777)" in problems[0], output(result)
    assert "Traceback" not in output(result)
