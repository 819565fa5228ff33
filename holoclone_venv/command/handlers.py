"""What each ``holoclone`` subcommand does: run it, then say it as text or JSON.

Each command takes the parsed arguments and returns ``(data, exit status,
render)``: ``data`` is what ``--json`` prints, ``render(data)`` the text.
The work itself is done by ``doctor.py``, ``virtualenv_ini.py`` and the
``maintenance`` package.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Callable, Tuple

from ..errors import HoloCloneError

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2

Result = Tuple[Any, int, Callable[[Any], str]]


def _settings(args: argparse.Namespace):
    """Store, strategy, excludes, lock timeout and trusted keys, resolved exactly as seeding resolves them."""
    from ..settings import settings_for_command

    return settings_for_command(os.environ, store=args.store, lock_timeout=args.lock_timeout,
                                trusted_keys=getattr(args, "trusted_keys", None))


def _store_path(args: argparse.Namespace) -> str:
    return _settings(args).store


def _open(args: argparse.Namespace):
    from .maintenance import open_store

    settings = _settings(args)
    return open_store(settings.store, settings.lock_timeout)


def _progress(label: str):
    from ..progress import bar

    return bar(label)


def doctor_command(args: argparse.Namespace) -> Result:
    from .doctor import diagnose

    d = diagnose(args.directory, _settings(args))

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
            f"snapshot        {probe(d.snapshot)}",
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


def enable_command(args: argparse.Namespace) -> Result:
    from .virtualenv_ini import enable

    change = enable()
    notes = [change.message]
    env = os.environ.get("VIRTUALENV_SEEDER")
    if env and env != "holoclone":
        notes.append(f"note: VIRTUALENV_SEEDER={env} is set in this shell and overrides virtualenv.ini.")
    data = {"config_file": str(change.path), "changed": change.changed, "previous": change.previous,
            "message": " ".join(notes)}
    return data, EXIT_OK, lambda d: "\n".join(notes)


def disable_command(args: argparse.Namespace) -> Result:
    from .virtualenv_ini import disable

    change = disable()
    foreign = not change.changed and change.previous == "holoclone"
    data = {"config_file": str(change.path), "changed": change.changed, "message": change.message}
    return data, EXIT_PROBLEMS if foreign else EXIT_OK, lambda d: change.message


def plugins_command(args: argparse.Namespace) -> Result:
    from ..plugins import Plugins

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


def _size(count: int) -> str:
    n = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n} B"


def _space(space) -> str:
    how = "" if space.method == "extents" else " (counted from allocated blocks: this filesystem reports no extents)"
    return f"{_size(space.physical)} on disk, {_size(space.apparent)} apparent{how}"


def _open_or_none(args: argparse.Namespace):
    """The store, or None when there is none yet at its path (pip, uv and pnpm report an empty cache then)."""
    settings = _settings(args)
    if not os.path.lexists(settings.store):
        return None
    return _open(args)


def info_command(args: argparse.Namespace) -> Result:
    from .maintenance.info import StoreInfo, info
    from .maintenance.space import Space

    store = _open_or_none(args)
    result = info(store, _progress("measuring")) if store else StoreInfo(_store_path(args), 0, Space(), [], [])

    def text(_) -> str:
        created = "" if store else " (empty: not created yet; the first seeding creates it)"
        lines = [f"store        {result.root}{created}", f"objects      {result.objects:,}",
                 f"size         {_space(result.space)}", f"catalogs     {len(result.catalogs)}"]
        for c in result.catalogs:
            lines.append(f"  {c.name} {c.version} {c.tag}  {c.key[:16]}..." if not c.error
                         else f"  BROKEN {c.key}: {c.error}")
        live = [r for r in result.environments if r.live]
        dead = len(result.environments) - len(live)
        lines.append(f"environments {len(live)}" + (f" ({dead} dead refs: 'holoclone store gc' removes them)" if dead else ""))
        lines += [f"  {r.env}" for r in live]
        lines.append(f"wheels       {result.wheels:,} kept for dependency sets")
        lines.append(f"templates    {len(result.templates)}")
        lines += [f"  {t.id}  {t.files:,} files, {_space(t.space)} of its own, "
                  f"{_count(t.environments, 'environment')}" for t in result.templates]
        return "\n".join(lines)

    return result.as_dict(), EXIT_OK, text


def list_command(args: argparse.Namespace) -> Result:
    from .maintenance.info import list_catalogs

    store = _open_or_none(args)
    found = list_catalogs(store) if store else []
    tags: dict[str, list[str]] = {}  # "pip 26.3" -> its interpreter tags
    for c in found:
        if not c.error:
            tags.setdefault(f"{c.name} {c.version}", []).append(c.tag)
    lines = [f"{release} ({', '.join(names)})" for release, names in tags.items()]
    lines += [f"BROKEN {c.key}: {c.error} ('holoclone store verify --repair' removes it)" for c in found if c.error]
    return [c.as_dict() for c in found], EXIT_OK, lambda _: "\n".join(lines) or f"no catalogs in {_store_path(args)}"


def verify_command(args: argparse.Namespace) -> Result:
    from .maintenance.verify import verify

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


def gc_command(args: argparse.Namespace) -> Result:
    from .maintenance.gc import gc
    from .maintenance.refs import REF_GRACE

    older_than = REF_GRACE if args.older_than is None else args.older_than
    if older_than < 0:
        raise HoloCloneError(f"--older-than must not be negative, got {older_than:g}.")
    result = gc(_open(args), dry_run=args.dry_run, progress=_progress("measuring"), older_than=older_than)

    def text(_) -> str:
        verb = "would remove" if result.dry_run else "removed"
        lines = [_grace_line(result.grace), f"kept {_count(len(result.live), 'live environment')}"]
        lines += [f"  {r.env}: {r.why}" for r in result.live]
        if result.kept_young:
            lines.append(f"kept {_count(len(result.kept_young), 'unused catalog')} younger than {result.grace:g} s "
                         "(a seeder may be about to use them; --older-than 0 removes them when none runs)")
        lines += [f"{verb} ref of {r.env or r.path.name}: {r.why}" for r in result.dead]
        lines.append(f"{verb} {_count(len(result.catalogs), 'catalog')}, {_count(result.objects, 'object')}, "
                     f"{_count(result.index, 'index entry', 'index entries')}, "
                     f"{_count(result.resolutions, 'resolution')}, {_count(result.install_plans, 'install plan')}, "
                     f"{_count(len(result.templates), 'template')}"
                     + ("" if result.dry_run else f", {_count(result.tmp_reclaimed, 'tmp entry', 'tmp entries')}"))
        lines.append(f"{'would free' if result.dry_run else 'freed'} {_space(result.frees)}")
        return "\n".join(lines)

    return result.as_dict(), EXIT_OK, text


def _grace_line(grace: float) -> str:
    """gc's first line: its safety rule, which users of 'uv cache prune' or 'pnpm store prune' do not expect."""
    if grace <= 0:
        return "removing what no live environment needs, of any age (--older-than 0)"
    hours = grace / 3600
    age = "an hour" if hours == 1 else f"{hours:g} hours" if hours.is_integer() else f"{grace:g} s"
    return (f"keeping everything younger than {age}, in case a seeder is about to use it "
            "(--older-than SECONDS changes this)")


