"""The virtualenv seeder plugin: ``virtualenv --seeder holoclone ENV``.

virtualenv imports every installed seeder plugin on every run, selected or
not, so this module imports nothing that virtualenv has not already loaded.
The work happens in :mod:`holoclone_venv.seeding.run`, imported inside ``run``.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

# virtualenv's own default seeder is built on BaseEmbed, so this import is free.
from virtualenv.seed.embed.base_embed import BaseEmbed

if TYPE_CHECKING:
    from argparse import ArgumentParser

    from virtualenv.app_data.base import AppData
    from virtualenv.config.cli.parser import VirtualEnvOptions
    from virtualenv.create.creator import Creator

    from ..settings import Settings


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
        # Whether this run makes the environment: if so, a request pip cannot resolve removes it again.
        dest = getattr(options, "dest", None)
        self._new_env = bool(dest) and not os.path.lexists(str(dest))

    @classmethod
    def add_parser_arguments(cls, parser: ArgumentParser, interpreter: object, app_data: AppData) -> None:
        """Add virtualenv's seed options and holoclone's own."""
        super().add_parser_arguments(parser, interpreter, app_data)  # type: ignore[arg-type]
        from ..settings import (
            BUILTIN_STRATEGIES,
            DEFAULT_LOCK_TIMEOUT,
            DEFAULT_STRATEGY,
            RCC_ENV,
            Default,
            default_store,
        )

        # Straight into virtualenv's seeder group (``parser``): argparse never prints a group
        # nested in a group (and deprecates nesting), so the help would lose these options.
        parser.add_argument(
            "--holoclone-strategy",
            dest="holoclone_strategy",
            metavar="NAME",
            default=Default.shown(f"${RCC_ENV}={rcc}" if (rcc := os.environ.get(RCC_ENV)) else DEFAULT_STRATEGY),
            help=f"how files get into the env: {', '.join(BUILTIN_STRATEGIES)} or a plugin's strategy; "
            f"without it ${RCC_ENV}, else {DEFAULT_STRATEGY}",
        )
        parser.add_argument(
            "--holoclone-store",
            dest="holoclone_store",
            metavar="DIR",
            default=Default.shown(default_store()),
            help="store directory, on the same filesystem as your environments for reflinks",
        )
        parser.add_argument(
            "--holoclone-strict",
            dest="holoclone_strict",
            action="store_true",
            default=False,
            help="fail instead of falling back to a slower link method",
        )
        parser.add_argument(
            "--holoclone-exclude",
            dest="holoclone_exclude",
            metavar="PATTERN",
            action="append",
            type=str,  # virtualenv converts VIRTUALENV_* values item by item with this type
            default=[],
            help="never hardlink files matching this glob (repeatable); matched against the path inside the "
            "install directory (pip/__init__.py), a pattern without '/' also against the file name, e.g. '*.so'",
        )
        parser.add_argument(
            "--holoclone-requirements",
            dest="holoclone_requirements",
            metavar="FILE",
            action="append",
            type=str,  # virtualenv converts VIRTUALENV_* values item by item with this type
            default=[],
            help="also materialize the packages of this requirements file (repeatable)",
        )
        parser.add_argument(
            "--holoclone-package",
            dest="holoclone_package",
            metavar="SPEC",
            action="append",
            type=str,  # virtualenv converts VIRTUALENV_* values item by item with this type
            default=[],
            help="also materialize this package and its dependencies (repeatable)",
        )
        parser.add_argument(
            "--holoclone-refresh",
            dest="holoclone_refresh",
            action="store_true",
            default=False,
            help="resolve --holoclone-requirements/--holoclone-package again with pip instead of reusing the "
            "resolution cached in the store (new releases of unpinned requirements are then picked up)",
        )
        parser.add_argument(
            "--holoclone-lock-timeout",
            dest="holoclone_lock_timeout",
            metavar="SECONDS",
            type=float,
            default=DEFAULT_LOCK_TIMEOUT,
            help="give up waiting for a store lock after this many seconds",
        )
        parser.add_argument(
            "--holoclone-remote",
            dest="holoclone_remote",
            metavar="URL",
            default=Default.shown("none"),
            help="on a local miss, pull signed catalogs from this remote store (s3://, https://, file://) before "
            "importing wheels or running pip",
        )
        parser.add_argument(
            "--holoclone-trusted-keys",
            dest="holoclone_trusted_keys",
            metavar="KEYS",
            default=Default.shown("none"),
            help="comma-separated NAME:BASE64 public keys; a remote's catalogs are used only when signed by one",
        )

    def run(self, creator: Creator) -> None:
        """Materialize the seed packages into ``creator``'s environment.

        Raises :class:`SeedError`, whose message is one sentence saying what
        happened and what to do, for any failure holoclone can explain.
        """
        if not self.enabled:
            return
        from .. import __version__
        from ..errors import HoloCloneError, SeedError, sigterm_as_interrupt
        from .run import seed
        from .request import seed_request

        try:
            with sigterm_as_interrupt():
                resolving = bool(self.settings.requirements or self.settings.packages)
                report = seed(seed_request(self, creator, resolving), self.settings)
        except HoloCloneError as error:
            from .requirements import ResolveError

            if isinstance(error, ResolveError) and self._new_env:
                _unmake(creator.dest, error)
            raise SeedError(str(error)) from None
        except KeyboardInterrupt as interrupt:
            # virtualenv would log a bare "KeyboardInterrupt: "; the run has removed what it half wrote.
            how = str(interrupt) or "interrupted"
            print(f"holoclone: {how} while seeding {creator.dest}, which is not complete; "  # noqa: T201
                  "run the same command again to finish it.", file=sys.stderr)
            raise _QuietExit(130) from None
        creator.pyenv_cfg["holoclone"] = __version__
        creator.pyenv_cfg["holoclone_store"] = report.store
        self.report = report

    def __repr__(self) -> str:
        """virtualenv prints this as its report's ``seeder`` line: after a run it says what was seeded."""
        base = super().__repr__()
        extra = f", strategy={self.settings.strategy}, store={self.settings.store}"
        report = getattr(self, "report", None)
        return f"{base[:-1]}{extra}{base[-1]}" + (f" {report.summary()}" if report is not None else "")


