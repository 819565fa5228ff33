"""``type = "holoclone"``: hatch's virtual environment, seeded by holoclone, installed from its store.

Everything hatch decides stays hatch's (``VirtualEnvironment`` does it): when
an environment is created, removed or synced, which dependencies are missing,
dev mode, features, ``pre-install-commands``, every option of the ``virtual``
type.  Two things differ:

- the environment is created by virtualenv with ``VIRTUALENV_SEEDER=holoclone``
  (unless the user's environment names another seeder);
- every install hatch makes (the project, in dev mode ``--editable`` too, its
  features and ``dependencies``) runs ``python -m holoclone_venv install
  --python ENV ARGS`` with the interpreter running hatch, which installs what
  ``pip install ARGS`` would, from the store: wheels are put in place by
  reflink where the filesystem clones, and the editable project is built
  by its own backend as pip builds it, in a build environment from the store.

``installer = "uv"`` keeps hatch's uv route unchanged: uv creates the
environment and installs, as with ``type = "virtual"``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator

from hatch.env.virtual import VirtualEnvironment

SEEDER_ENV = "VIRTUALENV_SEEDER"


@contextlib.contextmanager
def _holoclone_seeder() -> Iterator[None]:
    """``VIRTUALENV_SEEDER=holoclone`` while hatch runs virtualenv in its own process, then as it was."""
    if SEEDER_ENV in os.environ:  # the user's choice of seeder wins
        yield
        return
    os.environ[SEEDER_ENV] = "holoclone"
    try:
        yield
    finally:
        os.environ.pop(SEEDER_ENV, None)


class HolocloneEnvironment(VirtualEnvironment):
    """A hatch ``virtual`` environment whose packages come from the holoclone store."""

    PLUGIN_NAME = "holoclone"

    def create(self) -> None:
        """Create the environment as ``type = "virtual"`` does, seeded by holoclone."""
        with _holoclone_seeder():
            super().create()

    def construct_pip_install_command(self, args: list[str]) -> list[str]:
        """``holoclone install`` into this environment with pip's ``args``; hatch runs it and checks its status."""
        if self.use_uv:
            return super().construct_pip_install_command(args)
        command = [sys.executable, "-m", "holoclone_venv", "install", "--python", str(self.virtual_env_path)]
        # hatch shows installs one level quieter than itself (pip gets -q at hatch's default verbosity).
        if self.verbosity < 1:
            command.append("-q")
        elif self.verbosity > 1:
            command.append("-v")
        return [*command, *args]
