"""The virtualenv seeder plugin: ``virtualenv --seeder holoclone ENV``.

virtualenv imports every installed seeder plugin on every run, selected or
not, so this module imports nothing that virtualenv has not already loaded.
The work happens in :mod:`holoclone_venv.seeding`, imported inside ``run``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

# virtualenv's own default seeder is built on BaseEmbed, so this import is free.
from virtualenv.seed.embed.base_embed import BaseEmbed

if TYPE_CHECKING:
    from argparse import ArgumentParser

    from virtualenv.app_data.base import AppData
    from virtualenv.config.cli.parser import VirtualEnvOptions
    from virtualenv.create.creator import Creator

    from .config import Settings


class HoloCloneSeeder(BaseEmbed):
    """Seed pip and setuptools (and optionally more) from holoclone's content-addressed store.

    All of virtualenv's seed options keep their meaning; the ``--holoclone-*``
    options choose the store, the strategy and extra packages.
    """

    def __init__(self, options: VirtualEnvOptions) -> None:
        super().__init__(options)
        # A bad setting must stop virtualenv before it creates anything.
        self.settings = _settings_or_exit(options)
        if self.settings.requirements or self.settings.packages:
            self.enabled = options.no_seed is False

    @classmethod
    def add_parser_arguments(cls, parser: ArgumentParser, interpreter: object, app_data: AppData) -> None:
        """Add virtualenv's seed options and holoclone's own."""
        super().add_parser_arguments(parser, interpreter, app_data)  # type: ignore[arg-type]
        from .config import BUILTIN_STRATEGIES, DEFAULT_LOCK_TIMEOUT

        group = parser.add_argument_group("holoclone")
        group.add_argument(
            "--holoclone-strategy",
            dest="holoclone_strategy",
            metavar="NAME",
            default=None,
            help=f"how files get into the env: {', '.join(BUILTIN_STRATEGIES)} or a plugin's strategy "
            "(default: $RCC_HOLOTREE_STRATEGY, else smart)",
        )
        group.add_argument(
            "--holoclone-store",
            dest="holoclone_store",
            metavar="DIR",
            default=None,
            help="store directory; keep it on the same filesystem as your environments for reflinks "
            "(default: the user cache directory)",
        )
        group.add_argument(
            "--holoclone-strict",
            dest="holoclone_strict",
            action="store_true",
            default=False,
            help="fail instead of falling back to a slower link method",
        )
        group.add_argument(
            "--holoclone-exclude",
            dest="holoclone_exclude",
            metavar="PATTERN",
            action="append",
            type=str,  # virtualenv converts VIRTUALENV_* values item by item with this type
            default=[],
            help="never hardlink files matching this glob (repeatable); matched against the path inside the "
            "install directory (pip/__init__.py), a pattern without '/' also against the file name, e.g. '*.so'",
        )
        group.add_argument(
            "--holoclone-requirements",
            dest="holoclone_requirements",
            metavar="FILE",
            action="append",
            type=str,  # virtualenv converts VIRTUALENV_* values item by item with this type
            default=[],
            help="also materialize the packages of this requirements file (repeatable)",
        )
        group.add_argument(
            "--holoclone-package",
            dest="holoclone_package",
            metavar="SPEC",
            action="append",
            type=str,  # virtualenv converts VIRTUALENV_* values item by item with this type
            default=[],
            help="also materialize this package and its dependencies (repeatable)",
        )
        group.add_argument(
            "--holoclone-lock-timeout",
            dest="holoclone_lock_timeout",
            metavar="SECONDS",
            type=float,
            default=DEFAULT_LOCK_TIMEOUT,
            help="give up waiting for a store lock after this many seconds",
        )

    def run(self, creator: Creator) -> None:
        """Materialize the seed packages into ``creator``'s environment."""
        if not self.enabled:
            return
        from .seeding import seed_environment

        seed_environment(self, creator)

    def __repr__(self) -> str:
        base = super().__repr__()
        extra = f", strategy={self.settings.strategy}, store={self.settings.store}"
        return f"{base[:-1]}{extra}{base[-1]}"


def _settings_or_exit(options: VirtualEnvOptions) -> Settings:
    from .config import settings_from_options
    from .errors import HoloCloneError

    try:
        return settings_from_options(options)
    except HoloCloneError as error:
        print(f"holoclone: error: {error}", file=sys.stderr)  # noqa: T201
        raise SystemExit(2) from None
