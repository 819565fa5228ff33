"""``--holoclone-strategy snapshot`` on a real btrfs: site-packages as one writable snapshot of a sealed template.

Every test runs the real ``virtualenv`` (and ``pip`` where it matters) on
loop-mounted btrfs, XFS and ext4.  One store per module, seeded once with
the snapshot strategy, is only read by the tests that look at it; tests that
kill runs or collect garbage use stores of their own.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import (
    REPO,
    fallback_lines,
    holoclone,
    isolated_environ,
    method_counts,
    output,
    pyvenv_cfg,
    run_in,
    site_packages,
    summary_line,
    virtualenv,
    virtualenv_command,
)
from wheels import write_wheel

from holoclone_venv.platforms import btrfs as subvolumes

SNAPSHOT = ("--holoclone-strategy", "snapshot")
SUBVOLUME_ROOT = subvolumes.BTRFS_FIRST_FREE_OBJECTID


def info(store: Path) -> dict:
    result = holoclone("store", "info", "--json", store=store)
    assert result.returncode == 0, output(result)
    return json.loads(result.stdout)


def is_subvolume(path: Path) -> bool:
    st = path.lstat()
    return stat.S_ISDIR(st.st_mode) and st.st_ino == SUBVOLUME_ROOT and st.st_dev != path.parent.stat().st_dev


def subvolume_field(path: Path, name: str) -> str:
    """A field of ``btrfs subvolume show`` (UUID, Parent UUID...)."""
    shown = subprocess.run(["btrfs", "subvolume", "show", str(path)], capture_output=True, text=True, check=True)
    for line in shown.stdout.splitlines():
        key, _, value = line.strip().partition(":")
        if key.strip() == name:
            return value.strip()
    raise AssertionError(f"no {name} in:\n{shown.stdout}")


def snapshotted(result) -> int:
    """Files the summary line says were snapshotted."""
    line = summary_line(result)
    found = re.search(r"([\d,]+) snapshotted", line)
    assert found, line
    return int(found.group(1).replace(",", ""))


def template_paths(store: Path) -> list[Path]:
    templates = store / "templates"
    return sorted(p for p in templates.iterdir() if not p.name.startswith(".") and p.is_dir()) if templates.is_dir() else []


def leftovers(store: Path) -> list[str]:
    templates = store / "templates"
    return sorted(p.name for p in templates.iterdir() if p.name.startswith(".")) if templates.is_dir() else []


def listing(root: Path) -> dict[str, bytes]:
    found = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath, name)
            found[str(path.relative_to(root))] = path.read_bytes() if not path.is_symlink() else b"->"
    return found


@pytest.fixture(scope="module")
def seeded(btrfs):
    """``(work, store, first run)``: a directory on btrfs with a store made by one snapshot seeding."""
    work = btrfs / f"snapshot-{os.getpid()}-{time.monotonic_ns()}"
    work.mkdir()
    store = work / "store"
    result = virtualenv(work / "first", *SNAPSHOT, store=store)
    return work, store, result


# -- 1: a snapshot environment -------------------------------------------------------------------
def test_a_snapshot_env_works_and_its_site_packages_is_a_subvolume_of_the_one_template(seeded):
    work, store, first = seeded
    env = work / "first"
    assert snapshotted(first) > 1000
    assert "imported pip" in summary_line(first)
    assert fallback_lines(first) == []
    site = site_packages(env)
    assert is_subvolume(site)
    assert str(site / "pip") in run_in(env, "pip", "--version").stdout
    run_in(env, "python", "-c", "import setuptools, pip._internal.cli.main")
    assert "holoclone" in pyvenv_cfg(env)
    templates = info(store)["templates"]
    assert len(templates) == 1 and templates[0]["environments"] == 1, templates
    [template] = template_paths(store)
    assert template.name == templates[0]["id"] and is_subvolume(template)

    second = work / "second"
    result = virtualenv(second, *SNAPSHOT, store=store)
    assert snapshotted(result) == snapshotted(first)
    assert "imported" not in summary_line(result)
    assert is_subvolume(site_packages(second))
    assert str(second) in run_in(second, "pip", "--version").stdout
    templates = info(store)["templates"]
    assert len(templates) == 1 and templates[0]["id"] == template.name and templates[0]["environments"] == 2
    uuid = subvolume_field(template, "UUID")
    assert subvolume_field(site, "Parent UUID") == uuid
    assert subvolume_field(site_packages(second), "Parent UUID") == uuid


# -- 1b: the template's plan: a seeding from a template reads no whole catalog --------------------
def _record_is_true(env: Path) -> int:
    """Check that every hashed row of every RECORD in ``env`` names a file with that hash and size; count rows."""
    site, rows = site_packages(env), 0
    for record in site.glob("*.dist-info/RECORD"):
        for path, digest, size in csv.reader(record.read_text(encoding="utf-8").splitlines()):
            if not digest:
                continue
            algorithm, _, value = digest.partition("=")
            data = (site / path).read_bytes()
            assert base64.urlsafe_b64encode(hashlib.new(algorithm, data).digest()).rstrip(b"=").decode() == value, path
            assert int(size) == len(data), path
            rows += 1
    return rows


def test_a_seeding_from_a_template_uses_its_plan_and_writes_a_true_record(btrfs, unique):
    work = btrfs / unique
    work.mkdir()
    store = work / "store"
    first = virtualenv(work / "first", *SNAPSHOT, store=store)
    [template] = template_paths(store)
    plan = template.parent / f"{template.name}.plan.json"
    planned = json.loads(plan.read_bytes())["catalogs"]
    # Cut down to what lies outside site-packages; what lies inside is counted, not listed.
    assert all(row[0] not in ("purelib", "platlib") for item in planned for row in json.loads(item["catalog"])["entries"])
    assert sum(item["files"] for item in planned) == snapshotted(first)
    rows = _record_is_true(work / "first")
    assert rows > 1000

    # From the plan: the same files, a RECORD that tells the truth about them.
    second = virtualenv(work / "second", *SNAPSHOT, store=store)
    assert snapshotted(second) == snapshotted(first) and fallback_lines(second) == []
    assert _record_is_true(work / "second") == rows
    assert str(work / "second") in run_in(work / "second", "pip", "--version").stdout

    # Without the shared RECORD objects, a plan's run makes them again from the whole catalogs.
    for index in (store / "catalogs").glob("*.record-*"):
        index.unlink()
    third = virtualenv(work / "third", *SNAPSHOT, store=store)
    assert snapshotted(third) == snapshotted(first) and _record_is_true(work / "third") == rows

    # A plan that is not the store owner's regular file, or does not fit, is ignored: whole catalogs are read.
    for spoil in ("symlink", "inside entry", "garbage"):
        data = plan.read_bytes()
        plan.unlink()
        if spoil == "symlink":
            (work / "elsewhere.json").write_bytes(data)
            plan.symlink_to(work / "elsewhere.json")
        elif spoil == "inside entry":
            document = json.loads(data)
            catalog = json.loads(document["catalogs"][0]["catalog"])
            catalog["entries"].append(["purelib", "planted.py", "0" * 64, 0, 0])
            document["catalogs"][0]["catalog"] = json.dumps(catalog)
            plan.write_text(json.dumps(document))
        else:
            plan.write_bytes(b"{not json")
        env = work / f"spoilt-{spoil.replace(' ', '-')}"
        result = virtualenv(env, *SNAPSHOT, store=store)
        assert snapshotted(result) == snapshotted(first) and _record_is_true(env) == rows, spoil
        assert not (site_packages(env) / "planted.py").exists()
        plan.unlink()
        plan.write_bytes(data)


# -- 2: independence -----------------------------------------------------------------------------
def test_snapshot_envs_are_independent_and_pip_install_uninstall_and_rm_rf_work(seeded, unique):
    work, store, _ = seeded
    one, two = work / f"{unique}-one", work / f"{unique}-two"
    virtualenv(one, *SNAPSHOT, store=store)
    virtualenv(two, *SNAPSHOT, store=store)
    [template] = template_paths(store)
    template_before, two_before = listing(template), listing(site_packages(two))

    site = site_packages(one)
    target = site / "setuptools" / "version.py"
    os.chmod(target, 0o644)
    with open(target, "ab") as handle:
        handle.write(b"\nCHANGED_IN_ONE = True\n")
    (site / "only_in_one.py").write_bytes(b"X = 1\n")
    shutil.rmtree(site / "setuptools" / "_vendor")
    assert listing(template) == template_before
    assert listing(site_packages(two)) == two_before
    assert not (template / "only_in_one.py").exists() and not (site_packages(two) / "only_in_one.py").exists()

    wheel = write_wheel(work / f"{unique}-wheels", "hcsnap", "1.0", {"hcsnap/__init__.py": b"VALUE = 'snap'\n"})
    run_in(one, "pip", "install", "--no-index", "--disable-pip-version-check", str(wheel))
    assert run_in(one, "python", "-c", "import hcsnap; print(hcsnap.VALUE)").stdout.strip() == "snap"
    assert run_in(two, "python", "-c", "import hcsnap", check=False).returncode != 0
    run_in(one, "pip", "uninstall", "-y", "hcsnap")
    assert run_in(one, "python", "-c", "import hcsnap", check=False).returncode != 0
    assert not list(site.glob("hcsnap*"))
    assert listing(template) == template_before

    for env in (one, two):
        removed = subprocess.run(["rm", "-rf", str(env)], check=False, capture_output=True, text=True)
        assert removed.returncode == 0 and not os.path.lexists(env), removed.stderr
    assert listing(template) == template_before


# -- 3: fallback ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["xfs", "ext4"])
def test_off_btrfs_snapshot_falls_back_file_by_file_with_one_line_and_strict_refuses(request, warm_store, kind,
                                                                                     unique):
    fs = request.getfixturevalue(kind)
    store = warm_store(fs)
    env = store.parent / f"{unique}-env"
    result = virtualenv(env, *SNAPSHOT, store=store)
    lines = fallback_lines(result)
    assert len(lines) == 1, output(result)
    assert "snapshot is not available" in lines[0] and "btrfs" in lines[0] and f"{kind} is not btrfs" in lines[0]
    assert " snapshotted" not in summary_line(result)
    counts = method_counts(result)
    assert counts["reflinked" if kind == "xfs" else "hardlinked"] > 500, counts
    assert str(env) in run_in(env, "pip", "--version").stdout
    assert not is_subvolume(site_packages(env))

    strict = store.parent / f"{unique}-strict"
    refused = virtualenv(strict, *SNAPSHOT, "--holoclone-strict", store=store, check=False)
    text = output(refused)
    assert refused.returncode != 0 and "Traceback" not in text, text
    said = [line for line in text.splitlines() if "--holoclone-strict" in line]
    assert len(said) == 1 and f"{kind} is not btrfs" in said[0], text
    assert "holoclone" not in pyvenv_cfg(strict)
    assert not list(strict.glob("lib/python*/site-packages/pip*"))


def test_an_env_on_another_btrfs_falls_back_before_any_template_is_built(btrfs, make_fs, unique):
    # The empty template is cloned into the environment's folder first: another filesystem fails
    # there, not after a whole per-file build of a template that no clone can use.
    work = btrfs / unique
    work.mkdir()
    store = work / "store"
    other = make_fs("btrfs", 512)
    env = other / "env"
    result = virtualenv(env, *SNAPSHOT, store=store)
    lines = fallback_lines(result)
    snapshot = [line for line in lines if "snapshot is not available" in line]
    assert len(snapshot) == 1 and "the template is on another filesystem" in snapshot[0], lines
    assert template_paths(store) == [] and leftovers(store) == []
    assert " snapshotted" not in summary_line(result)
    assert str(env) in run_in(env, "pip", "--version").stdout
    assert sorted(p.name for p in site_packages(env).parent.iterdir()) == ["site-packages"]


def test_re_seeding_a_snapshot_env_falls_back_file_by_file(seeded, unique):
    work, store, _ = seeded
    env = work / f"{unique}-env"
    virtualenv(env, *SNAPSHOT, store=store)
    again = virtualenv(env, *SNAPSHOT, store=store)
    lines = fallback_lines(again)
    assert len(lines) == 1 and "snapshot is not available" in lines[0] and "already holds" in lines[0], output(again)
    assert " snapshotted" not in summary_line(again)
    assert str(env) in run_in(env, "pip", "--version").stdout
    run_in(env, "python", "-c", "import setuptools")
    assert len(template_paths(store)) == 1


# -- 4: a killed template build ------------------------------------------------------------------
def _big_requirements(directory: Path) -> Path:
    files = {f"hcbig/m{i // 100:02d}/f{i:04d}.py": f"VALUE = {i}\n".encode() for i in range(2000)}
    files.update({f"hcbig/m{d:02d}/__init__.py": b"" for d in range(20)})
    files["hcbig/__init__.py"] = b"READY = True\n"
    wheel = write_wheel(directory / "wheels", "hcbig", "1.0", files)
    requirements = directory / "requirements.txt"
    requirements.write_text(f"{wheel}\n")
    return requirements


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_killed_template_build_is_never_used_and_the_next_run_builds_a_whole_one(btrfs, unique):
    work = btrfs / unique
    work.mkdir()
    store = work / "store"
    args = ("--no-setuptools", "--holoclone-requirements", str(_big_requirements(work)))
    extra = {"PIP_NO_INDEX": "1"}
    # Import once file by file, so the snapshot run below spends its time building the template.
    virtualenv(work / "warm", *args, "--holoclone-strategy", "reflink", store=store, extra_env=extra)

    env = work / "env"
    process = subprocess.Popen(virtualenv_command(env, *SNAPSHOT, *args, store=store), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=isolated_environ(extra))
    while process.poll() is None and not leftovers(store):
        time.sleep(0.001)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "the run ended before its template build could be killed"
    assert leftovers(store), "the kill left no template staging"
    assert template_paths(store) == []
    # And one more leftover, sealed, as a build killed just before its rename leaves it.
    planted = store / "templates" / f".stage-{'0' * 12}.{_dead_pid()}.{time.monotonic_ns()}"
    subvolumes.prepare_template(str(planted))
    (planted / "half.py").write_bytes(b"HALF = True\n")
    subvolumes.seal(str(planted))

    again = virtualenv(env, *SNAPSHOT, *args, store=store, extra_env=extra)
    assert snapshotted(again) > 4000
    assert leftovers(store) == []
    [template] = template_paths(store)
    site = site_packages(env)
    assert is_subvolume(site) and not (site / "half.py").exists()
    assert subvolume_field(site, "Parent UUID") == subvolume_field(template, "UUID")
    shipped = {f"hcbig/m{i // 100:02d}/f{i:04d}.py" for i in range(2000)}
    assert shipped <= {str(p.relative_to(site)) for p in (site / "hcbig").rglob("*.py")}
    assert run_in(env, "python", "-c", "import hcbig.m19.f1999 as m; print(m.VALUE)").stdout.strip() == "1999"
    assert str(env) in run_in(env, "pip", "--version").stdout


# -- 5: unprivileged -----------------------------------------------------------------------------
_DISTRIBUTIONS = ("virtualenv", "holoclone-venv")


def _closure(names) -> list[importlib.metadata.Distribution]:
    seen, found, todo = set(), [], list(names)
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # required only under a marker that does not hold here (python_version < "3.11")
        found.append(dist)
        todo += [re.split(r"[ ;<>=!~\[(]", r, maxsplit=1)[0] for r in dist.requires or [] if "extra ==" not in r]
    return found


def _copy_distributions(code: Path) -> None:
    """virtualenv, holoclone and their dependencies, with their metadata (entry points), readable by anyone."""
    for dist in _closure(_DISTRIBUTIONS):
        info = Path(str(dist._path))  # type: ignore[attr-defined]
        shutil.copytree(info, code / info.name, dirs_exist_ok=True)
        if dist.metadata["Name"] == "holoclone-venv":  # an editable install: the package is the source tree
            shutil.copytree(REPO / "holoclone_venv", code / "holoclone_venv",
                            ignore=shutil.ignore_patterns("__pycache__"))
            continue
        for file in dist.files or []:
            if str(file).startswith("..") or "__pycache__" in str(file) or str(file).startswith(info.name):
                continue
            target = code / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(dist.locate_file(file), target)
    for path in [code, *code.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def _python_for(uid: int) -> str:
    """An interpreter of this Python version the user can run and virtualenv can find (not pyenv's under /root)."""
    check = "import os, sys; print(tuple(sys.version_info[:2]), os.path.exists(sys.executable))"
    for candidate in (f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}", sys.executable):
        probe = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", candidate, "-c",
                                check], check=False, capture_output=True, text=True, cwd="/")
        if probe.stdout.strip() == f"{tuple(sys.version_info[:2])} True":
            return candidate
    pytest.fail(f"no Python {sys.version_info[0]}.{sys.version_info[1]} the unprivileged user can run")


