"""nox sessions seeded by holoclone whose ``session.install`` goes through ``holoclone install``.

``from holoclone_venv.nox import session`` replaces ``nox.session`` in a
noxfile; every argument of ``nox.session`` keeps its meaning::

    from holoclone_venv.nox import session

    @session(python=["3.11", "3.12"])
    def tests(session):
        session.install("-r", "requirements.txt", ".")
        session.run("pytest")

What changes, and only for a session using the virtualenv backend (the
default; a session that names ``venv_backend`` gets that backend):

- the environment is made by virtualenv with ``--seeder=holoclone``, added to
  the session's ``venv_params``;
- ``session.install(ARGS)`` runs ``python -m holoclone_venv install --python
  ENV ARGS`` with the interpreter running nox, which installs what ``pip
  install ARGS`` would, from the store.  For an environment holoclone cannot
  plan with (the uv backend: no pip inside), nox's own ``install`` runs.

nox's own rules are kept: ``-r`` reuses an environment nox would reuse (the
``holoclone`` key in pyvenv.cfg does not change nox's check), ``--no-install``
skips installs into a reused environment, ``--install-only`` still installs.

This module imports nox; nothing in the seeder imports it, and nox is not a
dependency of holoclone-venv: it is imported only by a noxfile that uses it.
"""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable, TypeVar

import nox
from nox.virtualenv import VirtualEnv

F = TypeVar("F", bound=Callable[..., Any])

#: What virtualenv is given so that holoclone seeds the session's environment.
SEEDER_PARAMS = ("--seeder=holoclone",)
#: The backends whose environments are made by virtualenv (``None``: nox's default, virtualenv).
_VIRTUALENV_BACKENDS = (None, "virtualenv")


class Session(nox.Session):
    """nox's Session whose :meth:`install` puts packages in place with ``holoclone install``."""

    def install(self, *args: str, **kwargs: Any) -> None:
        """Install ``args`` as ``pip install ARGS`` would, from the holoclone store.

        Takes the same keyword arguments as :meth:`nox.Session.install`;
        ``external`` is ignored there too.  Falls back to nox's own install
        for a session without a virtualenv-made or venv-made environment
        (no environment, conda, the uv backend) so nox's messages stay.
        """
        venv = self._runner.venv
        if not args or not isinstance(venv, VirtualEnv) or venv.venv_backend == "uv":
            return super().install(*args, **kwargs)
        kwargs.pop("external", None)
        if kwargs.get("silent") is None:
            kwargs["silent"] = not self._runner.global_config.verbose
        # run_install, as nox's install: it runs under --install-only and returns at once under
        # --no-install when the environment is reused.
        self.run_install(sys.executable, "-m", "holoclone_venv", "install", "--python", venv.location, *args,
                         external=True, **kwargs)
        return None


def session(func: F | None = None, /, **kwargs: Any) -> Any:
    """A drop-in for ``nox.session``: same arguments, a holoclone-seeded environment, installs from the store.

    Usable bare (``@session``) or called (``@session(python="3.12")``).  The
    decorated function receives a :class:`Session`, a subclass of
    ``nox.Session``.
    """
    if func is None:
        return functools.partial(session, **kwargs)
    backend = kwargs.get("venv_backend")
    if backend in _VIRTUALENV_BACKENDS:
        # Pinned to virtualenv: --seeder is a virtualenv option, and a default backend from the command
        # line (-db uv) would hand it to a tool that does not know it.
        kwargs["venv_backend"] = "virtualenv"
        kwargs["venv_params"] = [*kwargs.get("venv_params", ()), *SEEDER_PARAMS]

    @functools.wraps(func)
    def run_with_holoclone(nox_session: nox.Session, *args: Any, **more: Any) -> Any:
        return func(Session(nox_session._runner), *args, **more)

    return nox.session(run_with_holoclone, **kwargs)
