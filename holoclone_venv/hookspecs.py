"""The hooks through which holoclone's policy is extended.

Plugins implement these with ``@hookimpl`` (``pluggy.HookimplMarker("holoclone")``)
and are found through the entry-point group ``holoclone``.  Built-in behaviour
(platform clone backends, exclusion rules, the four strategies) is registered
as ordinary plugins, exactly as a third party would register its own.

Every hook is called once per run, never per file: what a hook returns is
compiled into plain functions and patterns before materializing starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Mapping, NamedTuple, Optional

import pluggy

if TYPE_CHECKING:
    from .settings import Settings
    from .report import Report
    from .rules import Rule
    from .materialize.linking import LinkMethod, Strategy

hookspec = pluggy.HookspecMarker("holoclone")
hookimpl = pluggy.HookimplMarker("holoclone")


class CloneBackend(NamedTuple):
    """What :func:`holoclone_clone_backend` returns.

    ``clone(source, target, dir_fd, mode, mtime)`` has the contract of
    :data:`holoclone_venv.materialize.linking.LinkFunction`: it raises
    :class:`holoclone_venv.errors.Unsupported` when the filesystem cannot clone
    (the next method is then tried) and leaves no target behind on any failure.
    """

    name: str
    clone: Callable[[str, str, Optional[int], int, Optional[int]], None]
    #: Optional: ``clone_open(source_fd, size, target, dir_fd, mode, mtime)``, the same from a
    #: source the caller has opened and checked (:data:`holoclone_venv.materialize.linking.OpenLinkFunction`).
    clone_open: Optional[Callable[[int, int, str, Optional[int], int, Optional[int]], None]] = None


@hookspec(firstresult=True)
def holoclone_clone_backend() -> CloneBackend | None:
    """Return the clone backend for this platform (a :class:`CloneBackend`), or None.

    The first non-None result wins; plugins registered later are asked first,
    so a third-party backend overrides the built-in one.
    """


@hookspec(firstresult=True)
def holoclone_filesystem_name(path: str) -> str | None:
    """Name the filesystem holding ``path`` (``xfs``, ``ext4``...) for messages, or None."""


@hookspec
def holoclone_exclusion_rules(settings: Settings) -> list[Rule]:
    """Return rules saying which files must never be hardlinked, or always copied.

    Called once per run; all results are combined.  Patterns are globs matched
    against a file's path inside its install directory (``pip/__init__.py``);
    a pattern without ``/`` also matches the base name.
    """


@hookspec
def holoclone_strategies(methods: Mapping[str, LinkMethod]) -> list[Strategy]:
    """Return named strategies to add.

    ``methods`` holds the built-in link methods (``reflink``, ``hardlink``,
    ``copy``) to compose with a plugin's own.  A name already taken by an
    earlier plugin (or a built-in) is refused with a warning.
    """


@hookspec
def holoclone_report(report: Report) -> None:
    """Observe the finished run: counts per method, bytes, fallbacks and reasons, time."""
