"""``holoclone install``'s own rules, without a real environment: its command line, pins, plan freshness and
TTL settings, and how stored plans are read."""

from __future__ import annotations

import hashlib
import json
import os
import sys

import pytest

from holoclone_venv.command.cli import main
from holoclone_venv.errors import ConfigError
from holoclone_venv.command.install.command import plan_ttl
from holoclone_venv.command.install.fetch import network_options
from holoclone_venv.command.install.pipargs import UsageError, pins, requirement_lines, split
from holoclone_venv.command.install.plan import DEFAULT_PLAN_TTL, fresh, is_pinned, valid_items
from holoclone_venv.command.install.run import local_items_only
from holoclone_venv.command.install.target import Target
from holoclone_venv.environment import Interpreter
from holoclone_venv.command.install.target import TargetError, find_target

KEY = "ab" * 32


def _item(name: str, version: str, **changes) -> dict:
    item = {"name": name, "version": version, "url": f"https://example.org/{name}-{version}-py3-none-any.whl",
            "requested": True, "direct_url": None, "sha256": "cd" * 32, "filename": f"{name}-{version}-py3-none-any.whl",
            "kind": "store", "pip": []}
    return {**item, **changes}


def test_holoclone_options_anywhere_and_pips_arguments_untouched_in_order():
    options, pip = split(["-r", "req.txt", "--python", "/e", "-q", "--plan-ttl=5", "-i", "https://i/simple",
                          "--refresh", "--store", "/s", "requests[socks]>=2", "-c", "c.txt", "-e", "./proj"])
    assert (options.python, options.verbosity, options.plan_ttl, options.refresh, options.store) == ("/e", -1, 5.0, True, "/s")
    assert pip.args == ["-r", "req.txt", "-i", "https://i/simple", "requests[socks]>=2", "-c", "c.txt", "-e", "./proj"]
    assert (pip.requirement_files, pip.constraint_files, pip.editables, pip.specs) == (
        ["req.txt"], ["c.txt"], ["./proj"], ["requests[socks]>=2"])
    # Later pip runs get where to look and the constraints (absolute), never what decides the plan.
    assert pip.forwarded == ["-i", "https://i/simple", "-c", os.path.abspath("c.txt")]


@pytest.mark.parametrize("argv, words", [
    (["--plan-ttl", "soon", "x"], "--plan-ttl takes a number of seconds"),
    (["--python"], "--python needs a value"),
    (["--target", "/tmp/t", "x"], "does not take pip's --target"),
    (["--user", "x"], "does not take pip's --user"),
    (["--dry-run", "x"], "does not take pip's --dry-run"),
    (["-i", "https://i/simple"], "name what to install"),
])
def test_bad_command_lines_are_one_sentence(argv, words):
    with pytest.raises(UsageError, match=words):
        split(argv)


def test_the_command_exits_2_with_one_sentence_for_a_usage_error(capsys):
    assert main(["install", "--plan-ttl", "-1", "x"]) == 2
    err = capsys.readouterr().err
    assert err.count("holoclone:") == 1 and "--plan-ttl must be zero or more" in err


def test_a_missing_environment_is_refused(tmp_path):
    with pytest.raises(TargetError, match="does not exist"):
        find_target(str(tmp_path / "nowhere"), {})
    with pytest.raises(TargetError, match="VIRTUAL_ENV is not set"):
        find_target(None, {})


_BASE = os.path.join(sys.base_prefix, "bin", f"python{sys.version_info[0]}.{sys.version_info[1]}")


@pytest.mark.skipif(not os.path.isfile(_BASE), reason="no base interpreter to point at")
def test_the_base_interpreter_is_not_a_virtual_environment():
    base = _BASE
    with pytest.raises(TargetError, match="is not a virtual environment"):
        find_target(base, {})