@pytest.fixture(scope="module")
def user_btrfs(nobody_btrfs):  # conftest marks tests using needs_root "root"
    """``(work, user, code, python)``: a directory of ``nobody`` on a fresh btrfs, and the code that user runs."""
    base, work, user = nobody_btrfs
    code = base / "code"
    code.mkdir()
    _copy_distributions(code)
    return work, user, code, _python_for(user.pw_uid)



def _as(user, work: Path, code: Path, *command: str) -> subprocess.CompletedProcess:
    environ = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(code), "HOME": str(work), "VIRTUALENV_CONFIG_FILE":
               str(work / "no-virtualenv.ini")}
    return subprocess.run(["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", *command],
                          check=False, capture_output=True, text=True, env=environ, cwd="/", timeout=600)


@pytest.mark.root
def test_an_unprivileged_user_seeds_with_snapshots_and_removes_the_env(user_btrfs):
    work, user, code, python = user_btrfs
    store, env = work / "store", work / "env"
    command = [python, "-m", "virtualenv", "--seeder", "holoclone", *SNAPSHOT, "--holoclone-store", str(store),
               "--app-data", str(work / "app-data"), str(env)]
    result = _as(user, work, code, *command)
    assert result.returncode == 0, output(result)
    assert snapshotted(result) > 1000 and fallback_lines(result) == []
    site = site_packages(env)
    assert is_subvolume(site) and site.lstat().st_uid == user.pw_uid
    [template] = template_paths(store)
    assert template.lstat().st_uid == user.pw_uid
    ran = _as(user, work, code, str(env / "bin" / "pip"), "--version")
    assert ran.returncode == 0 and str(site) in ran.stdout, output(ran)

    second = _as(user, work, code, *command[:-1], str(work / "second"))
    assert second.returncode == 0 and snapshotted(second) == snapshotted(result), output(second)
    for path in (env, work / "second"):
        removed = _as(user, work, code, "rm", "-rf", str(path))
        assert removed.returncode == 0 and not os.path.lexists(path), output(removed)
    assert template_paths(store) == [template]