def _unmake(env: object, error: Exception) -> None:
    """Bad input found only by pip (a name the index lacks): remove the environment this run made, and stop.

    An environment with Python but without the packages asked for would look complete; the same
    command works again once the request is fixed.
    """
    import shutil

    shutil.rmtree(str(env), ignore_errors=True)
    print(f"holoclone: error: {error} Nothing was created.", file=sys.stderr)  # noqa: T201
    raise _QuietExit(2) from None


def _settings_or_exit(options: VirtualEnvOptions) -> Settings:
    from ..errors import HoloCloneError
    from ..settings import check_strategy, settings_from_options

    try:
        settings = settings_from_options(options)
        if settings.needs_plugins_for_strategy:  # the plugins load here, once, as the seeding will use them
            from ..plugins import shared
            from ..policy import strategy_names
            from .request import plugin_entry_points

            names = strategy_names(shared(plugin_entry_points()))
            check_strategy(settings.strategy_typed, settings.strategy_source, names)
        if settings.requirements or settings.packages:
            from .requirements import read_requirements

            read_requirements(settings.requirements, settings.packages)
        return settings
    except HoloCloneError as error:
        print(f"holoclone: error: {error}", file=sys.stderr)  # noqa: T201
        raise _QuietExit(2) from None


class _QuietExit(SystemExit):
    """An exit already explained on stderr in one sentence: 2 for a bad setting, 130 for Ctrl-C.

    virtualenv logs every non-zero SystemExit as ``SystemExit: 2`` after the
    message; a filter on its logger drops that line for this exit only.
    """

    def __init__(self, code: int) -> None:
        super().__init__(code)
        import logging

        # "__main__" when virtualenv runs as ``python -m virtualenv``.
        for name in ("virtualenv.__main__", "__main__"):
            logging.getLogger(name).addFilter(_drop_usage_exit)


def _drop_usage_exit(record: object) -> bool:
    args = getattr(record, "args", None) or ()
    return not any(isinstance(arg, _QuietExit) for arg in args)
