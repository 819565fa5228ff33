"""What virtualenv knows about the seeding, turned into a :class:`SeedRequest` of plain values.

The only module besides the seeder that reads virtualenv's seeder and
creator objects: the seed wheels come through virtualenv's own acquisition
(bundled, ``--extra-search-dir``, download), exactly as its default seeder
gets them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from ..environment import Interpreter, Layout, SeedRequest
from ..errors import HoloCloneError

if TYPE_CHECKING:
    from virtualenv.create.creator import Creator
    from virtualenv.seed.embed.base_embed import BaseEmbed


def seed_request(seeder: BaseEmbed, creator: Creator, resolving: bool = False) -> SeedRequest:
    """The request for seeding ``creator``'s environment with ``seeder``'s options; ``resolving`` when
    the seeding resolves requirements too (which needs virtualenv's embedded pip).

    Raises :class:`HoloCloneError` when a seed wheel cannot be found.
    """
    info = creator.interpreter
    major, minor = info.version_info[:2]
    interpreter = Interpreter(
        executable=str(creator.exe),
        implementation=info.implementation,
        version=(major, minor),
        release=tuple(info.version_info[:3]),
        platform=_platform(info),
        architecture=info.architecture,
        markers=tuple(sorted((getattr(info, "marker_environment", None) or {}).items())),
    )
    layout = Layout(
        purelib=str(creator.purelib),
        platlib=str(creator.platlib),
        scripts=str(creator.script_dir),
        data=str(creator.dest),
        include=os.path.join(str(creator.dest), "include", "site", f"python{major}.{minor}"),
        executable=str(creator.exe),
    )
    distributions = seeder.distribution_to_versions()
    return SeedRequest(
        env_dir=str(creator.dest),
        interpreter=interpreter,
        layout=layout,
        seed_wheels=tuple(_seed_wheels(seeder, creator, distributions).values()),
        seed_distributions=tuple(distributions),
        search_dirs=tuple(Path(d) for d in seeder.extra_search_dir),
        download=bool(seeder.download),
        pip_wheel=_embedded_pip(info.version_release_str) if resolving else None,
        plugin_entry_points=plugin_entry_points(),
    )


def _platform(info: object) -> str:
    """The interpreter's ``sysconfig.get_platform()`` (``linux-x86_64``), part of a resolution's cache key.

    Newer virtualenvs record it for the interpreter; older ones (20.35 and before) do not, and then this
    machine's own is used, which names the same OS and machine (the word size is recorded separately).
    """
    found = getattr(info, "sysconfig_platform", None)
    if found:
        return str(found)
    import sysconfig

    return sysconfig.get_platform()


def plugin_entry_points() -> tuple[tuple[str, str, str], ...] | None:
    """holoclone's plugins from the entry points virtualenv has read in this process to find its own.

    They are free here, where :func:`~holoclone_venv.plugins.discover_entry_points`
    would read every distribution's metadata again or check its
    cache against every ``sys.path`` directory.  None where virtualenv or
    Python cannot tell (no such loader, or Python 3.9's entry points, which
    do not know their distribution).
    """
    from virtualenv.run.plugin.base import PluginLoader

    from ..plugins import ENTRY_POINT_GROUP

    loaded = getattr(PluginLoader, "entry_points", None)
    found = loaded() if loaded is not None else None
    if not hasattr(found, "select"):
        return None
    return tuple((ep.name, ep.value, getattr(ep.dist, "name", None) or "?")
                 for ep in found.select(group=ENTRY_POINT_GROUP))  # type: ignore[union-attr]


def _embedded_pip(version: str) -> Path | None:
    from virtualenv.seed.wheels.embed import get_embed_wheel

    wheel = get_embed_wheel("pip", version)
    return Path(wheel.path) if wheel is not None else None


def _seed_wheels(seeder: BaseEmbed, creator: Creator, distributions: Mapping[str, str | None]) -> dict[str, Path]:
    """pip/setuptools wheels through virtualenv's own acquisition (bundled, search dirs, download)."""
    from virtualenv.seed.wheels import get_wheel

    found: dict[str, Path] = {}
    for distribution, version in distributions.items():
        wheel = None
        error: Exception | None = None
        try:  # with --no-download, only what is bundled or in the search dirs: never a download
            wheel = get_wheel(
                distribution=distribution,
                version=version,
                for_py_version=creator.interpreter.version_release_str,
                search_dirs=seeder.extra_search_dir,
                download=bool(seeder.download),
                app_data=seeder.app_data,
                do_periodic_update=seeder.periodic_update,
                env=seeder.env,
            )
        except Exception as caught:  # virtualenv raises several kinds for failed downloads
            error = caught
        if wheel is None:
            import zipfile

            wanted = f"{distribution}{' ' + version if version else ''}"
            if isinstance(error, zipfile.BadZipFile):
                raise HoloCloneError(
                    f"the {wanted} wheel found in {', '.join(map(str, seeder.extra_search_dir)) or 'the wheel cache'} "
                    f"is not a readable zip archive ({error}).",
                    "Delete that wheel file and download it again.",
                )
            detail = f" ({_describe(error)})" if error else ""
            raise HoloCloneError(
                f"no wheel found for {wanted}{detail}.",
                "Pass --extra-search-dir with a folder holding it, or allow --download.",
            )
        found[distribution] = Path(wheel.path)
    return found


def _describe(error: Exception) -> str:
    """A short reason: for a failed ``pip download``, its exit code and last error line."""
    import subprocess

    if isinstance(error, subprocess.CalledProcessError):
        output = "\n".join(str(part or "") for part in (error.stderr, error.output))
        lines = [line.strip() for line in output.splitlines() if line.strip()]
        last = f": {lines[-1]}" if lines else ""
        return f"pip download exited with {error.returncode}{last}".rstrip(".")
    return str(error).rstrip(".") or type(error).__name__