# -- 6: gc ---------------------------------------------------------------------------------------
def test_gc_keeps_a_template_while_an_env_uses_it_and_removes_it_after(btrfs, unique):
    work = btrfs / unique
    work.mkdir()
    store = work / "store"
    one, two = work / "one", work / "two"
    virtualenv(one, *SNAPSHOT, store=store)
    virtualenv(two, *SNAPSHOT, store=store)
    [template] = template_paths(store)
    assert (template.parent / f"{template.name}.plan.json").is_file()

    shutil.rmtree(one)
    kept = holoclone("store", "gc", "--older-than", "0", "--json", store=store)
    assert kept.returncode == 0, output(kept)
    assert json.loads(kept.stdout)["templates_removed"] == []
    assert template_paths(store) == [template] and is_subvolume(template)
    assert [t["id"] for t in info(store)["templates"]] == [template.name]
    assert str(two) in run_in(two, "pip", "--version").stdout

    removed = subprocess.run(["rm", "-rf", str(two)], check=False, capture_output=True, text=True)
    assert removed.returncode == 0, removed.stderr
    gone = holoclone("store", "gc", "--older-than", "0", "--json", store=store)
    assert gone.returncode == 0, output(gone)
    assert json.loads(gone.stdout)["templates_removed"] == [template.name]
    assert info(store)["templates"] == []
    assert not os.path.lexists(template) and leftovers(store) == []
    assert list((store / "templates").iterdir()) == []  # its plan went with it

    # The next snapshot environment builds the template again.
    three = work / "three"
    again = virtualenv(three, *SNAPSHOT, store=store)
    assert snapshotted(again) > 1000 and "imported pip" in summary_line(again)
    assert str(three) in run_in(three, "pip", "--version").stdout


