"""Settings precedence and validation, as virtualenv hands its parsed options to the seeder."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from holoclone_venv.errors import ConfigError
from holoclone_venv.settings import (BUILTIN_STRATEGIES, check_strategy, settings_for_command,
                                     settings_from_options)


@pytest.fixture
def env(tmp_path):
    """An environment mapping whose virtualenv.ini is a file in tmp_path (absent until written)."""
    return {"VIRTUALENV_CONFIG_FILE": str(tmp_path / "virtualenv.ini")}


def _ini(env, **values):
    lines = ["[virtualenv]"] + [f"{key} = {value}" for key, value in values.items()]
    with open(env["VIRTUALENV_CONFIG_FILE"], "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def _options(env, tmp_path, **values):
    values.setdefault("holoclone_store", str(tmp_path / "store"))
    values.setdefault("holoclone_lock_timeout", 300.0)
    return SimpleNamespace(env=env, **values)


def test_flag_beats_env_ini_and_rcc(env, tmp_path):
    env.update(VIRTUALENV_HOLOCLONE_STRATEGY="hardlink", RCC_HOLOTREE_STRATEGY="reflink")
    _ini(env, holoclone_strategy="reflink")
    settings = settings_from_options(_options(env, tmp_path, holoclone_strategy="copy"))
    assert (settings.strategy, settings.strategy_source) == ("copy", "--holoclone-strategy")


def test_env_variable_beats_ini_and_rcc(env, tmp_path):
    env.update(VIRTUALENV_HOLOCLONE_STRATEGY="hardlink", RCC_HOLOTREE_STRATEGY="reflink")
    _ini(env, holoclone_strategy="copy")
    # virtualenv folds the env variable into the option value
    settings = settings_from_options(_options(env, tmp_path, holoclone_strategy="hardlink"))
    assert (settings.strategy, settings.strategy_source) == ("hardlink", "VIRTUALENV_HOLOCLONE_STRATEGY")


def test_env_variable_virtualenv_dropped_is_still_used(env, tmp_path):
    env.update(VIRTUALENV_HOLOCLONE_STRATEGY="Copy", RCC_HOLOTREE_STRATEGY="reflink")
    settings = settings_from_options(_options(env, tmp_path, holoclone_strategy=None))
    assert (settings.strategy, settings.strategy_source) == ("copy", "VIRTUALENV_HOLOCLONE_STRATEGY")


def test_ini_beats_rcc_and_is_named_as_the_source(env, tmp_path):
    env.update(RCC_HOLOTREE_STRATEGY="reflink")
    _ini(env, holoclone_strategy="hardlink")
    settings = settings_from_options(_options(env, tmp_path, holoclone_strategy="hardlink"))
    assert settings.strategy == "hardlink"
    assert "virtualenv.ini" in settings.strategy_source


def test_rcc_variable_beats_the_default(env, tmp_path):
    env.update(RCC_HOLOTREE_STRATEGY=" HardLink ")
    settings = settings_from_options(_options(env, tmp_path, holoclone_strategy=None))
    assert (settings.strategy, settings.strategy_source) == ("hardlink", "RCC_HOLOTREE_STRATEGY")
    assert settings.strategy_typed == " HardLink "


def test_default_is_smart(env, tmp_path):
    settings = settings_from_options(_options(env, tmp_path, holoclone_strategy=None))
    assert (settings.strategy, settings.strategy_source) == ("smart", "default")


def test_command_settings_fold_env_over_ini_over_rcc(env, tmp_path):
    """settings_for_command reads env and ini itself, with virtualenv's readers."""
    _ini(env, holoclone_strategy="hardlink", holoclone_store=str(tmp_path / "ini-store"))
    env.update(RCC_HOLOTREE_STRATEGY="reflink")
    from_ini = settings_for_command(env)
    assert (from_ini.strategy, from_ini.store) == ("hardlink", str(tmp_path / "ini-store"))
    env.update(VIRTUALENV_HOLOCLONE_STRATEGY="copy")
    assert settings_for_command(env).strategy_source == "VIRTUALENV_HOLOCLONE_STRATEGY"
    assert settings_for_command(env, strategy="reflink").strategy == "reflink"


@pytest.mark.parametrize("where", ["flag", "env", "rcc"])
def test_empty_strategy_name_is_refused_naming_its_source(env, tmp_path, where):
    if where == "flag":
        options, source = _options(env, tmp_path, holoclone_strategy="  "), "--holoclone-strategy"
    elif where == "env":
        env["VIRTUALENV_HOLOCLONE_STRATEGY"] = ""
        options, source = _options(env, tmp_path, holoclone_strategy=None), "VIRTUALENV_HOLOCLONE_STRATEGY"
    else:
        env["RCC_HOLOTREE_STRATEGY"] = ""
        options, source = _options(env, tmp_path, holoclone_strategy=None), "RCC_HOLOTREE_STRATEGY"
    with pytest.raises(ConfigError) as caught:
        settings_from_options(options)
    assert "empty" in caught.value.message and source in caught.value.message
    assert "smart" in caught.value.hint


