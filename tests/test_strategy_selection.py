"""Which strategy a real ``virtualenv --seeder holoclone`` run uses, and how bad names are refused.

Precedence, highest first: ``--holoclone-strategy`` > ``VIRTUALENV_HOLOCLONE_STRATEGY``
> ``holoclone_strategy`` in the ``[virtualenv]`` section of virtualenv.ini
(``VIRTUALENV_CONFIG_FILE``) > ``RCC_HOLOTREE_STRATEGY`` > ``smart``.

Names are stripped and lower-cased wherever they come from (``" HardLink "``
is ``hardlink``); an unknown or empty name stops the run with exit code 2
before the environment directory is created.  Every run here points
``VIRTUALENV_CONFIG_FILE`` at a file of its own so a user's virtualenv.ini
cannot leak in.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from helpers import method_counts as counts
from helpers import pyvenv_cfg, run_in, virtualenv

FLAG, ENV, INI, RCC = "flag", "VIRTUALENV_HOLOCLONE_STRATEGY", "virtualenv.ini", "RCC_HOLOTREE_STRATEGY"
BUILTIN_LIST = "Valid strategies: smart, reflink, hardlink, copy, snapshot"


pytestmark = pytest.mark.slow  # every test runs the real virtualenv


@pytest.fixture(scope="module")
def store_dir(warm_store) -> Path:
    """A warm store on the temporary directory's filesystem, which cannot reflink (so smart hardlinks)."""
    return warm_store(None)


def seed(tmp_path: Path, store_dir: Path, sources: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess, Path]:
    """Create ``tmp_path/env`` with the strategy given by ``sources`` ({FLAG: .., ENV: .., INI: .., RCC: ..})."""
    ini = tmp_path / "virtualenv.ini"
    ini.write_text(f"[virtualenv]\nholoclone_strategy = {sources[INI]}\n" if INI in sources else "[virtualenv]\n")
    extra_env = {"VIRTUALENV_CONFIG_FILE": str(ini)}
    for name in (ENV, RCC):
        if name in sources:
            extra_env[name] = sources[name]
    flag = ("--holoclone-strategy", sources[FLAG]) if FLAG in sources else ()
    env = tmp_path / "env"
    return virtualenv(env, *flag, *args, store=store_dir, check=False, extra_env=extra_env), env


def chosen(result: subprocess.CompletedProcess) -> str:
    """The strategy in virtualenv's own description of the seeder: ``HoloCloneSeeder(..., strategy=NAME, ...)``."""
    found = re.search(r"seeder HoloCloneSeeder\(.*\bstrategy=([^,)]+)", result.stdout)
    assert found, result.stdout + result.stderr
    return found.group(1)




@pytest.mark.parametrize(
    "sources, expected",
    [
        ({}, "smart"),
        ({RCC: "copy"}, "copy"),
        ({INI: "hardlink", RCC: "copy"}, "hardlink"),
        ({ENV: "reflink", INI: "hardlink", RCC: "copy"}, "reflink"),
        ({FLAG: "copy", ENV: "reflink", INI: "hardlink", RCC: "hardlink"}, "copy"),
        ({FLAG: "hardlink", RCC: "no-such-strategy"}, "hardlink"),  # a lower source is not even read
    ],
    ids=["default", "rcc", "ini-over-rcc", "env-over-ini", "flag-over-all", "flag-over-bad-rcc"],
)
def test_precedence_flag_env_ini_rcc_default(tmp_path, store_dir, sources, expected):
    result, env = seed(tmp_path, store_dir, sources)
    assert result.returncode == 0, result.stdout + result.stderr
    assert chosen(result) == expected
    # The name took effect, not only its echo: the store and env share one filesystem without
    # reflinks here, so exactly the strategies that may hardlink do.
    found = counts(result)
    if expected in ("smart", "hardlink"):
        assert found["hardlinked"] > 500
    else:
        assert found["hardlinked"] == 0 and found["copied"] > 500
    assert "holoclone = " in (env / "pyvenv.cfg").read_text()
    assert str(env) in run_in(env, "pip", "--version").stdout


@pytest.mark.parametrize(
    "sources, expected",
    [({FLAG: " HardLink "}, "hardlink"), ({ENV: "COPY"}, "copy"), ({INI: "  Copy"}, "copy"), ({RCC: "Hardlink\t"}, "hardlink")],
    ids=["flag", "env", "ini", "rcc"],
)
def test_names_are_stripped_and_lower_cased(tmp_path, store_dir, sources, expected):
    result, _ = seed(tmp_path, store_dir, sources)
    assert result.returncode == 0, result.stdout + result.stderr
    assert chosen(result) == expected


@pytest.mark.parametrize(
    "sources, shown, origin",
    [
        ({FLAG: "nope"}, "'nope'", "(from --holoclone-strategy"),
        ({ENV: "nope"}, "'nope'", "(from VIRTUALENV_HOLOCLONE_STRATEGY)"),
        ({INI: "nope"}, "'nope'", "holoclone_strategy in virtualenv.ini"),
        ({RCC: "nope"}, "'nope'", "(from RCC_HOLOTREE_STRATEGY)"),
        ({FLAG: "smart copy"}, "'smart copy'", "(from --holoclone-strategy"),
        ({FLAG: ""}, "", "(from --holoclone-strategy"),
        ({ENV: ""}, "", "(from VIRTUALENV_HOLOCLONE_STRATEGY)"),
        ({RCC: "   "}, "", "(from RCC_HOLOTREE_STRATEGY)"),
    ],
    ids=["flag", "env", "ini", "rcc", "inner-space", "empty-flag", "empty-env", "blank-rcc"],
)
def test_bad_names_exit_2_naming_the_source_and_create_nothing(tmp_path, store_dir, sources, shown, origin):
    result, env = seed(tmp_path, store_dir, sources)
    assert result.returncode == 2, result.stdout + result.stderr
    [message] = [line for line in result.stderr.splitlines() if line.startswith("holoclone: error:")]
    expected = f"unknown holoclone strategy {shown}" if shown else "the holoclone strategy name is empty"
    assert expected in message
    assert origin in message
    assert BUILTIN_LIST in message
    assert "Traceback" not in result.stdout + result.stderr
    assert not env.exists()


def test_strict_smart_on_ext4_fails_naming_the_fallback_and_leaves_no_complete_env(ext4, unique):
    store_dir, env = ext4 / f"store-{unique}", ext4 / f"env-{unique}"
    result = virtualenv(env, "--holoclone-strict", store=store_dir, check=False,
                        extra_env={"VIRTUALENV_CONFIG_FILE": str(ext4 / f"none-{unique}.ini")})
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "reflink failed" in output and "Operation not supported" in output
    assert "--holoclone-strict forbids falling back to hardlink" in output
    assert "Traceback" not in output
    # virtualenv leaves the directory it created; what it holds must not pass for a seeded env.
    if env.exists():
        assert "holoclone" not in pyvenv_cfg(env)  # the key, not a path that happens to hold the word
        assert list(env.glob("lib/python*/site-packages/*.dist-info")) == []


def test_strict_smart_on_xfs_succeeds_because_nothing_falls_back(xfs, unique):
    store_dir, env = xfs / f"store-{unique}", xfs / f"env-{unique}"
    result = virtualenv(env, "--holoclone-strict", store=store_dir,
                        extra_env={"VIRTUALENV_CONFIG_FILE": str(xfs / f"none-{unique}.ini")})
    found = counts(result)
    assert found["reflinked"] > 500 and found["hardlinked"] == found["copied"] == 0
    assert str(env) in run_in(env, "pip", "--version").stdout
