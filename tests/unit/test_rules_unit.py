"""Exclusion rules: what is never hardlinked, what is always copied."""

from __future__ import annotations

import pytest

from holoclone_venv.rules import ALWAYS_COPY, NEVER_HARDLINK, Matcher, Rule, builtin_rules, compile_rules


@pytest.mark.parametrize("path", [
    "mod.pyc", "pkg/mod.pyo", "pkg/sub/mod.cpython-311.pyc", "__pycache__/mod.cpython-311.pyc",
    "pkg/__pycache__/mod.cpython-311.pyc", "pkg/a/b/__pycache__/x.cpython-311.opt-1.pyc",
])
def test_bytecode_is_never_hardlinked(path):
    never, always = compile_rules(builtin_rules())
    assert never(path)
    assert not always(path)


@pytest.mark.parametrize("path", ["pkg/__init__.py", "pkg/data.json", "pycache.py", "pkg/pyc", "pkg/x.pyc.txt"])
def test_ordinary_files_may_be_hardlinked(path):
    never, _ = compile_rules(builtin_rules())
    assert not never(path)


def test_an_exclude_without_a_slash_matches_the_base_name_anywhere():
    never, _ = compile_rules(builtin_rules(["*.so", "config.ini"]))
    assert never("lib.so") and never("pkg/sub/_speedups.cpython-311-x86_64-linux-gnu.so")
    assert never("config.ini") and never("pkg/deep/config.ini")
    assert not never("pkg/myconfig.ini")
    assert not never("pkg/lib.so.txt")


def test_an_exclude_with_a_slash_is_anchored_at_the_install_directory():
    never, _ = compile_rules(builtin_rules(["pkg/*.txt"]))
    assert never("pkg/readme.txt")
    assert not never("other/pkg/readme.txt")


def test_always_copy_implies_never_hardlink():
    never, always = compile_rules([Rule("*.dat", ALWAYS_COPY, "plugin"), Rule("*.cfg", NEVER_HARDLINK)])
    assert always("pkg/table.dat") and never("pkg/table.dat")
    assert never("pkg/site.cfg") and not always("pkg/site.cfg")


@pytest.mark.parametrize("kind", ["never_hardlink", "always-copies", "NEVER-HARDLINK", ""])
def test_a_misspelt_rule_kind_is_a_value_error(kind):
    with pytest.raises(ValueError, match="rule kind"):
        Rule("*.x", kind)


def test_an_empty_rule_pattern_is_a_value_error():
    with pytest.raises(ValueError, match="empty"):
        Rule("  ", NEVER_HARDLINK)


def test_excludes_are_tagged_with_their_origin():
    rules = builtin_rules(["*.so"])
    assert Rule("*.so", NEVER_HARDLINK, "--holoclone-exclude") in rules
    assert all(rule.kind == NEVER_HARDLINK for rule in rules)


def test_an_empty_matcher_matches_nothing():
    assert not Matcher([])("anything.pyc")
