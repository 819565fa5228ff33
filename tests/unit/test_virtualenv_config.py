"""virtualenv's settings read without virtualenv give what virtualenv's own readers give, logs included.

Every case puts the same environment variables and virtualenv.ini in front of
``holoclone_venv.virtualenv_config`` and of ``virtualenv.config`` (``get_env_var``,
``IniConfig``, ``TypeData``/``ListType``), and compares the values found, their
sources and the warning or error lines logged, so a change in how virtualenv
reads its settings fails here instead of making the ``holoclone`` command and
the seeder disagree.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from holoclone_venv.errors import ConfigError
from holoclone_venv.settings import settings_for_command, settings_from_options
from holoclone_venv.virtualenv_config import (_REPORTED, FLOAT, LIST, RULES_OF, STR, Kind, VirtualenvConfig,
                                              repeats_installed_virtualenv)

#: The comparisons of corner cases hold for the virtualenv whose rules the reader repeats; with an older one
#: installed (CI's floors job) the reader uses virtualenv's own readers, which some corners make raise.
REPEATED = pytest.mark.skipif(not repeats_installed_virtualenv(),
                              reason=f"the installed virtualenv is older than {'.'.join(map(str, RULES_OF))}, whose "
                                     "rules the reader repeats: its own readers are used instead")

KINDS = {"str": STR, "float": FLOAT, "list": LIST}


def _virtualenvs_type(kind: Kind):
    from virtualenv.config.convert import ListType, TypeData

    return {STR: TypeData(str, str), FLOAT: TypeData(float, float), LIST: ListType(list, str)}[kind]


def _messages(caplog) -> list[str]:
    lines = [(record.levelname, record.getMessage()) for record in caplog.records]
    caplog.clear()
    return lines


def theirs(env: dict, key: str, kind: Kind, caplog) -> tuple[object, list]:
    """What virtualenv's readers find for ``key`` (as it resolves an option's default), and what they log."""
    from virtualenv.config.env_var import get_env_var
    from virtualenv.config.ini import IniConfig

    caplog.clear()
    as_type = _virtualenvs_type(kind)
    ini = IniConfig(env)
    found = get_env_var(key, as_type, env) or (ini.get(key, as_type) if ini else None)
    return found, _messages(caplog)


def ours(env: dict, key: str, kind: Kind, caplog) -> tuple[object, list]:
    """What this module finds and logs, as the first reader of a new process (errors are reported once a process)."""
    _REPORTED.clear()
    caplog.clear()
    found = VirtualenvConfig(env).get(key, kind)
    return found, _messages(caplog)


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog


def _same(env: dict, key: str, kind: Kind, logs) -> object:
    expected = theirs(env, key, kind, logs)
    assert repr(ours(env, key, kind, logs)) == repr(expected)  # repr: nan is not equal to itself
    return expected[0]


INI = "[virtualenv]\nholoclone_store = /from/ini\nholoclone_lock_timeout = 12.5\nholoclone_exclude = a.so, b/*\n"


@pytest.mark.parametrize("env_value, expected", [
    ("/from/env", ("/from/env", "env var VIRTUALENV_HOLOCLONE_STORE")),  # the variable wins over the file
    ("", ("/from/ini", "file")),  # an empty variable counts as unset
    (None, ("/from/ini", "file")),
])
def test_the_variable_wins_over_the_file_unless_empty(tmp_path, logs, env_value, expected):
    ini = tmp_path / "virtualenv.ini"
    ini.write_text(INI)
    env = {"VIRTUALENV_CONFIG_FILE": str(ini)}
    if env_value is not None:
        env["VIRTUALENV_HOLOCLONE_STORE"] = env_value
    assert _same(env, "holoclone_store", STR, logs) == expected


@pytest.mark.parametrize("key, kind", [("holoclone_store", STR), ("holoclone_lock_timeout", FLOAT),
                                       ("holoclone_exclude", LIST), ("holoclone_remote", STR)])
def test_the_file_alone_converts_as_virtualenv_does(tmp_path, logs, key, kind):
    ini = tmp_path / "virtualenv.ini"
    ini.write_text(INI)
    _same({"VIRTUALENV_CONFIG_FILE": str(ini)}, key, kind, logs)


@REPEATED
@pytest.mark.parametrize("text", [
    "[virtualenv]\nHoloclone_Store = /mixed/case\n",  # keys are case-insensitive
    "[DEFAULT]\nholoclone_store = /default/section\n[virtualenv]\n",  # [DEFAULT] reaches every section
    "[DEFAULT]\nholoclone_store = /default/only\n",  # ... but only where [virtualenv] exists
    "[virtualenv]\nholoclone_store = /100%/%(literal)s\n",  # no interpolation
    "\ufeff[virtualenv]\nholoclone_store = /after/a/bom\n",
    "[virtualenv]\nholoclone_store =\n  /continued\n  /lines\n",
    "[other]\nholoclone_store = /elsewhere\n",
    "holoclone_store = /no/section\n",  # a parse error: logged, then read as empty
    "[virtualenv]\nholoclone_store = /one\nholoclone_store = /two\n",  # a duplicate: a parse error too
    "",
])
def test_the_file_is_parsed_as_virtualenv_parses_it(tmp_path, logs, text):
    ini = tmp_path / "virtualenv.ini"
    ini.write_text(text, encoding="utf-8")
    _same({"VIRTUALENV_CONFIG_FILE": str(ini)}, "holoclone_store", STR, logs)


@REPEATED
@pytest.mark.parametrize("how", ["missing", "directory", "not utf-8", "unreadable dir"])
def test_a_missing_or_unreadable_file_reads_as_empty_with_virtualenvs_error(tmp_path, logs, how):
    ini = tmp_path / "conf" / "virtualenv.ini"
    ini.parent.mkdir()
    if how == "directory":
        ini.mkdir()
    elif how == "not utf-8":
        ini.write_bytes(b"[virtualenv]\nholoclone_store = /caf\xe9\n")
    elif how == "unreadable dir":
        ini.write_text(INI)
        ini.parent.chmod(0)
        if os.access(ini, os.R_OK):  # root reads it anyway: the comparison still holds, on a readable file
            ini.parent.chmod(0o755)
    try:
        env = {"VIRTUALENV_CONFIG_FILE": str(ini), "VIRTUALENV_HOLOCLONE_REMOTE": "s3://bucket"}
        _same(env, "holoclone_store", STR, logs)
        _same(env, "holoclone_remote", STR, logs)  # the variables still count
    finally:
        ini.parent.chmod(0o755)


@REPEATED
@pytest.mark.parametrize("named", [None, ""])
def test_the_per_user_file_is_read_when_no_file_is_named(tmp_path, logs, monkeypatch, named):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    ini = tmp_path / "config" / "virtualenv" / "virtualenv.ini"
    ini.parent.mkdir(parents=True)
    ini.write_text("[virtualenv]\nholoclone_store = /per/user\n")
    env = {} if named is None else {"VIRTUALENV_CONFIG_FILE": named}
    assert _same(env, "holoclone_store", STR, logs) == ("/per/user", "file")
    assert VirtualenvConfig(env).path == ini


@REPEATED
@pytest.mark.parametrize("value", [
    "a.so, b/*", "a.so,b/*,", " , ", "one", "a.so\nb/*\n", "\n  a.so\n  b, c\n", "x:y:z", "lib/*.so:bin/*",
    "pkg>=1.0,<2", "cpython>=3.9,<3.10, other", "a\r\nb", "",
])
@pytest.mark.parametrize("where", ["env", "ini"])
def test_lists_split_on_commas_lines_and_path_separators_as_virtualenv_splits_them(tmp_path, logs, value, where):
    ini = tmp_path / "virtualenv.ini"
    env = {"VIRTUALENV_CONFIG_FILE": str(ini)}
    if where == "env":
        env["VIRTUALENV_HOLOCLONE_EXCLUDE"] = value
        ini.write_text("[virtualenv]\nholoclone_exclude = from-ini\n")
    else:
        indented = value.replace("\r\n", "\n").replace("\n", "\n  ")
        ini.write_text(f"[virtualenv]\nholoclone_exclude = {indented}\n")
    _same(env, "holoclone_exclude", LIST, logs)


@pytest.mark.parametrize("env_value", ["soon", "  ", "1_0", "nan", "-3", "inf", None])
@pytest.mark.parametrize("ini_value", ["later", "4", None])
def test_a_bad_number_logs_virtualenvs_warning_and_reads_as_unset(tmp_path, logs, env_value, ini_value):
    ini = tmp_path / "virtualenv.ini"
    ini.write_text("[virtualenv]\n" + (f"holoclone_lock_timeout = {ini_value}\n" if ini_value else ""))
    env = {"VIRTUALENV_CONFIG_FILE": str(ini)}
    if env_value is not None:
        env["VIRTUALENV_HOLOCLONE_LOCK_TIMEOUT"] = env_value
    _same(env, "holoclone_lock_timeout", FLOAT, logs)


def _reference_settings(env: dict, caplog):
    """settings_for_command as it was written with virtualenv's readers."""
    values = {}
    for name, kind in (("store", STR), ("strategy", STR), ("exclude", LIST), ("lock_timeout", FLOAT),
                       ("remote", STR), ("trusted_keys", STR)):
        found, _ = theirs(env, f"holoclone_{name}", kind, caplog)
        values[f"holoclone_{name}"] = found[0] if found else None
    values["holoclone_lock_timeout"] = values["holoclone_lock_timeout"] or 300.0
    return settings_from_options(SimpleNamespace(env=env, **values))


