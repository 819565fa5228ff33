"""``holoclone store``: info, verify/repair, gc, export/import on stores made by real virtualenv runs."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest
from helpers import (REPO, TAG, catalog_by_name, fallback_lines, holoclone, output, read_only_bind, run_in,
                     summary_line, virtualenv)

from holoclone_venv.store.catalog import EXECUTABLE
from holoclone_venv.store import Store

SOURCE_TREE = {"PYTHONPATH": str(REPO)}


def as_json(store: Path, *args: str, status: int = 0) -> dict:
    result = holoclone(*args, "--json", store=store)
    assert result.returncode == status, result.stdout + result.stderr
    return json.loads(result.stdout)


def seed(env: Path, store: Path, *args: str) -> str:
    result = virtualenv(env, *args, store=store, extra_env=SOURCE_TREE)
    return result.stdout + result.stderr


def object_of(store: Path, name: str, path: str) -> Path:
    catalog = catalog_by_name(store, name)
    entry = next(e for e in catalog.entries if e.path == path)
    return Path(Store(store).object_path(entry.digest, bool(entry.flags & EXECUTABLE)))


def flip_byte_keeping_mode_and_mtime(path: Path) -> None:
    st = path.stat()
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    path.chmod(st.st_mode & 0o777)
    os.utime(path, (st.st_atime, st.st_mtime))


def test_verify_finds_damage_the_cheap_check_cannot_see_and_repair_heals(xfs, unique):
    store = xfs / f"store-{unique}"
    seed(xfs / f"env1-{unique}", store)
    assert as_json(store, "store", "verify")["ok"]

    flipped = object_of(store, "pip", "pip/__init__.py")
    flip_byte_keeping_mode_and_mtime(flipped)
    deleted = object_of(store, "setuptools", "setuptools/__init__.py")
    deleted.unlink()
    report = as_json(store, "store", "verify", status=1)
    kinds = {(p["kind"], p["path"]) for p in report["problems"]}
    assert ("corrupt", str(flipped)) in kinds
    incomplete = {Path(p).name for kind, p in kinds if kind == "incomplete"}
    assert incomplete == {f"{catalog_by_name(store, n).key}.json" for n in ("pip", "setuptools")}
    assert all(not p["repaired"] for p in report["problems"])
    text = holoclone("store", "verify", store=store)
    assert text.returncode == 1 and "verify --repair" in text.stdout

    repaired = as_json(store, "store", "verify", "--repair")
    assert repaired["ok"] and all(p["repaired"] for p in repaired["problems"])
    assert not flipped.exists() and list(Store(store).iter_catalogs()) == []
    clean = as_json(store, "store", "verify")
    assert clean["ok"] and clean["problems"] == []

    env2 = xfs / f"env2-{unique}"
    out = seed(env2, store)
    assert "imported pip" in out and "setuptools" in out.split("imported", 1)[1]
    assert "pip" in run_in(env2, "pip", "--version").stdout
    assert as_json(store, "store", "verify")["ok"]


def test_gc_keeps_what_live_environments_need_and_frees_what_deleted_ones_held(xfs, unique):
    store = xfs / f"store-{unique}"
    keep = xfs / f"keep-{unique}"
    drop = xfs / f"drop-{unique}"
    seed(keep, store, "--no-setuptools")
    seed(drop, store)  # pip (shared with keep) and setuptools (only drop)
    pip_key = catalog_by_name(store, "pip").key
    setuptools_key = catalog_by_name(store, "setuptools").key

    info = as_json(store, "store", "info")
    assert {e["env"] for e in info["environments"]} == {str(keep), str(drop)}
    assert info["size"]["method"] == "extents" and 0 < info["size"]["physical"]
    assert {(c["name"], c["tag"]) for c in info["catalogs"]} == {("pip", TAG), ("setuptools", TAG)}

    nothing = as_json(store, "store", "gc")
    assert nothing["catalogs_removed"] == [] and nothing["objects_removed"] == 0

    shutil.rmtree(drop)
    _age_catalogs(store)  # past the grace period that protects a seeder between import and ref
    before = as_json(store, "store", "info")
    objects_before = sum(1 for _ in Store(store).iter_objects())
    planned = as_json(store, "store", "gc", "--dry-run")
    assert planned["catalogs_removed"] == [setuptools_key]
    assert planned["objects_removed"] > 0 and planned["frees"]["physical"] > 0
    assert sum(1 for _ in Store(store).iter_objects()) == objects_before  # dry run removed nothing

    done = as_json(store, "store", "gc")
    assert done["catalogs_removed"] == [setuptools_key]
    assert [r["env"] for r in done["dead_refs"]] == [str(drop)]
    assert [r["env"] for r in done["live_environments"]] == [str(keep)]
    assert [key for key, _ in Store(store).iter_catalogs()] == [pip_key]
    assert sum(1 for _ in Store(store).iter_objects()) == objects_before - done["objects_removed"]
    assert as_json(store, "store", "verify")["ok"]
    after = as_json(store, "store", "info")
    assert after["size"]["apparent"] == before["size"]["apparent"] - planned["frees"]["apparent"]
    assert after["size"]["physical"] < before["size"]["physical"]

    # The kept environment still needs nothing re-imported; a new full one re-imports setuptools only.
    out = seed(xfs / f"new-{unique}", store)
    assert "imported setuptools" in out and "imported pip" not in out


def _age_catalogs(store: Path, seconds: float = 7200) -> None:
    for _, path in Store(store).iter_catalogs():
        stamp = path.stat().st_mtime - seconds
        os.utime(path, (stamp, stamp))


def test_gc_keeps_a_freshly_imported_catalog_no_environment_references_yet(xfs, unique):
    store = xfs / f"store-{unique}"
    env = xfs / f"env-{unique}"
    seed(env, store, "--no-setuptools")
    shutil.rmtree(env)  # its ref is now dead, but the catalog was imported a moment ago
    done = as_json(store, "store", "gc")
    assert done["catalogs_removed"] == []
    key = catalog_by_name(store, "pip").key
    _age_catalogs(store)
    assert as_json(store, "store", "gc")["catalogs_removed"] == [key]


def test_gc_drops_a_ref_whose_environment_was_recreated_by_another_seeder(xfs, unique):
    store = xfs / f"store-{unique}"
    env = xfs / f"env-{unique}"
    seed(env, store, "--no-setuptools")
    recreated = virtualenv(env, "--clear", "--no-setuptools", seeder=None, extra_env=SOURCE_TREE, check=False)
    assert recreated.returncode == 0, recreated.stderr
    # Age the ref past the grace period given to environments being created.
    ref = next(Store(store).refs.glob("*.json"))
    document = json.loads(ref.read_text())
    ref.write_text(json.dumps({**document, "created": document["created"] - 7200}))
    _age_catalogs(store)
    done = as_json(store, "store", "gc")
    assert "no holoclone key" in done["dead_refs"][0]["why"]
    assert list(Store(store).iter_catalogs()) == []


def test_export_import_then_seed_offline_from_the_second_store(xfs, unique, tmp_path):
    first = xfs / f"first-{unique}"
    second = xfs / f"second-{unique}"
    seed(xfs / f"env1-{unique}", first)
    bundle = tmp_path / "seed.tar.gz"
    exported = as_json(first, "store", "export", "--all", "-o", str(bundle))
    assert len(exported["catalogs"]) == 2 and exported["objects"] > 500

    imported = as_json(second, "store", "import", "--trust-unsigned", str(bundle))
    assert sorted(imported["catalogs"]) == sorted(exported["catalogs"])
    assert as_json(second, "store", "verify")["ok"]

    env = xfs / f"env2-{unique}"
    result = virtualenv(env, "--no-download", store=second,
                        extra_env={**SOURCE_TREE, "PIP_NO_INDEX": "1", "VIRTUALENV_NO_PERIODIC_UPDATE": "1"})
    line = summary_line(result)
    assert "imported" not in line and str(second) in line
    assert "pip" in run_in(env, "pip", "--version").stdout

    # A receiver's manifest leaves out what it has; importing such a bundle adds nothing.
    manifest = tmp_path / "second.manifest"
    assert holoclone("store", "manifest", "-o", str(manifest), store=second).returncode == 0
    delta = tmp_path / "delta.tar"
    small = as_json(first, "store", "export", "pip", "-o", str(delta), "--have", str(manifest))
    assert small["objects"] == 0 and small["omitted"] > 0
    again = as_json(second, "store", "import", "--trust-unsigned", str(delta))
    assert again["objects"] == 0 and again["catalogs"] == [catalog_by_name(first, "pip").key]


def _bundle_from(source: Path, target: Path, change) -> None:
    """Copy a bundle, letting ``change(member, data)`` return a replacement (member, data) or None to drop."""
    with tarfile.open(source) as src, tarfile.open(target, "w") as dst:
        for member in src:
            data = src.extractfile(member).read()
            replaced = change(member, data)
            if replaced is not None:
                member, data = replaced
                member.size = len(data)
                dst.addfile(member, io.BytesIO(data))


def test_import_refuses_bad_bundles_and_writes_nothing(xfs, unique, tmp_path):
    source = xfs / f"source-{unique}"
    seed(xfs / f"env-{unique}", source, "--no-setuptools")
    bundle = tmp_path / "good.tar"
    as_json(source, "store", "export", "pip", "-o", str(bundle))

    def tamper(member, data):
        if member.name.startswith("objects/") and not tamper.done:
            tamper.done = member.name
            return member, data + b"#"
        return member, data

    tamper.done = ""
    corrupt = tmp_path / "corrupt.tar"
    _bundle_from(bundle, corrupt, tamper)

    def escape(member, data):
        if member.name.startswith("catalogs/"):
            member.name = "../../evil.json"
        return member, data

    unsafe = tmp_path / "unsafe.tar"
    _bundle_from(bundle, unsafe, escape)

    def drop_objects(member, data):
        return None if member.name.startswith("objects/") else (member, data)

    hollow = tmp_path / "hollow.tar"
    _bundle_from(bundle, hollow, drop_objects)

    for bad, says in ((corrupt, tamper.done), (unsafe, "../../evil.json"), (hollow, "lacks object")):
        target = xfs / f"target-{bad.stem}-{unique}"
        result = holoclone("store", "import", "--trust-unsigned", str(bad), store=target)
        assert result.returncode == 2, result.stderr
        assert says in result.stderr and "nothing was imported" in result.stderr
        assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
        assert list(Store(target).iter_objects()) == [] and list(Store(target).iter_catalogs()) == []
        assert not (xfs / "evil.json").exists()


@pytest.mark.parametrize("command", [[], ["doctor"], ["enable"], ["disable"], ["plugins"], ["store"],
                                     ["store", "info"], ["store", "verify"], ["store", "gc"], ["store", "prune"],
                                     ["store", "list"], ["store", "export"],
                                     ["store", "import"], ["store", "manifest"]])
def test_every_command_has_help_with_an_example_and_the_exit_codes(command, tmp_path):
    result = holoclone(*command, "--help", store=tmp_path)
    assert result.returncode == 0
    assert "example" in result.stdout and "exit status" in result.stdout


def test_missing_newer_or_locked_store_is_one_sentence_and_exit_2(tmp_path):
    missing = holoclone("store", "verify", store=tmp_path / "nope")
    assert missing.returncode == 2 and missing.stderr.startswith("holoclone: no holoclone store at")

    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / "LAYOUT").write_text("holoclone-store 99\n")
    result = holoclone("store", "verify", store=newer)
    assert result.returncode == 2 and "newer than this holoclone-venv understands" in result.stderr

    from filelock import FileLock

    store = tmp_path / "store"
    opened = Store(store)
    opened.check(create=True)
    opened.locks.mkdir()
    with FileLock(str(opened.locks / "store.lock")):
        locked = holoclone("store", "gc", "--lock-timeout", "0.2", store=store)
    assert locked.returncode == 2 and "gave up after 0.2 s" in locked.stderr
    for result in (missing, result, locked):
        assert "Traceback" not in result.stderr

    export = holoclone("store", "export", "-o", str(tmp_path / "x.tar"), store=store)
    assert export.returncode == 2 and "--all" in export.stderr


def test_without_extents_info_counts_blocks_and_says_so_and_verify_fixes_a_writable_object(tmpfs, unique):
    store = tmpfs / f"store-{unique}"
    seed(tmpfs / f"env-{unique}", store, "--no-setuptools")
    info = as_json(store, "store", "info")
    assert info["size"]["method"] == "blocks" and info["size"]["physical"] >= info["size"]["apparent"] > 0
    assert "counted from allocated blocks" in holoclone("store", "info", store=store).stdout

    loosened = object_of(store, "pip", "pip/__init__.py")
    loosened.chmod(0o644)  # content intact, but writable: the next hardlink could leak edits into the store
    report = as_json(store, "store", "verify", status=1)
    assert [(p["kind"], p["path"]) for p in report["problems"]] == [("mode", str(loosened))]
    assert as_json(store, "store", "verify", "--repair")["ok"]
    assert loosened.stat().st_mode & 0o777 == 0o444
    assert [key for key, _ in Store(store).iter_catalogs()] == [catalog_by_name(store, "pip").key]


def test_a_read_only_store_can_be_checked_listed_and_used_and_is_called_read_only(xfs, unique):
    store = xfs / unique / "store"
    seed(xfs / unique / "first", store, "--no-setuptools")
    with read_only_bind(store, xfs / unique / "shared") as shared:
        verify = holoclone("store", "verify", store=shared)
        assert verify.returncode == 0 and "store is intact" in verify.stdout, output(verify)
        dry = holoclone("store", "gc", "--dry-run", store=shared)
        assert dry.returncode == 0 and "would free" in dry.stdout, output(dry)
        listed = holoclone("store", "list", store=shared)
        assert listed.returncode == 0 and listed.stdout.startswith("pip "), output(listed)
        # What would change it still needs the lock, and says why it cannot have it, in one sentence.
        gc = holoclone("store", "gc", store=shared)
        assert gc.returncode == 2 and "Read-only file system" in gc.stderr and gc.stderr.count("\n") == 1

        # Linux links across no two mounts, even of one filesystem: the reason is the mount, not another filesystem.
        env = xfs / unique / "env"
        result = virtualenv(env, "--no-setuptools", "--holoclone-strategy", "hardlink", store=shared)
        lines = fallback_lines(result)
        assert len(lines) == 1 and "the store is on a read-only mount, and links cannot cross mounts" in lines[0]
        assert "different filesystems" not in output(result)
        assert str(env) in run_in(env, "pip", "--version").stdout
