"""The hooks through which holoclone's policy is extended.

Plugins implement these with ``@hookimpl`` (``pluggy.HookimplMarker("holoclone")``)
and are found through the entry-point group ``holoclone``.  Built-in behaviour
(platform clone backends, exclusion rules, the five strategies) is registered
as ordinary plugins, exactly as a third party would register its own.

Every hook is called once per run, never per file: what a hook returns is
compiled into plain functions and patterns before materializing starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Mapping, NamedTuple, Optional

import pluggy

if TYPE_CHECKING:
    from .report import Report
    from .rules import Rule

hookspec = pluggy.HookspecMarker("holoclone")
hookimpl = pluggy.HookimplMarker("holoclone")


#: ``link(source, target, dir_fd, mode, mtime)``: create ``target`` (relative to
#: ``dir_fd`` when it is not None) from the object at ``source``; ``mode`` is the
#: permission for a new inode, ``mtime`` (seconds) is set when not None.  Raise
#: :class:`Unsupported` to let the next method try; the target must not exist then.
LinkFunction = Callable[[str, str, Optional[int], int, Optional[int]], None]
#: ``link_open(source_fd, size, target, dir_fd, mode, mtime)``: the same from an object the
#: caller has already opened (read-only, not through a link) and checked to be ``size`` bytes.
#: It spares the hot loop a second look at the object: the materializer's integrity check
#: is the ``fstat`` of that descriptor.  The caller closes ``source_fd``.
OpenLinkFunction = Callable[[int, int, str, Optional[int], int, Optional[int]], None]


class LinkMethod(NamedTuple):
    """One way of putting a file in place.

    ``shares_inode`` marks methods (hardlinks) whose result is the store object
    itself: they are never used for files the exclusion rules protect.
    ``counts_as`` is the report bucket: ``reflinked``, ``hardlinked`` or ``copied``;
    a method that cannot prove it shared data must count as ``copied``.
    ``same_filesystem`` marks methods that need source and target on one
    filesystem: after a cross-device error they are not tried for that pair.
    """

    name: str
    link: LinkFunction
    counts_as: str = "copied"
    shares_inode: bool = False
    same_filesystem: bool = False  # True when it cannot work across filesystems (EXDEV skips it)
    link_open: Optional[OpenLinkFunction] = None  # the same from an opened object, where the method has it


class Strategy(NamedTuple):
    """A named, ordered list of methods; the first that works for a file wins.

    ``whole_tree`` asks for the install root to be cloned in one call from a
    template first (a btrfs snapshot, a macOS directory clone); the methods
    then do only what the clone does not, or everything when it cannot be made.
    """

    name: str
    methods: tuple[LinkMethod, ...]
    description: str = ""
    whole_tree: bool = False


class CloneBackend(NamedTuple):
    """What :func:`holoclone_clone_backend` returns.

    ``clone(source, target, dir_fd, mode, mtime)`` has the contract of
    :data:`LinkFunction`: it raises
    :class:`holoclone_venv.errors.Unsupported` when the filesystem cannot clone
    (the next method is then tried) and leaves no target behind on any failure.
    """

    name: str
    clone: LinkFunction
    #: Optional: ``clone_open(source_fd, size, target, dir_fd, mode, mtime)``, the same from a
    #: source the caller has opened and checked (:data:`OpenLinkFunction`).
    clone_open: Optional[OpenLinkFunction] = None


@hookspec(firstresult=True)
def holoclone_clone_backend() -> CloneBackend | None:
    """Return the clone backend for this platform (a :class:`CloneBackend`), or None.

    The first non-None result wins; plugins registered later are asked first,
    so a third-party backend overrides the built-in one.
    """


@hookspec(firstresult=True)
def holoclone_filesystem_name(path: str) -> str | None:
    """Name the filesystem holding ``path`` (``xfs``, ``ext4``...) for messages, or None."""


class RuleSettings(NamedTuple):
    """What an exclusion-rules hook may know of the run's settings (its ``settings`` argument)."""

    #: The user's ``--holoclone-exclude`` patterns (never hardlinked).
    excludes: tuple[str, ...] = ()


@hookspec
def holoclone_exclusion_rules(excludes: tuple[str, ...], settings: RuleSettings) -> list[Rule]:
    """Return rules saying which files must never be hardlinked, or always copied.

    An implementation names the arguments it needs: ``excludes`` (the user's
    ``--holoclone-exclude`` patterns), or ``settings``, kept for plugins written
    against holoclone 0.1, which is now a :class:`RuleSettings` holding only
    ``excludes`` (never the whole settings: they are not plugin API).
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