def test_pins_come_from_specs_files_and_constraints(tmp_path):
    (tmp_path / "inner.txt").write_text("Beta_Pkg[x] == 2.0 ; python_version > '3'\n")
    (tmp_path / "req.txt").write_text("-r inner.txt\nalpha==1.0  # pinned\ngamma>=1\ndelta==1.*\n")
    texts, links, hashes = requirement_lines([str(tmp_path / "req.txt")])
    assert [os.path.basename(p) for p, _ in texts] == ["req.txt", "inner.txt"] and not hashes
    assert pins(texts, ["eps==3"]) == {"alpha": "1.0", "beta-pkg": "2.0", "eps": "3"}


def test_a_plan_is_pinned_only_when_every_item_is(tmp_path):
    _, pip = split(["alpha==1.0", "beta"])
    assert not is_pinned([_item("alpha", "1.0"), _item("beta", "2.0")], pip)
    _, pip = split(["alpha==1.0", "beta==2.0"])
    assert is_pinned([_item("alpha", "1.0"), _item("beta", "2.0")], pip)
    # A dependency nobody pinned can move: the plan is not pinned.
    assert not is_pinned([_item("alpha", "1.0"), _item("beta", "2.0"), _item("gamma", "1.0", requested=False)], pip)
    (tmp_path / "locked.txt").write_text("alpha==1.0 --hash=sha256:" + "ab" * 32 + "\n")
    _, pip = split(["-r", str(tmp_path / "locked.txt")])
    assert is_pinned([_item("alpha", "1.0"), _item("beta", "2.0")], pip)  # hash-checking mode
    direct = _item("proj", "1.0", direct_url={"url": "file:///p.whl", "archive_info": {}}, kind="local")
    _, pip = split(["/p.whl"])
    assert is_pinned([direct], pip)


def test_freshness_pinned_forever_unpinned_until_the_ttl():
    assert fresh({"pinned": True, "created": 0}, 10, now=1e9)
    assert fresh({"pinned": False, "created": 100.0}, 10, now=105.0)
    assert not fresh({"pinned": False, "created": 100.0}, 10, now=111.0)
    assert not fresh({"pinned": False, "created": 100.0}, 0, now=100.0)
    assert not fresh({"pinned": False, "created": "yesterday"}, 10, now=100.0)
    assert not fresh({"pinned": False, "created": 1e12}, 10, now=100.0)  # from the future: not trusted


def test_plan_ttl_flag_beats_variable_beats_ini(tmp_path):
    ini = tmp_path / "virtualenv.ini"
    env = {"VIRTUALENV_CONFIG_FILE": str(ini)}
    assert plan_ttl(None, env) == DEFAULT_PLAN_TTL
    ini.write_text("[virtualenv]\nholoclone_plan_ttl = 30\n")
    assert plan_ttl(None, env) == 30
    assert plan_ttl(None, {**env, "VIRTUALENV_HOLOCLONE_PLAN_TTL": "7"}) == 7
    assert plan_ttl(2, {**env, "VIRTUALENV_HOLOCLONE_PLAN_TTL": "7"}) == 2
    with pytest.raises(ConfigError, match="VIRTUALENV_HOLOCLONE_PLAN_TTL"):
        plan_ttl(None, {**env, "VIRTUALENV_HOLOCLONE_PLAN_TTL": "soon"})


def test_stored_plans_are_read_only_as_the_owners_regular_files(store, tmp_path):
    store.write_install_plan(KEY, {"created": 1.0, "pinned": True, "items": [_item("alpha", "1.0")]})
    assert store.load_install_plan(KEY)["items"][0]["name"] == "alpha"
    path = store.install_plans / f"{KEY}.json"
    planted = tmp_path / "planted.json"
    planted.write_text(path.read_text())
    path.unlink()
    path.symlink_to(planted)
    assert store.load_install_plan(KEY) is None  # never through a symlink
    path.unlink()
    path.write_text("{not json")
    assert store.load_install_plan(KEY) is None
    path.write_text(json.dumps({"format": 99, "items": []}))
    assert store.load_install_plan(KEY) is None
    assert store.load_install_plan("../etc/passwd") is None