# -- 7: templates in use, checked, and restored from snapshots (platform audit 2: N3, N5, N9) --------
def _store(path: Path):
    from holoclone_venv.store import Store

    return Store(str(path))


def test_gc_never_removes_a_template_a_seeding_is_cloning(btrfs, unique):
    # A sealed template's mtime never changes, so gc cannot tell its age from a clone in progress:
    # a seeding holds the template's use lock while it clones, and gc leaves a template it cannot claim.
    work = btrfs / unique
    work.mkdir()
    store = work / "store"
    virtualenv(work / "one", *SNAPSHOT, store=store)
    [template] = template_paths(store)
    shutil.rmtree(work / "one")
    with _store(store).template_in_use(template.name):  # as a seeding does around its clone
        busy = holoclone("store", "gc", "--older-than", "0", "--json", store=store)
        assert busy.returncode == 0, output(busy)
        assert json.loads(busy.stdout)["templates_removed"] == []
        assert template_paths(store) == [template] and is_subvolume(template)
        assert (store / "templates" / f"{template.name}.plan.json").is_file()
    gone = holoclone("store", "gc", "--older-than", "0", "--json", store=store)
    assert json.loads(gone.stdout)["templates_removed"] == [template.name]
    assert list((store / "templates").iterdir()) == []  # its plan and its listing went with it


