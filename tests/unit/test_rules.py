"""Exclusion rule semantics users write patterns against (``--holoclone-exclude``, rules plugins).

Paths are a file's path inside its install directory (``pip/__init__.py``,
``numpy/core/_umath.cpython-311-x86_64-linux-gnu.so``), never the env path.
"""

from __future__ import annotations

import pytest

from holoclone_venv.settings import Settings
from holoclone_venv.rules import (
    ALWAYS_COPY, NEVER_HARDLINK, Matcher, Rule, compile_rules, builtin_rules,
)

EXT = "numpy/core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so"


def builtin_never_hardlink(excludes=()) -> Matcher:
    settings = Settings(store="/s", strategy="smart", strategy_source="default", excludes=tuple(excludes))
    never, _ = compile_rules(builtin_rules(settings.excludes))
    return never


@pytest.mark.parametrize("path", [EXT, "top.so", "a/b/c/d.so"])
def test_a_pattern_without_slash_matches_the_base_name_at_any_depth(path):
    assert Matcher(["*.so"])(path)


@pytest.mark.parametrize("path", ["libfoo.so.1", "pkg/x.sox", "pkg/so", "pkg/x.so/child.py"])
def test_a_base_name_pattern_matches_the_whole_name_only(path):
    assert not Matcher(["*.so"])(path)


def test_an_exact_base_name_matches_in_every_directory():
    match = Matcher(["py.typed"])
    assert match("py.typed") and match("pip/py.typed") and match("a/b/py.typed")
    assert not match("pip/py.typed.bak")


def test_a_pattern_with_slash_is_anchored_at_the_install_directory():
    match = Matcher(["pip/_vendor/*"])
    assert match("pip/_vendor/six.py")
    assert not match("vendored/pip/_vendor/six.py")
    assert not match("pip/_internal/main.py")


def test_star_also_crosses_directories():
    # fnmatch semantics: '*' matches '/', so a directory prefix covers the whole subtree.
    match = Matcher(["pip/*.py"])
    assert match("pip/__init__.py") and match("pip/_internal/cli/main.py")
    assert not match("pip/_vendor/cacert.pem")


def test_a_bare_directory_name_does_not_match_the_files_inside():
    # Users must write 'pkg/*' (or '*/pkg/*') to cover a directory's files.
    assert not Matcher(["__pycache__"])("pip/__pycache__/x.cpython-311.pyc")
    assert Matcher(["*/__pycache__/*"])("pip/__pycache__/x.cpython-311.pyc")


def test_character_classes_and_question_marks_work():
    match = Matcher(["lib?.so", "*.[ch]"])
    assert match("pkg/libz.so") and match("include/x.h") and match("src/x.c")
    assert not match("pkg/libzz.so") and not match("src/x.cc")


def test_matching_is_case_sensitive():
    assert not Matcher(["*.SO"])("pkg/x.so")


def test_an_empty_matcher_matches_nothing():
    assert not Matcher([])("anything.py")
    assert not Matcher([])("")


@pytest.mark.parametrize(
    "path",
    [
        "pip/__pycache__/__init__.cpython-311.pyc",
        "__pycache__/six.cpython-311.pyc",
        "pip/_vendor/__pycache__/six.cpython-311.opt-1.pyc",
        "legacy/module.pyo",
        "pip/__pycache__/stray.txt",
    ],
)
def test_bytecode_and_pycache_are_never_hardlinked_by_default(path):
    assert builtin_never_hardlink()(path)


def test_sources_are_hardlinkable_by_default():
    never = builtin_never_hardlink()
    assert not never("pip/__init__.py")
    assert not never(EXT)


def test_user_excludes_add_to_the_builtin_rules():
    never = builtin_never_hardlink(["*.so", "pip/_vendor/*"])
    assert never(EXT) and never("pip/_vendor/six.py") and never("pip/__pycache__/x.pyc")
    assert not never("pip/__init__.py")


def test_always_copy_implies_never_hardlink_but_not_the_reverse():
    never, always = compile_rules([Rule("*.dat", ALWAYS_COPY), Rule("*.so", NEVER_HARDLINK)])
    assert always("pkg/t.dat") and never("pkg/t.dat")
    assert never(EXT) and not always(EXT)


@pytest.mark.parametrize("kind", ["never_hardlink", "copy", "", "Never-Hardlink"])
def test_a_rule_with_an_unknown_kind_is_refused_where_it_is_made(kind):
    with pytest.raises(ValueError, match="not one of never-hardlink, always-copy"):
        Rule("*.so", kind)


def test_a_rule_with_an_empty_pattern_is_refused():
    with pytest.raises(ValueError, match="empty"):
        Rule("  ", ALWAYS_COPY)
