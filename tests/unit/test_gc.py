"""Which environments keep store content alive, and what gc removes (on a hand-built store)."""

from __future__ import annotations

import json
import os
import time


from holoclone_venv.command.maintenance.gc import gc
from holoclone_venv.command.maintenance.refs import REF_GRACE, classify_refs
from holoclone_venv.store import Store


def _env(tmp_path, name, cfg: str | None):
    env = tmp_path / name
    env.mkdir()
    if cfg is not None:
        (env / "pyvenv.cfg").write_text(cfg)
    return env


def _holoclone_cfg(store: Store) -> str:
    return f"home = /usr/bin\nversion = 3.11.7\nholoclone = 0.1.0\nholoclone_store = {store.root}\n"


def _age_ref(store: Store, env, seconds: float) -> None:
    for path, document in store.iter_refs():
        if document.get("env") == str(env):
            document["created"] = time.time() - seconds
            path.write_text(json.dumps(document))


def _by_env(refs):
    return {ref.env: ref for ref in refs}


def test_liveness_of_each_kind_of_ref(store, tmp_path):
    gone = tmp_path / "gone"
    live = _env(tmp_path, "live", _holoclone_cfg(store))
    no_store_key = _env(tmp_path, "plain-key", "holoclone = 0.1.0\n")
    moved = _env(tmp_path, "moved", f"holoclone = 0.1.0\nholoclone_store = {tmp_path / 'other-store'}\n")
    young = _env(tmp_path, "young", "home = /usr/bin\n")
    old = _env(tmp_path, "old", "home = /usr/bin\n")
    no_cfg_old = _env(tmp_path, "no-cfg", None)
    for env in (gone, live, no_store_key, moved, young, old, no_cfg_old):
        store.add_ref(str(env), ["k"])
    _age_ref(store, old, REF_GRACE + 60)
    _age_ref(store, no_cfg_old, REF_GRACE + 60)
    (store.refs / "unreadable.json").write_text("{garbage")
    refs = classify_refs(store)
    by_env = _by_env(refs)
    assert not by_env[str(gone)].live and "gone" in by_env[str(gone)].why
    assert by_env[str(live)].live
    assert by_env[str(no_store_key)].live
    assert not by_env[str(moved)].live and str(tmp_path / "other-store") in by_env[str(moved)].why
    assert by_env[str(young)].live and "being created" in by_env[str(young)].why
    assert not by_env[str(old)].live
    assert not by_env[str(no_cfg_old)].live
    unreadable = [r for r in refs if r.path.name == "unreadable.json"]
    assert len(unreadable) == 1 and not unreadable[0].live


def test_holoclone_store_naming_this_store_through_a_symlink_is_live(store, tmp_path):
    alias = tmp_path / "alias"
    os.symlink(store.root, alias)
    env = _env(tmp_path, "env", f"holoclone = 0.1.0\nholoclone_store = {alias}\n")
    store.add_ref(str(env), ["k"])
    _age_ref(store, env, REF_GRACE + 60)
    assert classify_refs(store)[0].live


def test_grace_decides_for_an_environment_without_the_key(store, tmp_path):
    env = _env(tmp_path, "env", "home = /usr/bin\n")
    store.add_ref(str(env), ["k"])
    _age_ref(store, env, 100)
    assert classify_refs(store, grace=1000)[0].live
    assert not classify_refs(store, grace=10)[0].live


def _objects(store: Store) -> set[str]:
    return {digest for digest, _, _ in store.iter_objects()}


def test_gc_removes_dead_refs_unused_catalogs_and_their_objects(store, tmp_path, make_catalog):
    kept = make_catalog(store, "kept", {"kept/__init__.py": b"kept\n", "kept/bin.sh": b"#!/bin/sh\n"},
                        executable={"kept/bin.sh"})
    dropped = make_catalog(store, "dropped", {"dropped/__init__.py": b"dropped\n"})
    unused = make_catalog(store, "unused", {"unused/__init__.py": b"unused\n"})
    live_env = _env(tmp_path, "live", _holoclone_cfg(store))
    store.add_ref(str(live_env), [kept.key])
    store.add_ref(str(tmp_path / "deleted-env"), [dropped.key])
    result = gc(store, older_than=0)
    assert [r.env for r in result.live] == [str(live_env)]
    assert [r.env for r in result.dead] == [str(tmp_path / "deleted-env")]
    assert sorted(result.catalogs) == sorted([dropped.key, unused.key])
    assert [key for key, _ in store.iter_catalogs()] == [kept.key]
    assert [doc["env"] for _, doc in store.iter_refs()] == [str(live_env)]
    assert _objects(store) == {digest for digest, _ in kept.objects()}
    for digest, executable in kept.objects():
        assert os.path.exists(store.object_path(digest, executable))
    assert result.objects == 4  # the file and the RECORD object of each of dropped and unused
    assert store.load_catalog(kept.key) == kept


def test_gc_keeps_objects_shared_with_a_live_catalog(store, tmp_path, make_catalog):
    shared = b"shared = True\n"
    live_catalog = make_catalog(store, "one", {"one/common.py": shared, "one/a.py": b"a\n"})
    dead_catalog = make_catalog(store, "two", {"two/common.py": shared, "two/b.py": b"b\n"})
    store.add_ref(str(_env(tmp_path, "live", _holoclone_cfg(store))), [live_catalog.key])
    gc(store, older_than=0)
    assert store.load_catalog(dead_catalog.key) is None
    assert _objects(store) == {digest for digest, _ in live_catalog.objects()}
    shared_entry = next(e for e in live_catalog.entries if e.path == "one/common.py")
    assert store.has_object(shared_entry.digest, shared_entry.size)


