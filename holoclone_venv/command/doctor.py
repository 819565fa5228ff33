"""``holoclone doctor``: how environments in a directory would be made from the store, and why.

Nothing is guessed from device numbers or filesystem names: the doctor
creates a small file in the store's ``tmp/`` and really clones and hardlinks
it into the directory (then removes both), exactly as seeding would.  The
filesystem names only make the advice readable.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from pathlib import Path

from .. import __version__
from ..errors import StoreError, Unsupported
from ..plugins import Plugins
from ..platforms import current
from ..store import Store

if TYPE_CHECKING:
    from ..settings import Settings

_PROBE_BYTES = 8192


@dataclass
class Probe:
    """The outcome of one real attempt; ``detail`` holds the reason when it failed."""

    ok: bool
    detail: str = ""

    def as_dict(self) -> dict:
        return {"ok": self.ok, "detail": self.detail}


@dataclass
class Diagnosis:
    directory: str
    directory_fs: str
    store: str
    store_fs: str
    store_exists: bool
    probed_at: str  # where the probe file was made: the store's tmp/, or its nearest existing parent
    same_device: bool
    reflink: Probe
    reflink_within_directory: Probe
    hardlink: Probe
    snapshot: Probe = field(default_factory=lambda: Probe(False, "this platform clones no whole trees"))
    smart: str = ""
    why: str = ""
    advice: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    holoclone_version: str = __version__
    virtualenv_version: str = ""
    default_seeder: dict = field(default_factory=dict)
    strategy: dict = field(default_factory=dict)
    plugins: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        data = dict(self.__dict__)
        for name in ("reflink", "reflink_within_directory", "hardlink", "snapshot"):
            data[name] = getattr(self, name).as_dict()
        return data


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _make_probe_file(directory: Path, label: str) -> Path:
    path = directory / f".holoclone-doctor-{label}.{os.getpid()}"
    with open(path, "xb") as handle:
        handle.write(os.urandom(_PROBE_BYTES))
    return path


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _try_clone(backend, source: Path, target: Path) -> Probe:
    if backend is None:
        return Probe(False, "no clone backend for this platform is installed")
    try:
        backend.clone(str(source), str(target), None, 0o644, None)
    except Unsupported as error:
        return Probe(False, error.reason)
    except OSError as error:
        return Probe(False, f"{error.strerror or error}")
    _unlink(target)
    return Probe(True)


def _try_tree(tree, probe_dir: Path, target_dir: Path) -> Probe:
    """Make, seal and clone a tiny template from where the store is into ``target_dir``, then remove both."""
    template = probe_dir / f".holoclone-doctor-template.{os.getpid()}"
    clone = target_dir / f".holoclone-doctor-tree.{os.getpid()}"
    made = []
    try:
        tree.prepare_template(str(template))
        made.append(template)
        (template / "probe").write_bytes(b"holoclone")
        tree.seal(str(template))
        tree.clone(str(template), str(clone))
        made.append(clone)
        return Probe(True)
    except Unsupported as error:
        return Probe(False, error.reason)
    except OSError as error:
        return Probe(False, f"{error.strerror or error}")
    finally:
        for path in reversed(made):
            try:
                tree.remove(str(path))
            except OSError:
                pass


def _try_hardlink(source: Path, target: Path) -> Probe:
    try:
        os.link(source, target)
    except OSError as error:
        name = errno.errorcode.get(error.errno or 0, "")
        return Probe(False, f"[{name}] {error.strerror}" if name else str(error))
    _unlink(target)
    return Probe(True)


def diagnose(directory: str, settings: Settings, plugins: Plugins | None = None) -> Diagnosis:
    """Probe reflink and hardlink from the store into ``directory`` and explain what ``smart`` does.

    Raises :class:`StoreError` when the store exists but cannot be used (newer
    layout, not a store), and :class:`~holoclone_venv.errors.HoloCloneError`
    when ``directory`` does not exist or cannot be written.
    """
    from ..errors import HoloCloneError

    plugins = plugins or Plugins()
    target_dir = Path(os.path.abspath(directory))
    if not target_dir.is_dir():
        raise HoloCloneError(f"{target_dir} is not a directory.", "Pass the directory where environments will live.")
    store = Store(settings.store)
    try:
        store.check(create=False)
        exists = True
    except StoreError:
        if store.root.exists():
            raise  # a store that exists but cannot be used: say so, do not probe around it
        exists = False

    def fs_name(path: Path) -> str:
        return plugins.filesystem_name(str(path)) or "unknown"

    if exists and store.writable:
        store.tmp.mkdir(exist_ok=True)
        probe_dir = store.tmp
    else:
        probe_dir = _nearest_existing(store.root if exists else store.root.parent)
    backend = plugins.clone_backend()
    problems: list[str] = []
    source = None
    try:
        source = _make_probe_file(probe_dir, "source")
    except OSError as error:
        problems.append(f"cannot write a probe file in {probe_dir}: {error.strerror}")
        existing = next((path for _, _, path in store.iter_objects()), None) if exists else None
        source = existing
    try:
        local = _make_probe_file(target_dir, "local")
    except OSError as error:
        raise HoloCloneError(f"cannot write in {target_dir}: {error.strerror}.",
                             "Run the doctor on a directory you can write to.") from None
    try:
        within = _try_clone(backend, local, target_dir / f"{local.name}.clone")
        if source is not None:
            reflink = _try_clone(backend, source, target_dir / f".holoclone-doctor-clone.{os.getpid()}")
            hardlink = _try_hardlink(source, target_dir / f".holoclone-doctor-link.{os.getpid()}")
        else:
            reflink = hardlink = Probe(False, "nothing in the store to probe with")
    finally:
        _unlink(local)
        if source is not None and source.name.startswith(".holoclone-doctor-"):
            _unlink(source)
    diagnosis = Diagnosis(
        directory=str(target_dir),
        directory_fs=fs_name(target_dir),
        store=str(store.root),
        store_fs=fs_name(probe_dir),
        store_exists=exists,
        probed_at=str(probe_dir),
        same_device=os.stat(probe_dir).st_dev == os.stat(target_dir).st_dev,
        reflink=reflink,
        reflink_within_directory=within,
        hardlink=hardlink,
        problems=problems,
    )
    if current().tree is not None:
        diagnosis.snapshot = _try_tree(current().tree, probe_dir, target_dir)
    _explain(diagnosis)
    _environment(diagnosis, plugins, settings)
    _snapshot_advice(diagnosis)
    _sharing(diagnosis, store)
    return diagnosis


def _explain(d: Diagnosis) -> None:
    """Fill in what ``smart`` would use, why, and what to do about it."""
    suggested = os.path.join(d.directory, ".holoclone-store")
    move = (f"move the store to this filesystem with --holoclone-store {suggested} "
            f"(or VIRTUALENV_HOLOCLONE_STORE={suggested})")
    if not d.store_exists:
        d.advice.append(f"the store {d.store} does not exist yet (the first seeding creates it); "
                        f"probed from {d.probed_at} instead")
    if d.reflink.ok:
        d.smart, d.why = "reflink", f"the store ({d.store_fs}) and {d.directory} ({d.directory_fs}) clone"
        return
    if d.hardlink.ok:
        d.smart = "hardlink"
        d.why = (f"reflink failed ({d.reflink.detail}); hardlinks work, so files the exclusion rules "
                 "protect are copied and the rest hardlinked")
    else:
        d.smart = "copy"
        d.why = f"reflink failed ({d.reflink.detail}) and hardlink failed ({d.hardlink.detail})"
        d.problems.append("environments in this directory share no data with the store: every file is copied")
    if d.reflink_within_directory.ok:
        d.advice.append(f"{d.directory_fs} at {d.directory} can clone, but not from the store on "
                        f"{d.store_fs}: {move}")
    else:
        d.advice.append(
            f"{d.directory_fs} at {d.directory} cannot clone ({d.reflink_within_directory.detail}); for reflinks "
            "keep environments and the store on XFS (reflink=1), btrfs or another cloning filesystem"
        )
        if not d.hardlink.ok:
            d.advice.append(f"to hardlink at least, {move}")


def _snapshot_advice(d: Diagnosis) -> None:
    if d.snapshot.ok and d.strategy.get("name") != "snapshot":
        d.advice.append(
            f"{d.directory_fs} can snapshot whole trees here: --holoclone-strategy snapshot makes each new environment's "
            "site-packages one snapshot of a template, in one call whatever its size. Side effect: site-packages "
            "becomes a subvolume, with its own st_dev, a boundary for du -x, find -xdev and backup tools"
        )
    if d.snapshot.ok and d.directory_fs == "btrfs":
        d.advice.extend(snapshot_caveats(d.store))


#: Files that say this runs in a container (Docker, Podman), and the configurations of tools that
#: roll a btrfs system back to a snapshot.  Module attributes, so the tests can point them elsewhere.
CONTAINER_MARKERS = ("/.dockerenv", "/run/.containerenv")
ROLLBACK_TOOLS = (("snapper", "/etc/snapper/configs"), ("Timeshift", "/etc/timeshift/timeshift.json"),
                  ("Timeshift", "/etc/timeshift.json"))


def snapshot_caveats(store: str) -> list[str]:
    """What btrfs snapshot environments mean here, one sentence each: the read-only templates always, the
    container and rollback tools when found (btrfs snapshots are not recursive)."""
    caveats = [
        f"with snapshot, templates in {store} are read-only subvolumes: rm -rf of the store, or a cache cleaner "
        "on ~/.cache, fails on them with 'Read-only file system'; remove them with 'holoclone store clean --yes' "
        "('holoclone store gc' removes those no environment uses), or with 'btrfs property set PATH ro false' first",
        "with snapshot, uv pip install (hardlinks by default on Linux) cannot link across the site-packages "
        "subvolume and copies instead, with a warning",
    ]
    if any(os.path.exists(marker) for marker in CONTAINER_MARKERS):
        caveats.append("this runs in a container: on Docker's btrfs storage driver each image layer is a "
                       "snapshot, which does not include nested subvolumes, so a later RUN sees an empty "
                       "site-packages in snapshot environments; build images with the smart strategy")
    tools = sorted({name for name, path in ROLLBACK_TOOLS if _configured(path)})
    if tools:
        caveats.append(f"{' and '.join(tools)} snapshot this system: their snapshots do not include nested "
                       "subvolumes, so a rollback restores snapshot environments with an empty site-packages "
                       "(and templates as empty folders, which holoclone builds again)")
    return caveats


def _configured(path: str) -> bool:
    """A configuration file, or a folder of them that is not empty."""
    try:
        return bool(os.listdir(path)) if os.path.isdir(path) else os.path.isfile(path)
    except OSError:
        return False


def _sharing(d: Diagnosis, store: Store) -> None:
    """Warn when accounts other than the store's owner can write into it (see the README's trust model)."""
    if not d.store_exists:
        return
    open_to_others = []
    for path in (store.root, store.objects, store.catalogs, store.refs, store.tmp, store.wheels, store.resolutions):
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if st.st_mode & 0o022 and not st.st_mode & 0o1000:
            open_to_others.append(f"{path} (mode {stat.S_IMODE(st.st_mode):o})")
    if open_to_others:
        d.problems.append(
            "other accounts can write into the store: " + ", ".join(open_to_others) + "; they could change what "
            "every new environment runs. Make it writable by its owner only ('chmod -R go-w "
            f"{store.root}'), and share stores read-only or through signed bundles"
        )


def _environment(d: Diagnosis, plugins: Plugins, settings: Settings) -> None:
    """virtualenv version, whether holoclone is the default seeder, strategy, plugins."""
    from importlib.metadata import PackageNotFoundError, version

    from .virtualenv_ini import config_file, current_seeder

    try:
        d.virtualenv_version = version("virtualenv")
    except PackageNotFoundError:
        d.virtualenv_version = "not installed"
        d.problems.append("virtualenv is not installed in this Python")
    env_seeder = os.environ.get("VIRTUALENV_SEEDER")
    ini = config_file()
    try:
        ini_seeder = current_seeder(ini)
    except Exception as error:  # a broken ini must not stop the diagnosis
        ini_seeder = None
        d.problems.append(f"cannot read {ini}: {error}")
    if env_seeder:
        seeder, source = env_seeder, "VIRTUALENV_SEEDER"
    elif ini_seeder:
        seeder, source = ini_seeder, str(ini)
    else:
        seeder, source = "app-data", "virtualenv's built-in default"
    d.default_seeder = {"seeder": seeder, "source": source, "holoclone": seeder == "holoclone", "config_file": str(ini)}
    if seeder != "holoclone":
        d.advice.append("holoclone is not the default seeder: run 'holoclone enable', or pass --seeder holoclone")
    d.strategy = {"name": settings.strategy, "source": settings.strategy_source}
    d.plugins = [
        {"name": p.name, "distribution": p.distribution, "hooks": p.hooks, "error": p.error}
        for p in plugins.info()
    ]
    for plugin in plugins.broken:
        d.problems.append(f"plugin {plugin.name!r} from {plugin.distribution} is broken: {plugin.error}")
