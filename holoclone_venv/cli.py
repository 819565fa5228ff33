"""The ``holoclone`` command: doctor, enable/disable, plugins, and store maintenance.

This module only parses arguments and prints results; the work is done by
``doctor.py``, ``userconfig.py`` and ``maintenance.py``.  Every failure a user
can cause ends as one sentence on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import textwrap
from typing import Any, Callable, Sequence

from . import __version__
from .config import DEFAULT_LOCK_TIMEOUT, STORE_ENV
from .errors import HoloCloneError

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2

_EXIT_CODES = """\
exit status:
  0  success, nothing wrong found
  1  problems found (verify: damage left unrepaired; doctor: environments would be
     plain copies; disable: holoclone set as default by a line enable did not add)
  2  usage or configuration error: bad arguments, no store at the path, a store of a
     newer layout, a store lock not obtained within --lock-timeout, a bad bundle
"""


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=30)


def _common() -> argparse.ArgumentParser:
    """Options accepted before and after the subcommand (defaults are filled in by :func:`main`)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", metavar="DIR", default=argparse.SUPPRESS,
                        help=f"the store (default: ${STORE_ENV}, else the per-user cache store)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print one JSON document instead of text")
    common.add_argument("--lock-timeout", metavar="SECONDS", type=float, default=argparse.SUPPRESS,
                        help=f"give up waiting for the store lock after this long (default {DEFAULT_LOCK_TIMEOUT:g})")
    return common


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (also used to render ``--help``)."""
    common = _common()
    parser = argparse.ArgumentParser(
        prog="holoclone", parents=[common], formatter_class=_formatter,
        description="Inspect and maintain the holoclone store and make holoclone virtualenv's default seeder.",
        epilog="examples:\n  holoclone doctor ~/projects\n  holoclone store info --json\n  holoclone store gc --dry-run\n\n"
        + _EXIT_CODES,
    )
    parser.add_argument("--version", action="version", version=f"holoclone-venv {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(parent, name: str, help: str, example: str, run: Callable) -> argparse.ArgumentParser:
        sub = parent.add_parser(name, parents=[common], help=help, description=help[0].upper() + help[1:] + ".",
                                formatter_class=_formatter, epilog=f"example:\n  {example}\n\n{_EXIT_CODES}")
        sub.set_defaults(run=run)
        return sub

    doctor = command(commands, "doctor", "check how environments in a directory would be made, and why",
                     "holoclone doctor --json ~/venvs", _doctor)
    doctor.add_argument("directory", nargs="?", default=".", help="where environments will live (default: .)")
    command(commands, "enable", "make holoclone virtualenv's default seeder (edits virtualenv.ini)",
            "VIRTUALENV_CONFIG_FILE=~/.config/virtualenv/virtualenv.ini holoclone enable", _enable)
    command(commands, "disable", "undo 'holoclone enable' (restores a seeder it replaced)",
            "holoclone disable", _disable)
    command(commands, "plugins", "list holoclone plugins, their distributions and hooks, and broken ones",
            "holoclone plugins --json", _plugins)

    store = commands.add_parser("store", parents=[common], help="inspect and maintain the store",
                                description="Inspect and maintain the store.", formatter_class=_formatter,
                                epilog="example:\n  holoclone store verify --repair\n\n" + _EXIT_CODES)
    store_commands = store.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    command(store_commands, "info", "show objects, catalogs, size on disk and environments using the store",
            "holoclone --store /data/holoclone store info", _info)
    verify = command(store_commands, "verify",
                     "re-hash every object and check every catalog; exit 1 when damage is left",
                     "holoclone store verify --repair", _verify)
    verify.add_argument("--repair", action="store_true",
                        help="remove corrupt objects and the catalogs that need them (re-imported on next use), "
                        "fix modes, reclaim stale tmp/ entries")
    gc = command(store_commands, "gc", "remove what no live environment needs",
                 "holoclone store gc --dry-run", _gc)
    gc.add_argument("--dry-run", action="store_true", help="only show what would be removed and the space it frees")
    gc.description = textwrap.fill(
        "Remove what no live environment needs. An environment is live when its directory exists and its "
        "pyvenv.cfg has a 'holoclone' key naming this store, or when it is being created (its ref is under an "
        "hour old). Dead refs, catalogs no live environment uses (imported ones included), objects no kept "
        "catalog names, stale index and tmp entries are removed. Link counts are never used.", 79
    )
    export = command(store_commands, "export", "write catalogs and their objects into a bundle (tar, .tar.gz)",
                     "holoclone store export pip setuptools==80.9.0 --have their.manifest -o pip.tar.gz", _export)
    export.add_argument("catalogs", nargs="*", metavar="CATALOG", help="catalog key, NAME or NAME==VERSION")
    export.add_argument("--all", action="store_true", help="export every catalog")
    export.add_argument("-o", "--output", required=True, metavar="FILE", help="the bundle to write")
    export.add_argument("--have", metavar="MANIFEST",
                        help="leave out objects listed in this manifest ('holoclone store manifest' on the receiver)")
    imp = command(store_commands, "import", "add a bundle's catalogs and objects (all or nothing; present ones skipped)",
                  "holoclone --store ~/other-store store import pip.tar.gz", _import)
    imp.add_argument("bundle", metavar="FILE")
    manifest = command(store_commands, "manifest", "write the list of objects this store has, for 'export --have'",
                       "holoclone store manifest -o mine.manifest", _manifest)
    manifest.add_argument("-o", "--output", required=True, metavar="FILE")
    return parser


# -- commands ----------------------------------------------------------------------------------
Result = tuple[Any, int, Callable[[Any], str]]


def _store_path(args: argparse.Namespace) -> str:
    from .config import default_store

    path = args.store or os.environ.get(STORE_ENV) or default_store()
    return os.path.abspath(os.path.expanduser(path))


def _open(args: argparse.Namespace):
    from .maintenance import open_store

    return open_store(_store_path(args), args.lock_timeout)


def _progress(label: str):
    from .progress import bar

    return bar(label)


def _doctor(args: argparse.Namespace) -> Result:
    from .doctor import diagnose

    d = diagnose(args.directory, _store_path(args))

    def text(d) -> str:
        def probe(p) -> str:
            return "yes" if p.ok else f"no ({p.detail})"

        lines = [
            f"directory       {d.directory} ({d.directory_fs})",
            f"store           {d.store} ({d.store_fs}{'' if d.store_exists else ', not created yet'})",
            f"same device     {'yes' if d.same_device else 'no'}",
            f"reflink         {probe(d.reflink)}",
            f"hardlink        {probe(d.hardlink)}",
            f"clone in dir    {probe(d.reflink_within_directory)}",
            f"smart uses      {d.smart}: {d.why}",
            f"strategy        {d.strategy['name']} ({d.strategy['source']})",
            f"default seeder  {d.default_seeder['seeder']} ({d.default_seeder['source']})",
            f"versions        holoclone-venv {d.holoclone_version}, virtualenv {d.virtualenv_version}",
            f"plugins         {', '.join(p['name'] + (' (broken)' if p['error'] else '') for p in d.plugins)}",
        ]
        lines += [f"problem: {p}" for p in d.problems]
        lines += [f"advice: {a}" for a in d.advice]
        return "\n".join(lines)

    return d.as_dict(), EXIT_PROBLEMS if d.problems else EXIT_OK, lambda data: text(d)


def _enable(args: argparse.Namespace) -> Result:
    from .userconfig import enable

    change = enable()
    notes = [change.message]
    env = os.environ.get("VIRTUALENV_SEEDER")
    if env and env != "holoclone":
        notes.append(f"note: VIRTUALENV_SEEDER={env} is set in this shell and overrides virtualenv.ini.")
    data = {"config_file": str(change.path), "changed": change.changed, "previous": change.previous,
            "message": " ".join(notes)}
    return data, EXIT_OK, lambda d: "\n".join(notes)


def _disable(args: argparse.Namespace) -> Result:
    from .userconfig import disable

    change = disable()
    foreign = not change.changed and change.previous == "holoclone"
    data = {"config_file": str(change.path), "changed": change.changed, "message": change.message}
    return data, EXIT_PROBLEMS if foreign else EXIT_OK, lambda d: change.message


def _plugins(args: argparse.Namespace) -> Result:
    from .plugins import Plugins

    infos = Plugins().info()
    data = [{"name": p.name, "distribution": p.distribution, "hooks": p.hooks, "error": p.error} for p in infos]

    def text(rows) -> str:
        lines = []
        for row in rows:
            if row["error"]:
                lines.append(f"{row['name']} ({row['distribution']}): BROKEN: {row['error']}")
            else:
                lines.append(f"{row['name']} ({row['distribution']}): {', '.join(row['hooks']) or 'no hooks'}")
        return "\n".join(lines)

    return data, EXIT_OK, text


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n} B"


def _space(space) -> str:
    how = "" if space.method == "extents" else " (counted from allocated blocks: this filesystem reports no extents)"
    return f"{_size(space.physical)} on disk, {_size(space.apparent)} apparent{how}"


def _info(args: argparse.Namespace) -> Result:
    from .maintenance import info

    result = info(_open(args), _progress("measuring"))

    def text(_) -> str:
        lines = [f"store        {result.root}", f"objects      {result.objects:,}",
                 f"size         {_space(result.space)}", f"catalogs     {len(result.catalogs)}"]
        for c in result.catalogs:
            lines.append(f"  {c.name} {c.version} {c.tag}  {c.key[:16]}..." if not c.error
                         else f"  BROKEN {c.key}: {c.error}")
        live = [r for r in result.environments if r.live]
        dead = len(result.environments) - len(live)
        lines.append(f"environments {len(live)}" + (f" ({dead} dead refs: 'holoclone store gc' removes them)" if dead else ""))
        lines += [f"  {r.env}" for r in live]
        return "\n".join(lines)

    return result.as_dict(), EXIT_OK, text


def _verify(args: argparse.Namespace) -> Result:
    from .maintenance import verify

    result = verify(_open(args), repair=args.repair, progress=_progress("verifying"))

    def text(_) -> str:
        lines = [f"checked {result.objects:,} objects ({_size(result.bytes)}) and {result.catalogs} catalogs"]
        for p in result.problems:
            lines.append(f"{'repaired' if p.repaired else 'PROBLEM'} {p.kind}: {p.path}: {p.detail}")
        if result.tmp_reclaimed:
            lines.append(f"reclaimed {result.tmp_reclaimed} stale tmp entries")
        if result.unrepaired:
            lines.append(f"{len(result.unrepaired)} problems; 'holoclone store verify --repair' removes the damaged "
                         "parts and the next seeding re-imports them")
        else:
            lines.append("store is intact" if not result.problems else "all problems repaired")
        return "\n".join(lines)

    return result.as_dict(), EXIT_PROBLEMS if result.unrepaired else EXIT_OK, text


def _gc(args: argparse.Namespace) -> Result:
    from .maintenance import gc

    result = gc(_open(args), dry_run=args.dry_run, progress=_progress("measuring"))

    def text(_) -> str:
        verb = "would remove" if result.dry_run else "removed"
        lines = [f"kept {len(result.live)} live environments"]
        lines += [f"{verb} ref of {r.env or r.path.name}: {r.why}" for r in result.dead]
        lines.append(f"{verb} {len(result.catalogs)} catalogs, {result.objects:,} objects, "
                     f"{result.index} index entries" + ("" if result.dry_run else f", {result.tmp_reclaimed} tmp entries"))
        lines.append(f"{'would free' if result.dry_run else 'freed'} {_space(result.frees)}")
        return "\n".join(lines)

    return result.as_dict(), EXIT_OK, text


def _export(args: argparse.Namespace) -> Result:
    from .maintenance import export, read_manifest, select_catalogs

    if not args.catalogs and not args.all:
        raise HoloCloneError("name the catalogs to export, or pass --all.", "Example: holoclone store export pip -o pip.tar")
    store = _open(args)
    catalogs = select_catalogs(store, args.catalogs, args.all)
    have = read_manifest(args.have) if args.have else None
    result = export(store, catalogs, args.output, have, _progress("exporting"))
    return result.as_dict(), EXIT_OK, lambda _: (
        f"exported {len(result.catalogs)} catalogs and {result.objects:,} objects ({_size(result.bytes)}) to "
        f"{result.output}" + (f"; left out {result.omitted:,} objects the receiver has" if result.omitted else "")
    )


def _import(args: argparse.Namespace) -> Result:
    from .maintenance import import_bundle
    from .store import Store

    store = Store(_store_path(args), args.lock_timeout)
    result = import_bundle(store, args.bundle, _progress("importing"))
    return result.as_dict(), EXIT_OK, lambda _: (
        f"imported {len(result.catalogs)} catalogs and {result.objects:,} objects ({_size(result.bytes)}) "
        f"into {store.root}; {result.present:,} objects were already present"
    )


def _manifest(args: argparse.Namespace) -> Result:
    from .maintenance import write_manifest

    store = _open(args)
    count = write_manifest(store, args.output)
    return {"output": args.output, "objects": count}, EXIT_OK, lambda _: f"listed {count:,} objects in {args.output}"


# -- entry point -------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (0 ok, 1 problems found, 2 usage or config error)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.store = getattr(args, "store", None)
    args.json = getattr(args, "json", False)
    args.lock_timeout = getattr(args, "lock_timeout", DEFAULT_LOCK_TIMEOUT)
    if not args.lock_timeout > 0:
        parser.error(f"--lock-timeout must be positive, got {args.lock_timeout:g}")
    try:
        data, status, render = args.run(args)
    except HoloCloneError as error:
        print(f"holoclone: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("holoclone: interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        print(render(data))
    return status


if __name__ == "__main__":
    sys.exit(main())
