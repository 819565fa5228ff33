"""Registration of the ``holoclone`` environment type with hatch."""

from __future__ import annotations

from hatchling.plugin import hookimpl

from .environment import HolocloneEnvironment


@hookimpl
def hatch_register_environment() -> type[HolocloneEnvironment]:
    """hatch's hook: the environment classes this distribution adds."""
    return HolocloneEnvironment