def test_an_edited_template_is_found_by_verify_and_a_short_clone_never_becomes_site_packages(btrfs, unique):
    work = btrfs / unique
    work.mkdir()
    store = work / "store"
    virtualenv(work / "one", *SNAPSHOT, store=store)
    [template] = template_paths(store)
    assert holoclone("store", "verify", "--json", store=store).returncode == 0
    # Someone unseals the template and removes a file (what a gc racing a clone leaves too).
    subprocess.run(["btrfs", "property", "set", str(template), "ro", "false"], check=True)
    victim = next(template.glob("pip/__init__.py"))
    victim.unlink()
    subprocess.run(["btrfs", "property", "set", str(template), "ro", "true"], check=True)

    two = virtualenv(work / "two", *SNAPSHOT, store=store)
    assert two.returncode == 0, output(two)
    assert "the clone of the template holds" in output(two)  # the snapshot fell back file by file
    assert (site_packages(work / "two") / "pip" / "__init__.py").is_file()
    assert str(work / "two") in run_in(work / "two", "pip", "--version").stdout

    checked = holoclone("store", "verify", "--json", store=store)
    problems = json.loads(checked.stdout)["problems"]
    assert checked.returncode != 0 and [p["kind"] for p in problems] == ["template"], output(checked)
    assert "pip/__init__.py is missing" in problems[0]["detail"]
    repaired = holoclone("store", "verify", "--repair", "--json", store=store)
    assert repaired.returncode == 0, output(repaired)
    assert template_paths(store) == [] and leftovers(store) == []
    three = virtualenv(work / "three", *SNAPSHOT, store=store)  # built again, whole
    assert snapshotted(three) > 1000 and "the clone of the template" not in output(three)


