"""The public API for holoclone plugins: a plugin imports from this module only.

What is here keeps its name and meaning across releases; everything else in the package may move.
Plugins are found through the entry-point group ``holoclone`` and implement the hooks of
:mod:`holoclone_venv.hookspecs` with :data:`hookimpl`:

- ``holoclone_clone_backend()`` returns a :class:`CloneBackend`;
- ``holoclone_filesystem_name(path)`` names a filesystem for messages;
- ``holoclone_exclusion_rules(excludes)`` returns :class:`Rule`\\ s;
- ``holoclone_strategies(methods)`` returns :class:`Strategy`\\ s built from :class:`LinkMethod`\\ s;
- ``holoclone_report(report)`` observes a finished run.

A link function (:data:`LinkFunction`) raises :class:`Unsupported` when it cannot work here, so
the next method of the strategy is tried.
"""

from __future__ import annotations

from .errors import Unsupported
from .hookspecs import CloneBackend, LinkFunction, LinkMethod, OpenLinkFunction, RuleSettings, Strategy, hookimpl
from .report import Report
from .rules import ALWAYS_COPY, KINDS, NEVER_HARDLINK, Rule

__all__ = [
    "ALWAYS_COPY",
    "KINDS",
    "NEVER_HARDLINK",
    "CloneBackend",
    "LinkFunction",
    "LinkMethod",
    "OpenLinkFunction",
    "Report",
    "Rule",
    "RuleSettings",
    "Strategy",
    "Unsupported",
    "hookimpl",
]
