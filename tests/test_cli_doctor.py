"""``holoclone doctor``: real clone and hardlink probes, the verdict of ``smart``, and advice."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import holoclone

from holoclone_venv.store import Store


def doctor(directory: Path, store: Path, *args: str) -> tuple[int, dict]:
    result = holoclone("doctor", "--json", *args, str(directory), store=store)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def make_store(path: Path) -> Path:
    Store(path).check(create=True)
    return path


def leftovers(*dirs: Path) -> list[str]:
    return [p.name for d in dirs for p in d.rglob(".holoclone-doctor*")]


def test_xfs_clones_so_smart_reflinks(xfs, unique):
    directory = xfs / f"envs-{unique}"
    directory.mkdir()
    store = make_store(xfs / f"store-{unique}")
    status, report = doctor(directory, store)
    assert status == 0
    assert report["directory_fs"] == "xfs" and report["store_fs"] == "xfs"
    assert report["reflink"]["ok"] and report["hardlink"]["ok"]
    assert report["smart"] == "reflink"
    assert report["store_exists"]
    assert leftovers(directory, store) == []


def test_btrfs_clones_so_smart_reflinks(btrfs, unique):
    directory = btrfs / f"envs-{unique}"
    directory.mkdir()
    store = make_store(btrfs / f"store-{unique}")
    status, report = doctor(directory, store)
    assert (status, report["smart"], report["directory_fs"]) == (0, "reflink", "btrfs")
    # Snapshot templates are read-only subvolumes: the way out is named before anyone meets EROFS.
    assert report["snapshot"]["ok"]
    said = [line for line in report["advice"] if "read-only subvolumes" in line]
    assert len(said) == 1 and "holoclone store clean --yes" in said[0] and str(store) in said[0], report["advice"]


def test_snapshot_caveats_name_containers_and_rollback_tools_only_where_found(tmp_path, monkeypatch):
    from holoclone_venv.command import doctor as doctor_module

    markers = tmp_path / "dockerenv", tmp_path / "containerenv"
    snapper, timeshift = tmp_path / "snapper-configs", tmp_path / "timeshift.json"
    snapper.mkdir()
    monkeypatch.setattr(doctor_module, "CONTAINER_MARKERS", tuple(map(str, markers)))
    monkeypatch.setattr(doctor_module, "ROLLBACK_TOOLS", (("snapper", str(snapper)), ("Timeshift", str(timeshift))))
    plain = doctor_module.snapshot_caveats("/s")
    assert len(plain) == 2 and "Read-only file system" in plain[0] and "uv pip install" in plain[1]
    markers[1].write_text("")
    (snapper / "root").write_text("SUBVOLUME=/\n")
    timeshift.write_text("{}")
    found = doctor_module.snapshot_caveats("/s")[2:]
    assert len(found) == 2
    assert "container" in found[0] and "empty site-packages" in found[0]
    assert found[1].startswith("Timeshift and snapper snapshot this system") and "rollback" in found[1]


def test_ext4_hardlinks_and_says_why_and_what_to_do(ext4, unique):
    directory = ext4 / f"envs-{unique}"
    directory.mkdir()
    store = make_store(ext4 / f"store-{unique}")
    status, report = doctor(directory, store)
    assert status == 0  # hardlinks still share data: not a problem, but explained
    assert report["directory_fs"] == "ext4"
    assert not report["reflink"]["ok"] and "FICLONE" in report["reflink"]["detail"]
    assert report["hardlink"]["ok"]
    assert report["smart"] == "hardlink"
    assert any("ext4" in a and "cannot clone" in a and "XFS" in a for a in report["advice"])
    assert leftovers(directory, store) == []


def test_store_on_other_filesystem_advises_moving_it(xfs, ext4, unique):
    directory = xfs / f"envs-{unique}"
    directory.mkdir()
    store = make_store(ext4 / f"store-{unique}")
    status, report = doctor(directory, store)
    assert status == 1  # neither clone nor hardlink: every file would be copied
    assert report["smart"] == "copy"
    assert not report["same_device"]
    assert report["reflink_within_directory"]["ok"]
    assert any(f"--holoclone-store {directory}/.holoclone-store" in a for a in report["advice"])
    text = holoclone("doctor", str(directory), store=store)
    assert "smart uses      copy" in text.stdout and "move the store" in text.stdout


def test_missing_store_is_probed_from_where_it_would_be_created(xfs, unique):
    directory = xfs / f"envs-{unique}"
    directory.mkdir()
    store = xfs / f"not-yet-{unique}" / "store"
    status, report = doctor(directory, store)
    assert status == 0 and not report["store_exists"] and report["smart"] == "reflink"
    assert not store.exists()


def test_reports_default_seeder_versions_and_plugins(tmp_path):
    config = tmp_path / "virtualenv.ini"
    config.write_text("[virtualenv]\nseeder = holoclone\n")
    result = holoclone("doctor", "--json", str(tmp_path), "--store", str(tmp_path / "store"),
                       extra_env={"VIRTUALENV_CONFIG_FILE": str(config)})
    report = json.loads(result.stdout)
    assert report["default_seeder"] == {"seeder": "holoclone", "source": str(config), "holoclone": True,
                                        "config_file": str(config)}
    from importlib.metadata import version

    assert report["virtualenv_version"] == version("virtualenv")
    assert "platform" in {p["name"] for p in report["plugins"]}
    overridden = holoclone("doctor", "--json", str(tmp_path), "--store", str(tmp_path / "store"),
                           extra_env={"VIRTUALENV_CONFIG_FILE": str(config), "VIRTUALENV_SEEDER": "app-data"})
    assert json.loads(overridden.stdout)["default_seeder"]["source"] == "VIRTUALENV_SEEDER"


def test_doctor_on_a_missing_directory_is_a_usage_error(tmp_path):
    result = holoclone("doctor", str(tmp_path / "nope"), "--store", str(tmp_path / "store"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "is not a directory" in result.stderr