def test_gc_keeps_record_objects_of_kept_catalogs(store, tmp_path, make_catalog):
    kept = make_catalog(store, "kept", {"kept/x.py": b"x\n"})
    dropped = make_catalog(store, "dropped", {"dropped/y.py": b"y\n"})
    kept_record = store.put_record_object(kept.key, "paths", b"kept rows\n")
    dropped_record = store.put_record_object(dropped.key, "paths", b"dropped rows\n")
    store.add_ref(str(_env(tmp_path, "live", _holoclone_cfg(store))), [kept.key])
    gc(store, older_than=0)
    assert store.record_object(kept.key, "paths") == kept_record
    assert not os.path.exists(dropped_record)
    assert not list(store.catalogs.glob(f"{dropped.key}.record-*"))


def test_gc_dry_run_removes_nothing_and_reports_what_a_real_run_removes(store, tmp_path, make_catalog):
    kept = make_catalog(store, "kept", {"kept/x.py": b"x\n"})
    make_catalog(store, "dropped", {"dropped/y.py": b"y\n"})
    store.add_ref(str(_env(tmp_path, "live", _holoclone_cfg(store))), [kept.key])
    store.add_ref(str(tmp_path / "gone"), [])
    files_before = sorted(p for p in store.root.rglob("*") if "locks" not in p.parts)
    planned = gc(store, dry_run=True, older_than=0)
    assert sorted(p for p in store.root.rglob("*") if "locks" not in p.parts) == files_before
    done = gc(store, older_than=0)
    assert planned.dry_run and not done.dry_run
    assert (planned.catalogs, planned.objects, [r.env for r in planned.dead]) == (
        done.catalogs, done.objects, [r.env for r in done.dead])
    assert planned.objects == 2


def test_gc_never_removes_an_unreadable_catalog(store, make_catalog):
    catalog = make_catalog(store, "victim", {"victim/x.py": b"x\n"})
    path = store.catalog_path(catalog.key)
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes()[:-5])  # truncated: malformed JSON
    result = gc(store, older_than=0)
    assert path.exists()
    assert catalog.key not in result.catalogs


def test_gc_spares_young_unused_catalogs(store, make_catalog):
    catalog = make_catalog(store, "fresh", {"fresh/x.py": b"x\n"})
    result = gc(store)  # default grace: a seeder may not have written its ref yet
    assert store.load_catalog(catalog.key) == catalog
    assert result.kept_young == [catalog.key]
    assert _objects(store) == {digest for digest, _ in catalog.objects()}


def test_gc_removes_resolutions_whose_wheels_are_gone(store, tmp_path, make_catalog):
    kept = make_catalog(store, "kept", {"kept/x.py": b"x\n"})
    store.add_ref(str(_env(tmp_path, "live", _holoclone_cfg(store))), [kept.key])
    store.write_resolution("good", {"format": 1, "wheels": [[kept.wheel, kept.wheel_sha256]]})
    store.write_resolution("stale", {"format": 1, "wheels": [[kept.wheel, kept.wheel_sha256], ["gone.whl", "e" * 64]]})
    store.write_resolution("broken", {"format": 1})
    result = gc(store, older_than=0)
    assert sorted(key for key, _, _ in store.iter_resolutions()) == ["good"]
    assert result.resolutions == 2


def test_gc_removes_kept_wheels_and_index_entries_of_dropped_catalogs(store, tmp_path, make_catalog):
    wheel = tmp_path / "w.whl"
    wheel.write_bytes(b"wheel")
    digest = store.wheel_digest(wheel)
    staged = store.tmp_file("wheel")
    with open(staged, "wb") as handle:
        handle.write(b"wheel")
    store.adopt_wheel(staged, "w.whl", digest)
    gc(store, older_than=0)
    assert list(store.iter_wheels()) == []
    assert list(store.iter_wheel_index()) == []


def test_a_ref_with_a_null_catalog_list_is_dead_and_gc_goes_on(store, tmp_path, make_catalog):
    catalog = make_catalog(store, "orphan", {"orphan/x.py": b"x\n"})
    store.refs.mkdir(exist_ok=True)
    (store.refs / "damaged.json").write_text(json.dumps({"env": str(tmp_path), "catalogs": None, "created": 0}))
    result = gc(store, older_than=0)
    assert [r.path.name for r in result.dead] == ["damaged.json"]
    assert store.load_catalog(catalog.key) is None


def test_gc_removes_old_install_plans_that_are_unpinned_or_name_a_wheel_it_drops(store):
    store_item = {"name": "alpha", "version": "1.0", "kind": "store", "sha256": "ef" * 32}
    plans = {"ab" * 32: {"created": 1.0, "pinned": False, "items": []},
             "cd" * 32: {"created": 1.0, "pinned": True, "items": [store_item]},  # its wheel is not kept
             "ef" * 32: {"created": 1.0, "pinned": True, "items": []}}
    for key, plan in plans.items():
        store.write_install_plan(key, plan)
    young = gc(store)  # younger than the grace: kept whatever they are
    assert young.install_plans == 0 and len(list(store.iter_install_plans())) == 3
    result = gc(store, older_than=0)
    assert result.install_plans == 2 and result.as_dict()["install_plans_removed"] == 2
    assert [path.stem for path, _ in store.iter_install_plans()] == ["ef" * 32]