def test_check_strategy_suggests_the_near_miss_and_keeps_the_typed_name():
    with pytest.raises(ConfigError) as caught:
        check_strategy("RefLnk", "--holoclone-strategy", list(BUILTIN_STRATEGIES))
    text = str(caught.value)
    assert "'RefLnk'" in text and "--holoclone-strategy" in text
    assert "Did you mean 'reflink'?" in text
    for name in BUILTIN_STRATEGIES:
        assert name in caught.value.hint


def test_check_strategy_accepts_case_and_spaces_and_makes_no_guess_for_nonsense():
    check_strategy("  SMART ", "x", list(BUILTIN_STRATEGIES))
    with pytest.raises(ConfigError) as caught:
        check_strategy("zzzzzz", "RCC_HOLOTREE_STRATEGY", list(BUILTIN_STRATEGIES))
    assert "Did you mean" not in str(caught.value)
    assert "RCC_HOLOTREE_STRATEGY" in caught.value.message


@pytest.mark.parametrize("pattern", ["", "   "])
def test_empty_exclude_pattern_is_refused(env, tmp_path, pattern):
    with pytest.raises(ConfigError, match="empty --holoclone-exclude"):
        settings_from_options(_options(env, tmp_path, holoclone_exclude=["*.so", pattern]))


def test_exclude_patterns_are_flattened_and_trimmed(env, tmp_path):
    settings = settings_from_options(_options(env, tmp_path, holoclone_exclude=[" *.so ", "a.txt\nb/*.dat"]))
    assert settings.excludes == ("*.so", "a.txt", "b/*.dat")


@pytest.mark.parametrize("timeout", [0, -1.5, float("nan")])
def test_non_positive_lock_timeout_is_refused(env, tmp_path, timeout):
    with pytest.raises(ConfigError, match="lock-timeout"):
        settings_from_options(_options(env, tmp_path, holoclone_lock_timeout=timeout))


def test_store_defaults_to_the_user_cache_dir(env, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    settings = settings_from_options(_options(env, tmp_path, holoclone_store=None))
    assert settings.store == str(tmp_path / "cache" / "holoclone" / "store")


def test_store_from_env_variable_and_flag_beats_it(env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env["VIRTUALENV_HOLOCLONE_STORE"] = "relative/store"
    settings = settings_from_options(_options(env, tmp_path, holoclone_store=None))
    assert settings.store == str(tmp_path / "relative" / "store")
    flagged = settings_from_options(_options(env, tmp_path, holoclone_store=str(tmp_path / "flag")))
    assert flagged.store == str(tmp_path / "flag")


def test_store_path_expands_the_home_directory(env, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    settings = settings_from_options(_options(env, tmp_path, holoclone_store="~/my-store"))
    assert settings.store == os.path.join(str(tmp_path / "home"), "my-store")


@pytest.mark.parametrize("where", ["env", "ini"])
def test_a_lock_timeout_that_is_no_number_is_refused_not_dropped(env, tmp_path, where):
    # virtualenv drops a value it cannot convert and keeps the default: the user would never know.
    if where == "env":
        env["VIRTUALENV_HOLOCLONE_LOCK_TIMEOUT"] = "abc"
    else:
        _ini(env, holoclone_lock_timeout="abc")
    named = "VIRTUALENV_HOLOCLONE_LOCK_TIMEOUT='abc'" if where == "env" else "holoclone_lock_timeout in virtualenv.ini='abc'"
    with pytest.raises(ConfigError, match="is not a number of seconds") as seeding:
        settings_from_options(_options(env, tmp_path))
    with pytest.raises(ConfigError) as command:
        settings_for_command(env, store=str(tmp_path / "store"))
    assert named in str(seeding.value) and named in str(command.value)
    assert settings_for_command(env, store=str(tmp_path / "store"), lock_timeout=5.0).lock_timeout == 5.0


def test_an_empty_store_path_is_refused_not_replaced_by_the_default(env, tmp_path):
    for value in ("", "  "):
        with pytest.raises(ConfigError, match="store path given is empty"):
            settings_from_options(_options(env, tmp_path, holoclone_store=value))
        with pytest.raises(ConfigError, match="store path given is empty"):
            settings_for_command(env, store=value)


def test_defaults_shown_in_the_help_are_not_taken_for_choices(env, tmp_path):
    from holoclone_venv.settings import Default

    env["RCC_HOLOTREE_STRATEGY"] = "copy"
    settings = settings_from_options(_options(env, tmp_path, holoclone_strategy=Default.shown("smart"),
                                              holoclone_store=Default.shown("/shown/in/help")))
    assert (settings.strategy, settings.strategy_source) == ("copy", "RCC_HOLOTREE_STRATEGY")
    assert settings.store != "/shown/in/help"
    # virtualenv converts a VIRTUALENV_* or virtualenv.ini value with the default's type: that is a choice.
    converted = settings_from_options(_options(env, tmp_path, holoclone_strategy=type(Default.shown("smart"))("hardlink")))
    assert (converted.strategy, converted.strategy_source) == ("hardlink", "--holoclone-strategy")