def test_a_stored_plan_with_a_bad_item_is_no_plan():
    assert valid_items({"items": [_item("alpha", "1.0")]}) is not None
    assert valid_items({"items": [_item("alpha", "1.0", filename="../../x.whl")]}) is None
    assert valid_items({"items": [_item("alpha", "1.0", kind="shell")]}) is None
    assert valid_items({"items": [_item("alpha", 1.0)]}) is None
    assert valid_items({"items": "alpha"}) is None


def test_only_connection_options_reach_pip_download():
    forwarded = ["-i", "https://i/simple", "--no-binary", ":all:", "--no-index", "-f", "/w", "-C", "k=v",
                 "--trusted-host=i", "--pre"]
    assert network_options(forwarded) == ["-i", "https://i/simple", "--no-index", "-f", "/w", "--trusted-host=i"]


def _target(implementation: str = "CPython", version: tuple[int, int] = (3, 11)) -> Target:
    interpreter = Interpreter(executable="python", implementation=implementation, version=version,
                              release=(*version, 0), platform="linux-x86_64", architecture=64, markers=())
    return Target("env", "python", interpreter, None, {})  # type: ignore[arg-type]


TARGET = _target()


def test_tox_s_project_install_is_planned_without_pip(tmp_path):
    wheel = tmp_path / "proj-1.0-py3-none-any.whl"
    wheel.write_bytes(b"not read here")
    _, pip = split(["--force-reinstall", "--no-deps", str(wheel)])
    items = local_items_only(pip, TARGET)
    assert [(i["name"], i["version"], i["kind"], i["requested"]) for i in items] == [("proj", "1.0", "local", True)]
    assert items[0]["direct_url"]["url"] == wheel.as_uri()
    _, pip = split(["--no-deps", str(wheel)])  # pip leaves an installed same version alone: ask pip
    assert local_items_only(pip, TARGET) is None


def test_tox_s_sdist_and_folder_are_planned_without_pip_and_named_when_built(tmp_path):
    sdist = tmp_path / "proj-1.0.tar.gz"
    sdist.write_bytes(b"not read here")
    _, pip = split(["--force-reinstall", "--no-deps", str(sdist), str(tmp_path)])
    items = local_items_only(pip, TARGET)
    assert [(i["name"], i["kind"], i["requested"]) for i in items] == [("", "pip", True), ("", "pip", True)]
    digest = hashlib.sha256(b"not read here").hexdigest()
    assert items[0]["direct_url"] == {"url": sdist.as_uri(), "archive_info": {"hash": f"sha256={digest}",
                                                                                 "hashes": {"sha256": digest}}}
    assert items[1]["direct_url"] == {"url": tmp_path.as_uri(), "dir_info": {}}
    _, pip = split(["--force-reinstall", "--no-deps", str(tmp_path / "missing.tar.gz")])
    assert local_items_only(pip, TARGET) is None  # pip says what is missing, in its words


@pytest.mark.parametrize("filename, target, fits", [
    ("proj-1.0-py3-none-any.whl", TARGET, True),
    ("proj-1.0-py2.py3-none-any.whl", TARGET, True),
    ("proj-1.0-py311-none-any.whl", TARGET, True),
    ("proj-1.0-cp311-none-any.whl", TARGET, True),
    ("proj-1.0-pp310-none-any.whl", _target("PyPy", (3, 10)), True),
    ("proj-1.0-py2-none-any.whl", TARGET, False),
    ("proj-1.0-cp312-none-any.whl", TARGET, False),
    ("proj-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", TARGET, False),  # pip knows the platform's tags
    ("proj-1.0-py3-none-win_amd64.whl", TARGET, False),
])
def test_only_a_pure_wheel_the_target_takes_skips_pip(tmp_path, filename, target, fits):
    wheel = tmp_path / filename
    wheel.write_bytes(b"not read here")
    _, pip = split(["--force-reinstall", "--no-deps", str(wheel)])
    assert (local_items_only(pip, target) is not None) == fits


