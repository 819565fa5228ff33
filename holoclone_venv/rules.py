"""Exclusion rules: which files are never hardlinked, which are always copied.

Hardlinks make an environment's file *be* the store object, so anything a
program may rewrite in place must not be hardlinked.  Bytecode is the classic
case: an interpreter of another build may rewrite a ``.pyc``.  Per-environment
files (RECORD, INSTALLER, console scripts, scripts with a ``#!python``
shebang) are never linked at all: the materializer writes them per
environment, so they need no rule here.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Iterable, NamedTuple

NEVER_HARDLINK = "never-hardlink"
ALWAYS_COPY = "always-copy"
KINDS = (NEVER_HARDLINK, ALWAYS_COPY)

#: Built-in never-hardlink patterns.
BUILTIN_PATTERNS = ("*.pyc", "*.pyo", "__pycache__/*", "*/__pycache__/*")


class _RuleFields(NamedTuple):
    pattern: str
    kind: str
    origin: str


class Rule(_RuleFields):
    """A glob and what it means: ``never-hardlink`` or ``always-copy``; immutable, compared by value.

    A tuple, not a frozen dataclass: generating one costs every seeding import time (docs/benchmarks.md).
    """

    __slots__ = ()

    def __new__(cls, pattern: str, kind: str = NEVER_HARDLINK, origin: str = "builtin") -> Rule:
        # compile_rules keeps only known kinds: a misspelt kind must fail where
        # the rule is made (a plugin's hook, reported as a broken plugin), not
        # vanish and leave the files it meant to protect hardlinked.
        if kind not in KINDS:
            raise ValueError(f"rule kind {kind!r} for {pattern!r} is not one of {', '.join(KINDS)}")
        if not pattern.strip():
            raise ValueError(f"rule pattern of kind {kind!r} is empty")
        return super().__new__(cls, pattern, kind, origin)

    def __repr__(self) -> str:
        return f"Rule(pattern={self.pattern!r}, kind={self.kind!r}, origin={self.origin!r})"


def builtin_rules(excludes: Iterable[str] = ()) -> list[Rule]:
    """Bytecode is never hardlinked, nor is anything the user excluded with --holoclone-exclude."""
    rules = [Rule(p) for p in BUILTIN_PATTERNS]
    rules.extend(Rule(p, NEVER_HARDLINK, "--holoclone-exclude") for p in excludes)
    return rules


class Matcher:
    """All rules of one kind compiled into one regular expression (one match per file)."""

    def __init__(self, patterns: Iterable[str]) -> None:
        parts = []
        for pattern in patterns:
            parts.append(fnmatch.translate(pattern))
            if "/" not in pattern:
                parts.append(fnmatch.translate(f"*/{pattern}"))
        self._regex = re.compile("|".join(parts)) if parts else None

    def __call__(self, path: str) -> bool:
        return self._regex is not None and self._regex.match(path) is not None

    def __bool__(self) -> bool:
        """False when there are no rules of this kind: nothing can match."""
        return self._regex is not None


def compile_rules(rules: Iterable[Rule]) -> tuple[Matcher, Matcher]:
    """``(never_hardlink, always_copy)`` matchers; always-copy implies never-hardlink."""
    rules = list(rules)
    copy_only = [r.pattern for r in rules if r.kind == ALWAYS_COPY]
    no_link = [r.pattern for r in rules if r.kind in KINDS]
    return Matcher(no_link), Matcher(copy_only)
