"""The ``holoclone`` command: doctor, enable/disable, plugins, and store maintenance.

This module only parses arguments and prints results; each subcommand is a
function of ``handlers.py``.  Every failure a user
can cause ends as one sentence on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import textwrap
from typing import Callable, Sequence

from .. import __version__
from . import handlers
from .handlers import EXIT_OK, EXIT_USAGE
from ..errors import HoloCloneError
from ..settings import DEFAULT_LOCK_TIMEOUT, STORE_ENV, default_store

_EXIT_CODES = """\
exit status:
  0  success, nothing wrong found
  1  problems found (verify: damage left unrepaired; doctor: environments would be
     plain copies; disable: holoclone set as default by a line enable did not add)
  2  usage or configuration error: bad arguments, no store at the path, a store of a
     newer layout, a store lock not obtained within --lock-timeout, a bad bundle
"""


class _Parser(argparse.ArgumentParser):
    """argparse, with a did-you-mean for a mistyped command or action (``holoclone store prnue``)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        import difflib
        import re

        wrong = re.search(r"invalid choice: '?([^'\s]*)'? \(choose from (.*)\)", message)
        if wrong:
            choices = re.findall(r"[\w-]+", wrong.group(2))
            close = difflib.get_close_matches(wrong.group(1), choices, n=1)
            if close:
                message = f"{message}; did you mean {close[0]!r}?"
        super().error(message)


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=30)


def _common() -> _Parser:
    """Options accepted before and after the subcommand (defaults are filled in by :func:`main`)."""
    common = _Parser(add_help=False)
    common.add_argument("--store", metavar="DIR", default=argparse.SUPPRESS,
                        help=f"the store (default: ${STORE_ENV}, else holoclone_store in virtualenv.ini, "
                        f"else {default_store()})")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print one JSON document instead of text")
    common.add_argument("--lock-timeout", metavar="SECONDS", type=float, default=argparse.SUPPRESS,
                        help="give up waiting for the store lock after this long (default: "
                        f"$VIRTUALENV_HOLOCLONE_LOCK_TIMEOUT, else virtualenv.ini, else {DEFAULT_LOCK_TIMEOUT:g})")
    return common