def test_help_names_holoclones_options_and_leaves_the_rest_to_pip(capsys):
    assert main(["install", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: holoclone install [--python ENV]") and "--plan-ttl SECONDS" in out
    assert main(["--store", "/nonexistent-store", "install", "-h"]) == 0


def test_what_a_killed_install_set_aside_is_reclaimed_only_once_its_process_is_gone(tmp_path):
    from holoclone_venv.command.install.replace import reclaim

    dead, running = tmp_path / ".holoclone-replaced-999999999", tmp_path / f".holoclone-replaced-{os.getpid()}"
    for folder in (dead, running):
        (folder / "lib").mkdir(parents=True)
        (folder / "lib" / "old.py").write_text("")
    reclaim(str(tmp_path))
    assert not dead.exists() and (running / "lib" / "old.py").exists()


@pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="needs to run inside a virtual environment")
def test_an_unknown_strategy_or_an_unusable_store_is_a_usage_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VIRTUALENV_CONFIG_FILE", str(tmp_path / "no.ini"))
    monkeypatch.setenv("VIRTUALENV_HOLOCLONE_STRATEGY", "reflnk")
    assert main(["--store", str(tmp_path / "store"), "install", "--python", sys.prefix, "x"]) == 2
    assert "unknown holoclone strategy 'reflnk'" in capsys.readouterr().err
    monkeypatch.delenv("VIRTUALENV_HOLOCLONE_STRATEGY")
    (tmp_path / "file").write_text("")
    assert main(["--store", str(tmp_path / "file"), "install", "--python", sys.prefix, "x"]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_where_to_look_is_read_from_requirement_files_for_later_pip_runs(tmp_path):
    (tmp_path / "inner.txt").write_text("--extra-index-url https://extra/simple\nbeta\n")
    (tmp_path / "req.txt").write_text("-i https://i/simple  # ours\n--find-links wheels\n--no-index\n-r inner.txt\n"
                                      "--trusted-host=extra\nalpha==1.0 --hash=sha256:" + "ab" * 32 + "\n")
    _, pip = split(["-r", str(tmp_path / "req.txt"), "-f", "/cli"])
    assert pip.forwarded == ["-f", "/cli", "-i", "https://i/simple", "--find-links", str(tmp_path / "wheels"),
                             "--no-index", "--trusted-host", "extra", "--extra-index-url", "https://extra/simple"]


def test_the_summary_stays_one_short_line_for_a_big_set():
    # tox -v shows this line for every install: names and versions, a count past a few, never file names.
    from holoclone_venv.command.install.run import Outcome
    from holoclone_venv.report import Report

    report = Report(store="/store", strategy="smart")
    report.packages = [f"dist{i} 1.{i}" for i in range(16)]
    report.imported = [f"dist{i}-1.{i}-py3-none-any.whl" for i in range(16)]
    line = Outcome(report, "pip", 1.5).summary("/env")
    assert "dist0 1.0, dist1 1.1, dist2 1.2, and 13 more" in line and "(imported 16 wheels)" in line
    assert ".whl" not in line and "dist15" not in line

    report.packages, report.imported = ["demo 2.0"], ["demo-2.0-py3-none-any.whl"]
    assert "installed demo 2.0 into /env" in Outcome(report, "pip").summary("/env")
    assert "(imported demo 2.0)" in Outcome(report, "pip").summary("/env")
    # A project built from source says so: its files are not the store's.
    report.packages, report.imported = ["demo 2.0", "proj 1.0"], []
    line = Outcome(report, "files", 0.5, built=["proj 1.0"]).summary("/env")
    assert ", 1 built from source (proj 1.0) in 500 ms, plan from files" in line, line