def _count(n: int, one: str, many: str = "") -> str:
    return f"{n:,} {one if n == 1 else many or one + 's'}"


def path_command(args: argparse.Namespace) -> Result:
    path = _store_path(args)
    return {"store": path}, EXIT_OK, lambda _: path


def remove_command(args: argparse.Namespace) -> Result:
    from .maintenance.bundle import select_catalogs
    from .maintenance.remove import remove_catalogs

    store = _open(args)
    result = remove_catalogs(store, select_catalogs(store, args.catalogs, False))
    return result.as_dict(), EXIT_OK, lambda _: (
        f"removed {_count(len(result.catalogs), 'catalog')} and {_count(result.objects, 'object')} only they used "
        f"from {store.root}"
    )


def clean_command(args: argparse.Namespace) -> Result:
    from .maintenance.remove import clean

    store = _open(args)
    if not args.yes:
        raise HoloCloneError(f"'store clean' removes everything in {store.root}; nothing was removed.",
                             "Run it again with --yes to confirm.")
    result = clean(store)
    return result.as_dict(), EXIT_OK, lambda _: (
        f"emptied {store.root} ({', '.join(result.removed) or 'it was empty'}); environments made from it keep working"
    )


def export_command(args: argparse.Namespace) -> Result:
    from .maintenance.bundle import export, select_catalogs
    from .maintenance.manifest import read_manifest

    if not args.catalogs and not args.all:
        raise HoloCloneError("name the catalogs to export, or pass --all.", "Example: holoclone store export pip -o pip.tar")
    store = _open(args)
    catalogs = select_catalogs(store, args.catalogs, args.all)
    have = read_manifest(args.have) if args.have else None
    signer = _signing_key(args.signing_key, required=False)
    result = export(store, catalogs, args.output, have, _progress("exporting"), signer)
    return result.as_dict(), EXIT_OK, lambda _: (
        f"exported {_count(len(result.catalogs), 'catalog')} and {_count(result.objects, 'object')} ({_size(result.bytes)}) to "
        f"{result.output}" + (f"; left out {result.omitted:,} objects the receiver has" if result.omitted else "")
    )


