"""tox 4 environments seeded by holoclone whose packages are put in place by ``holoclone install``.

Installing this distribution next to tox registers three environment types
and makes ``holoclone`` the default runner, so every tox environment changes
without a line of configuration:

- the runner ``holoclone`` (a ``VirtualEnvRunner``), its packaging
  environment ``holoclone-pep-517`` (the ``.pkg`` env that builds the project)
  and ``holoclone-cmd-builder`` (``package = external``);
- each creates its virtualenv with ``VIRTUALENV_SEEDER=holoclone`` (unless the
  user's environment names another seeder) and installs through
  :class:`HolocloneInstaller`, which is tox's own ``Pip`` installer with only
  the final command line changed.

Because only :meth:`HolocloneInstaller.build_install_cmd` differs, every
decision tox makes stays tox's: when to recreate, what counts as a change of
``deps``, constraints, ``--force-dep``, ``pip_pre``, ``skip_install``,
``package = editable``, ``--notest``.  ``holoclone install`` installs exactly
what ``pip install`` would with the same arguments, from the store.

One environment opts out with ``runner = virtualenv``; an ``install_command``
set by the user is run as written; ``holoclone_install = false`` keeps the
seeding and installs with pip.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Sequence

from tox.config.types import Command
from tox.plugin import impl
from tox.tox_env.python.pip.pip_install import Pip
from tox.tox_env.python.virtual_env.package.cmd_builder import VirtualEnvCmdBuilder
from tox.tox_env.python.virtual_env.package.pyproject import Pep517VirtualEnvPackager
from tox.tox_env.python.virtual_env.runner import VirtualEnvRunner

if TYPE_CHECKING:
    from tox.tox_env.register import ToxEnvRegister

#: The runner's id: ``runner = holoclone`` in tox.ini, and the default once the plugin is installed.
RUNNER = "holoclone"
PACKAGER = "holoclone-pep-517"
CMD_BUILDER = "holoclone-cmd-builder"


class HolocloneInstaller(Pip):
    """tox's pip installer whose default command is ``python -m holoclone_venv install --python ENV ...``.

    Contract: the arguments tox hands to the installer (``-r``/``-c`` files,
    requirements, ``--force-reinstall --no-deps WHEEL``, ``-e PATH``, index
    options) reach ``holoclone install`` unchanged and in the same order;
    ``holoclone install`` is run by the interpreter running tox, which has
    holoclone-venv installed beside this plugin.  A user-set ``install_command``
    (anything other than tox's default, ``--pre`` from ``pip_pre`` included)
    is left exactly as tox would run it.
    """

    def _register_config(self) -> None:
        super()._register_config()
        self._env.conf.add_config(
            keys=["holoclone_install"],
            of_type=bool,
            default=True,
            desc="put packages in place from the holoclone store with 'holoclone install' (false: use pip)",
        )

    def build_install_cmd(self, args: Sequence[str]) -> list[str]:
        """The command that installs ``args`` into this environment."""
        if not self._env.conf["holoclone_install"] or not self._is_default_install_command():
            return super().build_install_cmd(args)
        # --pre from pip_pre sits where {opts} was; keep it, it is one of pip's options.
        pre = ["--pre"] if self._env.conf["pip_pre"] else []
        # The env's interpreter, not its directory: tox knows it for every creator (venv layouts differ).
        return [sys.executable, "-m", "holoclone_venv", "install", "--python", str(self._env.env_python()),
                *pre, *args]

    def _is_default_install_command(self) -> bool:
        # Compared by value with what tox would use when nothing is set: a user who writes tox's own
        # default gets holoclone too, which installs the same packages.
        default = self.post_process_install_command(self.default_install_command(self._env.conf, None))
        current: Command = self._env.conf["install_command"]
        return current.args == default.args


class HolocloneMixin:
    """What the runner and the packaging environments share: the installer, the seeder, the allowlist.

    Mixed in front of a tox ``VirtualEnv`` subclass; relies on its
    ``_installer`` slot, ``virtualenv_env_vars()`` and ``_allow_externals``.
    """

    _installer: Any

    @property
    def installer(self) -> Pip:
        """The installer of this environment (one per environment, made on first use)."""
        if self._installer is None:
            self._installer = HolocloneInstaller(self)  # type: ignore[arg-type]
        return self._installer

    def virtualenv_env_vars(self) -> dict[str, str]:
        """virtualenv's variables with holoclone as the seeder, unless the user chose another one.

        Not with ``virtualenv_spec`` (set by the user, or by tox for an interpreter the installed
        virtualenv cannot create): tox then runs another virtualenv, bootstrapped without holoclone,
        which would refuse an unknown seeder.  The installs still go through ``holoclone install``.
        """
        env: dict[str, str] = super().virtualenv_env_vars()  # type: ignore[misc]
        conf = self.conf  # type: ignore[attr-defined]
        if not ("virtualenv_spec" in conf and conf["virtualenv_spec"]):  # the key exists since tox 4.42
            env.setdefault("VIRTUALENV_SEEDER", "holoclone")
        return env

    @property
    def _allow_externals(self) -> list[str]:
        # tox refuses to run a command outside the env unless allowlisted; holoclone install is run by
        # the interpreter running tox.
        return [*super()._allow_externals, sys.executable]  # type: ignore[misc]


class HolocloneRunner(HolocloneMixin, VirtualEnvRunner):
    """A test environment: virtualenv seeded by holoclone, installs through ``holoclone install``."""

    @staticmethod
    def id() -> str:
        return RUNNER

    @property
    def _package_tox_env_type(self) -> str:
        return PACKAGER

    @property
    def _external_pkg_tox_env_type(self) -> str:
        return CMD_BUILDER


class HoloclonePep517Packager(HolocloneMixin, Pep517VirtualEnvPackager):
    """The ``.pkg`` environment: build requirements from the store, the project's wheel built as tox does."""

    @staticmethod
    def id() -> str:
        return PACKAGER


class HolocloneCmdBuilder(HolocloneMixin, VirtualEnvCmdBuilder):
    """The environment that runs ``package = external`` build commands."""

    @staticmethod
    def id() -> str:
        return CMD_BUILDER


@impl
def tox_register_tox_env(register: ToxEnvRegister) -> None:
    """Register the three environment types and make ``holoclone`` the default runner."""
    register.add_run_env(HolocloneRunner)
    register.add_package_env(HoloclonePep517Packager)
    register.add_package_env(HolocloneCmdBuilder)
    register.default_env_runner = RUNNER


def tox_append_version_info() -> str:
    """Shown by ``tox --version`` next to the plugin's name."""
    from holoclone_venv import __version__

    return f"with holoclone-venv=={__version__}"
