"""The rules file plugin: which file it reads, what each line means, and how it fails safe.

Run with ``python -m pytest plugins/holoclone-rules-file``; the package is
importable from the source tree, the entry-point test needs it installed.
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, distribution

import pytest

import holoclone_rules_file as plugin
from holoclone_venv.settings import Settings
from holoclone_venv.plugins import Plugins
from holoclone_venv.policy import resolve_policy
from holoclone_venv.rules import ALWAYS_COPY, NEVER_HARDLINK, Rule

EXTENSION = "numpy/core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A clean project directory as the current directory, with none of the plugin's variables set."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(plugin.RULES_FILE_ENV, raising=False)
    monkeypatch.delenv(plugin.SHARED_LIBRARIES_ENV, raising=False)
    return tmp_path


def resolved(tmp_path):
    """The policy holoclone resolves with only this plugin added to the built-ins."""
    plugins = Plugins(load_external=False)
    assert plugins.register(plugin, "rules-file", "holoclone-rules-file")
    return resolve_policy(Settings(store=str(tmp_path / "store"), strategy="smart", strategy_source="default"), plugins)


def test_parses_kinds_comments_and_presets():
    text = """
        # a comment
        never-hardlink: *.so
        always-copy: data/*.dat   # trailing comment
        always-copy: @shared-libraries
    """
    rules = plugin.parse_rules(text, "rules")
    assert rules[:2] == [Rule("*.so", NEVER_HARDLINK, "rules:3"), Rule("data/*.dat", ALWAYS_COPY, "rules:4")]
    assert [r.pattern for r in rules[2:]] == list(plugin.SHARED_LIBRARIES)
    assert {r.kind for r in rules[2:]} == {ALWAYS_COPY}


@pytest.mark.parametrize(
    "line, message",
    [
        ("never-hardlnk: *.so", "unknown rule kind 'never-hardlnk'"),
        ("*.so", "is not 'KIND: PATTERN'"),
        ("always-copy:", "pattern after 'always-copy' is empty"),
        ("always-copy: @everything", "unknown preset '@everything'"),
    ],
)
def test_a_bad_line_is_named_with_its_number(line, message):
    with pytest.raises(plugin.RulesFileError) as caught:
        plugin.parse_rules(f"# header\n{line}\n", ".holoclone-rules")
    assert ".holoclone-rules line 2" in str(caught.value)
    assert message in str(caught.value)


def test_no_file_and_no_switch_means_no_rules(project):
    assert plugin.holoclone_exclusion_rules() == []


def test_reads_holoclone_rules_in_the_current_directory(project, tmp_path):
    (project / ".holoclone-rules").write_text("always-copy: *.dat\n")
    policy_ = resolved(tmp_path)
    assert policy_.always_copy("pkg/table.dat")
    assert policy_.never_hardlink("pkg/table.dat")  # always-copy implies never-hardlink
    assert not policy_.never_hardlink("pkg/__init__.py")


def test_the_environment_variable_names_another_file_and_wins(project, tmp_path, monkeypatch):
    (project / ".holoclone-rules").write_text("always-copy: *.dat\n")
    other = tmp_path / "elsewhere.rules"
    other.write_text("never-hardlink: *.so\n")
    monkeypatch.setenv(plugin.RULES_FILE_ENV, str(other))
    policy_ = resolved(tmp_path)
    assert policy_.never_hardlink(EXTENSION)
    assert not policy_.always_copy(EXTENSION)
    assert not policy_.never_hardlink("pkg/table.dat")


def test_shared_library_switch_always_copies_libraries_of_every_platform(project, tmp_path, monkeypatch):
    monkeypatch.setenv(plugin.SHARED_LIBRARIES_ENV, "1")
    policy_ = resolved(tmp_path)
    for path in (EXTENSION, "pkg.libs/libgfortran.so.5", "pkg/.dylibs/libomp.dylib", "pkg/_speedups.pyd"):
        assert policy_.always_copy(path), path
    assert not policy_.always_copy("pkg/__init__.py")


@pytest.mark.parametrize("value", ["0", "false", "no", "off", ""])
def test_shared_library_switch_off_values(project, monkeypatch, value):
    monkeypatch.setenv(plugin.SHARED_LIBRARIES_ENV, value)
    assert plugin.holoclone_exclusion_rules() == []


def test_a_bad_rules_file_warns_once_and_copies_everything(project, tmp_path, caplog):
    (project / ".holoclone-rules").write_text("never-hardlink: *.so\nalways-copy *.dat\n")
    with caplog.at_level(logging.WARNING, logger="holoclone"):
        policy_ = resolved(tmp_path)
    [record] = [r for r in caplog.records if "holoclone-rules-file" in r.getMessage()]
    assert "line 2" in record.getMessage() and "every file is copied" in record.getMessage()
    assert policy_.always_copy("pip/__init__.py")


def test_a_named_file_that_is_missing_fails_safe(project, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(plugin.RULES_FILE_ENV, str(tmp_path / "missing.rules"))
    with caplog.at_level(logging.WARNING, logger="holoclone"):
        rules = plugin.holoclone_exclusion_rules()
    assert rules == [Rule("*", ALWAYS_COPY, str(tmp_path / "missing.rules"))]
    assert "missing.rules does not exist" in caplog.text


def test_installed_distribution_registers_the_entry_point():
    try:
        dist = distribution("holoclone-rules-file")
    except PackageNotFoundError:
        pytest.skip("holoclone-rules-file is not installed (pip install plugins/holoclone-rules-file)")
    assert [(ep.group, ep.name) for ep in dist.entry_points] == [("holoclone", "rules-file")]
    plugins = Plugins()
    assert plugins.broken == []
    assert any(info.name == "rules-file" and "holoclone_exclusion_rules" in info.hooks for info in plugins.info())