def import_command(args: argparse.Namespace) -> Result:
    from .maintenance.bundle import import_bundle
    from ..store import Store

    settings = _settings(args)
    store = Store(settings.store, settings.lock_timeout)
    trusted = None if args.trust_unsigned else _trusted(settings)  # unsigned or untrusted: refused
    result = import_bundle(store, args.bundle, _progress("importing"), trusted)
    return result.as_dict(), EXIT_OK, lambda _: (
        f"imported {_count(len(result.imported), 'catalog')}"
        + (f" ({', '.join(result.imported)})" if result.imported else "")
        + f" and {_count(result.objects, 'object')} ({_size(result.bytes)}) into {store.root}; "
        f"{len(result.catalogs) - len(result.imported):,} catalogs and {result.present:,} objects were already present"
    )


def manifest_command(args: argparse.Namespace) -> Result:
    from .maintenance.manifest import write_manifest

    store = _open(args)
    count = write_manifest(store, args.output)
    return {"output": args.output, "objects": count}, EXIT_OK, lambda _: (
        "" if args.output == "-" else f"listed {_count(count, 'object')} in {args.output}"
    )


# -- remote stores (holoclone_venv.remote) --------------------------------------------------------
def _signing_key(path: str | None, required: bool = True):
    """The key ``--signing-key`` or ``$VIRTUALENV_HOLOCLONE_SIGNING_KEY`` names; None when neither and not required."""
    from ..remote.keys import SIGNING_KEY_ENV, signing_key

    if not required and not (path or os.environ.get(SIGNING_KEY_ENV)):
        return None
    return signing_key(path, os.environ)


def _trusted(settings):
    from ..remote.keys import TrustedKeys

    return TrustedKeys.parse(settings.trusted_keys)


def keygen_command(args: argparse.Namespace) -> Result:
    from ..remote.keys import generate, write_secret

    key = generate(args.name)
    public = str(key.public)  # before the file is written: a failure (no cryptography) leaves none behind
    write_secret(key, args.output)
    return {"name": key.name, "public_key": public, "secret_key_file": args.output}, EXIT_OK, lambda _: public


def _chosen(args: argparse.Namespace, what: str) -> None:
    if not args.catalogs and not args.all:
        raise HoloCloneError(f"name the catalogs to {what}, or pass --all.", f"Example: holoclone store {what} URL --all")


def push_command(args: argparse.Namespace) -> Result:
    from .maintenance.bundle import select_catalogs
    from ..remote.sync import push
    from ..remote.transport import open_remote

    _chosen(args, "push")
    key = _signing_key(args.signing_key)
    store = _open(args)
    catalogs = select_catalogs(store, args.catalogs, args.all)
    remote = open_remote(args.url)
    result = push(store, remote, catalogs, key, _progress(f"holoclone: pushing to {args.url}"))
    from ..remote.plans import push_install_plans

    result.install_plans = push_install_plans(store, remote, set(result.catalogs), key)
    return result.as_dict(), EXIT_OK, lambda _: (
        f"pushed {_count(len(result.catalogs), 'catalog')}, {_count(len(result.resolutions), 'resolution')}, "
        f"{_count(len(result.install_plans), 'install plan')} and "
        f"{_count(result.objects, 'object')} ({_size(result.bytes)}) to {args.url} signed by {key.name}; "
        f"{result.present:,} objects were there already"
    )


def pull_command(args: argparse.Namespace) -> Result:
    from ..remote.sync import pull, remote_catalog_keys
    from ..remote.transport import open_remote
    from ..store import Store

    _chosen(args, "pull")
    settings = _settings(args)
    trusted = _trusted(settings)
    store = Store(settings.store, settings.lock_timeout)
    remote = open_remote(args.url)
    keys = remote_catalog_keys(remote) if args.all else args.catalogs
    _, result = pull(store, remote, trusted, keys, _progress)
    return result.as_dict(), EXIT_OK, lambda _: (
        f"pulled {_count(len(result.catalogs), 'catalog')} and {_count(result.objects, 'object')} ({_size(result.bytes)}) "
        f"from {args.url} into {store.root}; {len(keys) - len(result.catalogs):,} catalogs and "
        f"{result.present:,} objects were already present"
    )