_TRUSTED_HELP = ("comma-separated NAME:BASE64 public keys whose signatures are accepted (default: "
                 "$VIRTUALENV_HOLOCLONE_TRUSTED_KEYS, else holoclone_trusted_keys in virtualenv.ini)")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (also used to render ``--help``)."""
    common = _common()
    parser = _Parser(
        prog="holoclone", parents=[common], formatter_class=_formatter,
        description="Inspect and maintain the holoclone store and make holoclone virtualenv's default seeder.",
        epilog="examples:\n  holoclone doctor ~/projects\n  holoclone store info --json\n  holoclone store gc --dry-run\n\n"
        + _EXIT_CODES,
    )
    parser.add_argument("--version", action="version", version=f"holoclone-venv {__version__}")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(parent, name: str, help: str, example: str, run: Callable,
                aliases: Sequence[str] = ()) -> argparse.ArgumentParser:
        sub = parent.add_parser(name, parents=[common], help=help, description=help[0].upper() + help[1:] + ".",
                                formatter_class=_formatter, epilog=f"example:\n  {example}\n\n{_EXIT_CODES}",
                                aliases=list(aliases))
        sub.set_defaults(run=run)
        return sub

    doctor = command(subcommands, "doctor", "check how environments in a directory would be made, and why",
                     "holoclone doctor --json ~/venvs", handlers.doctor_command)
    doctor.add_argument("directory", nargs="?", default=".", help="where environments will live (default: .)")
    command(subcommands, "enable", "make holoclone virtualenv's default seeder (edits virtualenv.ini)",
            "VIRTUALENV_CONFIG_FILE=~/.config/virtualenv/virtualenv.ini holoclone enable", handlers.enable_command)
    command(subcommands, "disable", "undo 'holoclone enable' (restores a seeder it replaced)",
            "holoclone disable", handlers.disable_command)
    subcommands.add_parser("install", help="install into a virtual environment what pip would, from the store "
                           "('holoclone install --help')", add_help=False)
    command(subcommands, "plugins", "list holoclone plugins, their distributions and hooks, and broken ones",
            "holoclone plugins --json", handlers.plugins_command)

    store = subcommands.add_parser("store", parents=[common], help="inspect and maintain the store",
                                description="Inspect and maintain the store.", formatter_class=_formatter,
                                epilog="example:\n  holoclone store verify --repair\n\n" + _EXIT_CODES)
    store_commands = store.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    command(store_commands, "info", "show objects, catalogs, size on disk and environments using the store",
            "holoclone --store /data/holoclone store info", handlers.info_command)
    verify = command(store_commands, "verify",
                     "re-hash every object and check every catalog; exit 1 when damage is left",
                     "holoclone store verify --repair", handlers.verify_command)
    verify.add_argument("--repair", action="store_true",
                        help="remove corrupt objects and the catalogs that need them (re-imported on next use), "
                        "fix modes, reclaim stale tmp/ entries")
    command(store_commands, "list", "list the catalogs the store holds, by name and version",
            "holoclone store list --json", handlers.list_command)
    command(store_commands, "path", "print the store's directory", "cd \"$(holoclone store path)\"", handlers.path_command)
    gc = command(store_commands, "gc", "remove what no live environment needs (alias: prune); nothing under an hour old",
                 "holoclone store prune --dry-run", handlers.gc_command, aliases=["prune"])
    gc.add_argument("--dry-run", action="store_true", help="only show what would be removed and the space it frees")
    gc.add_argument("--older-than", metavar="SECONDS", type=float, default=None,
                    help="remove unused catalogs and wheels once older than this (default 3600: a seeder may be "
                    "between importing and registering its environment; 0 is safe only when no seeder runs)")
    remove = command(store_commands, "remove", "remove catalogs by NAME or NAME==VERSION, and what only they use",
                     "holoclone store remove numpy==2.3.0", handlers.remove_command)
    remove.add_argument("catalogs", nargs="+", metavar="CATALOG", help="catalog key, NAME or NAME==VERSION")
    clean = command(store_commands, "clean", "remove everything in the store (environments made from it keep "
                    "working: their files are their own)", "holoclone store clean --yes", handlers.clean_command)
    clean.add_argument("--yes", action="store_true", help="confirm: without it nothing is removed")
    gc.description = textwrap.fill(
        "Remove what no live environment needs. An environment is live when its directory exists and its "
        "pyvenv.cfg has a 'holoclone' key naming this store, or when it is being created (its ref is under an "
        "hour old, or --older-than). Dead refs, catalogs no live environment uses (imported ones included), "
        "objects no kept catalog names, stale index, wheel, resolution and tmp entries are removed. Link counts "
        "are never used.", 79
    )
    export = command(store_commands, "export", "write catalogs and their objects into a bundle (tar, .tar.gz)",
                     "holoclone store export pip setuptools==80.9.0 --have their.manifest -o pip.tar.gz", handlers.export_command)
    export.add_argument("catalogs", nargs="*", metavar="CATALOG", help="catalog key, NAME or NAME==VERSION")
    export.add_argument("--all", action="store_true", help="export every catalog")
    export.add_argument("-o", "--output", required=True, metavar="FILE", help="the bundle to write ('-': stdout)")
    export.add_argument("--have", metavar="MANIFEST",
                        help="leave out objects listed in this manifest ('holoclone store manifest' on the receiver)")
    imp = command(store_commands, "import", "add a bundle's catalogs and objects (all or nothing; present ones skipped)",
                  "holoclone --store ~/other-store store import pip.tar.gz", handlers.import_command)
    imp.add_argument("bundle", metavar="FILE")
    imp.add_argument("--trust-unsigned", action="store_true",
                     help="import a bundle that no trusted key signed (default: refuse it)")
    imp.add_argument("--trusted-keys", metavar="KEYS", default=None, help=_TRUSTED_HELP)
    export.add_argument("--signing-key", metavar="FILE", default=None,
                        help="sign the bundle with this key (default: $VIRTUALENV_HOLOCLONE_SIGNING_KEY, else unsigned)")
    keygen = command(store_commands, "keygen", "make an Ed25519 signing key: writes the secret, prints NAME:PUBLIC",
                     "holoclone store keygen ci-2025 -o ~/.config/holoclone/ci-2025.key", handlers.keygen_command)
    keygen.add_argument("name", metavar="NAME", help="the key's name, e.g. the CI project and a year")
    keygen.add_argument("-o", "--output", required=True, metavar="FILE", help="the secret key file (created, mode 0600)")
    push = command(store_commands, "push", "upload catalogs, the objects the remote lacks and their resolutions, signed",
                   "holoclone store push s3://bucket/holoclone --all --signing-key ci.key", handlers.push_command)
    push.add_argument("url", metavar="URL", help="s3://bucket/prefix or file://DIR")
    push.add_argument("catalogs", nargs="*", metavar="CATALOG", help="catalog key, NAME or NAME==VERSION")
    push.add_argument("--all", action="store_true", help="push every catalog")
    push.add_argument("--signing-key", metavar="FILE", default=None,
                      help="the secret key to sign with (default: $VIRTUALENV_HOLOCLONE_SIGNING_KEY)")
    pull = command(store_commands, "pull", "fetch signed catalogs and their objects from a remote store",
                   "holoclone store pull https://cache.example.com/holoclone KEY", handlers.pull_command)
    pull.add_argument("url", metavar="URL", help="s3://bucket/prefix, https://host/path or file://DIR")
    pull.add_argument("catalogs", nargs="*", metavar="CATALOG", help="catalog key (<wheel sha256>-<tag>)")
    pull.add_argument("--all", action="store_true", help="pull every catalog (not over http(s)://: it cannot list)")
    pull.add_argument("--trusted-keys", metavar="KEYS", default=None, help=_TRUSTED_HELP)
    manifest = command(store_commands, "manifest", "write the list of objects this store has, for 'export --have'",
                       "holoclone store manifest -o mine.manifest", handlers.manifest_command)
    manifest.add_argument("-o", "--output", required=True, metavar="FILE", help="where to write it ('-': stdout)")
    return parser


# -- entry point -------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (0 ok, 1 problems found, 2 usage or config error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    install = _install_command(argv)
    if install is not None:
        return install
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.store = getattr(args, "store", None)
    args.json = getattr(args, "json", False)
    args.lock_timeout = getattr(args, "lock_timeout", None)  # None: VIRTUALENV_*, virtualenv.ini, default
    if args.lock_timeout is not None and not args.lock_timeout > 0:
        parser.error(f"--lock-timeout must be positive, got {args.lock_timeout:g}")
    try:
        data, status, render = args.run(args)
        text = json.dumps(data, indent=2, default=str) if args.json else render(data)
        if text:
            print(text)
        sys.stdout.flush()
    except HoloCloneError as error:
        print(f"holoclone: {error}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away ('holoclone store info | head -1'): end quietly, as cat does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return status if "status" in locals() else EXIT_OK
    except OSError as error:
        from ..errors import os_error

        print(f"holoclone: {os_error(error, f'running holoclone {args.command}')}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("holoclone: interrupted", file=sys.stderr)
        return 130
    return status


def _install_command(argv: list[str]) -> int | None:
    """``holoclone [--store DIR] [--lock-timeout S] install ...``: run by ``install/command.py``, whose
    arguments are pip's (argparse would take them for its own); None for every other command."""
    globals_: dict[str, str] = {}
    i = 0
    while i < len(argv) and argv[i] in ("--store", "--lock-timeout") and i + 1 < len(argv):
        globals_[argv[i]] = argv[i + 1]
        i += 2
    if i >= len(argv) or argv[i] != "install":
        return None
    from .install.command import EXIT_USAGE as USAGE, main as install_main

    timeout = globals_.get("--lock-timeout")
    try:
        lock_timeout = float(timeout) if timeout is not None else None
    except ValueError:
        print(f"holoclone: --lock-timeout takes a number of seconds, not {timeout!r}.", file=sys.stderr)
        return USAGE
    return install_main(argv[i + 1:], store=globals_.get("--store"), lock_timeout=lock_timeout)


if __name__ == "__main__":
    sys.exit(main())