@pytest.mark.parametrize("ini_text, variables", [
    ("[virtualenv]\nholoclone_strategy = HardLink\nholoclone_exclude = *.so\n  bin/*\n", {}),
    ("[virtualenv]\nholoclone_strategy = hardlink\nholoclone_remote = file:///srv/ini\n",
     {"VIRTUALENV_HOLOCLONE_STRATEGY": "copy", "VIRTUALENV_HOLOCLONE_EXCLUDE": "a, b"}),
    ("[virtualenv]\nholoclone_lock_timeout = 9\nholoclone_trusted_keys = k1:AAAA k2:BBBB\n",
     {"VIRTUALENV_HOLOCLONE_STORE": "", "RCC_HOLOTREE_STRATEGY": "reflink"}),
    ("[virtualenv]\n", {"VIRTUALENV_HOLOCLONE_LOCK_TIMEOUT": "2.5", "VIRTUALENV_HOLOCLONE_STORE": "~/s"}),
])
def test_command_settings_are_those_virtualenvs_readers_give(tmp_path, logs, ini_text, variables):
    ini = tmp_path / "virtualenv.ini"
    ini.write_text(ini_text.replace("/srv", str(tmp_path)))
    env = {"VIRTUALENV_CONFIG_FILE": str(ini), "VIRTUALENV_HOLOCLONE_STORE": str(tmp_path / "store"), **variables}
    assert settings_for_command(env) == _reference_settings(env, logs)