def test_a_template_restored_as_an_empty_placeholder_is_never_used(btrfs, unique):
    # btrfs snapshots are not recursive: in a snapshot of the subvolume holding the store (snapper,
    # Timeshift, Docker layers) each template is an empty directory with inode 2.
    work = btrfs / unique
    work.mkdir()
    subprocess.run(["btrfs", "subvolume", "create", str(work / "home")], check=True, capture_output=True)
    store = work / "home" / "store"
    virtualenv(work / "one", *SNAPSHOT, store=store)
    [template] = template_paths(store)
    subprocess.run(["btrfs", "subvolume", "snapshot", str(work / "home"), str(work / "restored")], check=True,
                   capture_output=True)
    restored = work / "restored" / "store"
    placeholder = restored / "templates" / template.name
    assert placeholder.is_dir() and placeholder.stat().st_ino != SUBVOLUME_ROOT and not any(placeholder.iterdir())
    assert not _store(restored).has_template(template.name)

    two = virtualenv(work / "two", *SNAPSHOT, store=restored)
    assert two.returncode == 0, output(two)
    assert snapshotted(two) > 1000  # from a template built again, not from the placeholder
    assert is_subvolume(restored / "templates" / template.name)
    assert str(work / "two") in run_in(work / "two", "pip", "--version").stdout


def test_store_clean_removes_read_only_templates_so_rm_rf_of_the_store_works(btrfs, unique):
    # rm -rf fails with EROFS on a sealed template; 'holoclone store clean --yes' is the way out.
    work = btrfs / unique
    work.mkdir()
    store = work / "store"
    virtualenv(work / "one", *SNAPSHOT, store=store)
    [template] = template_paths(store)
    refused = subprocess.run(["rm", "-rf", str(template)], capture_output=True, text=True)
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr
    cleaned = holoclone("store", "clean", "--yes", store=store)
    assert cleaned.returncode == 0, output(cleaned)
    assert not os.path.lexists(template) and template_paths(store) == []
    removed = subprocess.run(["rm", "-rf", str(store)], capture_output=True, text=True)
    assert removed.returncode == 0, removed.stderr
    assert str(work / "one") in run_in(work / "one", "pip", "--version").stdout  # its files are its own
