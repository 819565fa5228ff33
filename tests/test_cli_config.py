"""``holoclone enable`` / ``disable``: the default seeder through virtualenv.ini, and nothing else touched."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from helpers import REPO, holoclone, summary_line, virtualenv

ORIGINAL = """\
# my settings; keep this comment
[other-tool]
seeder = something-else

[virtualenv]
; chosen long ago
prompt = (venv)
seeder = app-data
no_periodic_update = true

[last]
key = value
"""


def run(*cmd: str, config: Path, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    """``holoclone_venv ARGS`` (the holoclone command) or ``virtualenv ENV`` (its default seeder) with ``config``."""
    environ = {"PYTHONPATH": str(REPO), "VIRTUALENV_CONFIG_FILE": str(config), **(extra_env or {})}
    if cmd[0] == "holoclone_venv":
        return holoclone(*cmd[1:], extra_env=environ)
    assert cmd[0] == "virtualenv", cmd
    return virtualenv(Path(cmd[-1]), *cmd[1:-1], seeder=None, check=False, extra_env=environ)


@pytest.mark.slow
def test_enable_makes_plain_virtualenv_use_holoclone_and_disable_restores_the_file(tmp_path):
    config = tmp_path / "virtualenv.ini"
    config.write_text(ORIGINAL)
    store = tmp_path / "store"

    enabled = run("holoclone_venv", "enable", "--json", config=config)
    assert enabled.returncode == 0, enabled.stderr
    assert json.loads(enabled.stdout)["previous"] == "app-data"
    text = config.read_text()
    assert "seeder = holoclone" in text and "[last]\nkey = value\n" in text and "; chosen long ago" in text
    assert text.count("seeder = something-else") == 1

    env = tmp_path / "env"
    made = run("virtualenv", str(env), config=config, extra_env={"VIRTUALENV_HOLOCLONE_STORE": str(store)})
    assert made.returncode == 0, made.stderr
    assert "seeded pip" in summary_line(made)
    cfg = (env / "pyvenv.cfg").read_text()
    assert "holoclone = " in cfg and f"holoclone_store = {store}" in cfg

    again = run("holoclone_venv", "enable", config=config)
    assert again.returncode == 0 and "already" in again.stdout

    disabled = run("holoclone_venv", "disable", config=config)
    assert disabled.returncode == 0, disabled.stderr
    assert config.read_text() == ORIGINAL
    nothing = run("holoclone_venv", "disable", config=config)
    assert nothing.returncode == 0 and config.read_text() == ORIGINAL


def test_enable_on_a_missing_file_and_disable_leaves_no_trace(tmp_path):
    config = tmp_path / "sub" / "virtualenv.ini"
    assert run("holoclone_venv", "enable", config=config).returncode == 0
    assert "[virtualenv]" in config.read_text() and "seeder = holoclone" in config.read_text()
    assert run("holoclone_venv", "disable", config=config).returncode == 0
    assert not config.exists()
    assert [p.name for p in config.parent.iterdir()] == []  # no temporary files left behind


def test_disable_leaves_a_line_it_did_not_write(tmp_path):
    config = tmp_path / "virtualenv.ini"
    config.write_text("[virtualenv]\nseeder = holoclone\n")
    result = run("holoclone_venv", "disable", config=config)
    assert result.returncode == 1 and "not added by 'holoclone enable'" in result.stdout
    assert config.read_text() == "[virtualenv]\nseeder = holoclone\n"


def test_enable_warns_when_the_environment_overrides_the_file(tmp_path):
    config = tmp_path / "virtualenv.ini"
    result = run("holoclone_venv", "enable", config=config, extra_env={"VIRTUALENV_SEEDER": "app-data"})
    assert result.returncode == 0 and "VIRTUALENV_SEEDER=app-data" in result.stdout
