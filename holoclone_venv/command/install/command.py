"""``holoclone install [--python ENV] [-q|-v] [--refresh] [--plan-ttl SECONDS] [pip install arguments...]``.

Exit status: 0 installed (or nothing to do), 1 the install failed (pip's own
error line included; the environment is as it was), 2 a usage error (bad
options, no environment, a target that is not a virtual environment, bad
settings), 130 interrupted (Ctrl-C or SIGTERM; the environment is as it was).  At default verbosity one summary line goes to stderr (and a
progress bar while wheels are imported, on a terminal); ``-q`` prints only
errors; ``-v`` says what it plans and runs.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Mapping, Sequence

from ...errors import HoloCloneError, sigterm_as_interrupt

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
PLAN_TTL_ENV = "VIRTUALENV_HOLOCLONE_PLAN_TTL"

USAGE = """\
usage: holoclone install [--python ENV] [-q | -v] [--refresh] [--plan-ttl SECONDS] [pip install arguments...]

Install into an existing virtual environment exactly what 'ENV/bin/python -m pip install ARGS'
would install, putting every wheel in place from the holoclone store (reflink where possible,
bytecode shipped). Every argument not listed here is pip's, with pip's meaning.

options:
  --python ENV          the environment's directory or interpreter (default: $VIRTUAL_ENV)
  -q, --quiet           print only errors
  -v, --verbose         say what is planned and run
  --refresh             ask pip for a new plan even when the store has a fresh one
  --plan-ttl SECONDS    how long a plan that is not fully pinned is reused (default: $VIRTUALENV_HOLOCLONE_PLAN_TTL,
                        else holoclone_plan_ttl in virtualenv.ini, else 600); fully pinned plans never expire
  --store DIR, --lock-timeout SECONDS   as for every holoclone command

exit status: 0 success, 1 the install failed (the environment is as it was), 2 usage error,
  130 stopped by Ctrl-C or SIGTERM (the environment is as it was)
"""


def main(argv: Sequence[str], store: str | None = None, lock_timeout: float | None = None) -> int:
    """Run ``holoclone install`` with ``argv`` (the arguments after ``install``); returns the exit status."""
    from ...settings import settings_for_command
    from .pipargs import split
    from .target import find_target

    if any(arg in ("-h", "--help") for arg in argv):
        sys.stdout.write(USAGE)
        return EXIT_OK
    try:
        options, pip_args = split(argv)
        options.store = options.store or store
        options.lock_timeout = options.lock_timeout if options.lock_timeout is not None else lock_timeout
        _logging(options.verbosity)
        settings = settings_for_command(os.environ, store=options.store, lock_timeout=options.lock_timeout)
        ttl = plan_ttl(options.plan_ttl, os.environ)
        target = find_target(options.python, os.environ)
        from ...plugins import shared
        from ...policy import resolve_policy
        from ...store import Store

        opened = Store(settings.store, settings.lock_timeout)
        opened.check(create=True)  # a store of a newer layout, another user's, not creatable: a usage error
        policy = resolve_policy(settings, shared())  # an unknown strategy: a usage error
    except HoloCloneError as error:
        print(f"holoclone: {error}", file=sys.stderr)
        return EXIT_USAGE
    from .run import install

    try:
        with sigterm_as_interrupt():
            outcome = install(target, pip_args, settings, options, ttl, opened, policy)
    except KeyboardInterrupt:
        print(f"holoclone: interrupted; {target.env_dir} is as it was.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except HoloCloneError as error:
        print(f"holoclone: {error}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as error:
        from ...errors import os_error

        print(f"holoclone: {os_error(error, f'installing into {target.env_dir}; the environment is as it was')}",
              file=sys.stderr)
        return EXIT_FAILED
    logging.getLogger("holoclone").info("%s", outcome.summary(target.env_dir))
    for actionable, line in outcome.report.fallback_lines():
        logging.getLogger("holoclone").log(logging.WARNING if actionable else logging.DEBUG, "%s", line)
    return EXIT_OK


def plan_ttl(flag: float | None, environ: Mapping[str, str]) -> float:
    """Seconds an unpinned plan is reused: ``--plan-ttl`` > ``$VIRTUALENV_HOLOCLONE_PLAN_TTL`` >
    ``holoclone_plan_ttl`` in virtualenv.ini (read as virtualenv reads it, see
    :mod:`holoclone_venv.virtualenv_config`) > 600; raises :class:`ConfigError` for a value that is no number >= 0."""
    from ...errors import ConfigError
    from .plan import DEFAULT_PLAN_TTL

    if flag is not None:
        return flag
    raw = environ.get(PLAN_TTL_ENV)
    source = PLAN_TTL_ENV
    if raw is None:
        from ...virtualenv_config import VirtualenvConfig

        raw, source = VirtualenvConfig(environ).ini_raw("holoclone_plan_ttl"), "holoclone_plan_ttl in virtualenv.ini"
    if raw is None:
        return DEFAULT_PLAN_TTL
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ConfigError(f"the plan TTL {raw!r} (from {source}) is not a number of seconds.",
                          "Set it to 0 or more, e.g. 600.")
    return value


def _logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    logging.getLogger("holoclone").setLevel(level)