def test_a_bad_lock_timeout_in_the_file_is_one_sentence_naming_it(tmp_path):
    ini = tmp_path / "virtualenv.ini"
    ini.write_text("[virtualenv]\nholoclone_lock_timeout = soon\n")
    with pytest.raises(ConfigError, match="holoclone_lock_timeout in virtualenv.ini='soon'"):
        settings_for_command({"VIRTUALENV_CONFIG_FILE": str(ini)}, store=str(tmp_path / "store"))


@REPEATED
def test_an_unreadable_file_is_reported_once_per_command(tmp_path, logs):
    from holoclone_venv.command.install.command import plan_ttl

    ini = tmp_path / "virtualenv.ini"
    ini.mkdir()
    env = {"VIRTUALENV_CONFIG_FILE": str(ini), "VIRTUALENV_HOLOCLONE_STRATEGY": "copy"}
    _REPORTED.clear()
    logs.clear()
    settings_for_command(env, store=str(tmp_path / "store"))
    plan_ttl(None, env)
    errors = [record.getMessage() for record in logs.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith(f"failed to read config file {ini} because IsADirectoryError")


@REPEATED
def test_reading_the_settings_imports_no_virtualenv(tmp_path):
    ini = tmp_path / "virtualenv.ini"
    ini.write_text("[virtualenv]\nholoclone_exclude = a, b\nholoclone_plan_ttl = 5\n")
    code = ("import sys\n"
            "from holoclone_venv.settings import settings_for_command\n"
            "from holoclone_venv.command.install.command import plan_ttl\n"
            f"env = {{'VIRTUALENV_CONFIG_FILE': {str(ini)!r}}}\n"
            f"assert settings_for_command(env, store={str(tmp_path / 's')!r}).excludes == ('a', 'b')\n"
            "assert plan_ttl(None, env) == 5\n"
            "print(sorted(m for m in sys.modules if m.partition('.')[0] == 'virtualenv'))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=str(Path(__file__).resolve().parents[2]))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_kinds_are_named_as_virtualenv_names_its_converters():
    for kind in KINDS.values():
        assert repr(kind) == repr(_virtualenvs_type(kind))


def test_the_installed_virtualenv_is_told_by_its_metadata_and_an_older_one_reads_its_own_way(tmp_path, logs,
                                                                                              monkeypatch):
    from importlib.metadata import version

    installed = tuple(int(p) for p in version("virtualenv").split(".")[:3])
    assert repeats_installed_virtualenv() == (installed >= RULES_OF)
    # Told an older virtualenv is installed, the reader gives what virtualenv's own readers give.
    monkeypatch.setattr("holoclone_venv.virtualenv_config.RULES_OF", (999,))
    ini = tmp_path / "virtualenv.ini"
    ini.write_text(INI)
    env = {"VIRTUALENV_CONFIG_FILE": str(ini), "VIRTUALENV_HOLOCLONE_EXCLUDE": "x, y"}
    for key, kind in (("holoclone_store", STR), ("holoclone_lock_timeout", FLOAT), ("holoclone_exclude", LIST)):
        _same(env, key, kind, logs)
    assert VirtualenvConfig(env).ini_raw("holoclone_lock_timeout") == "12.5"
