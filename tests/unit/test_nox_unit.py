"""``holoclone_venv.nox.session``: what it registers with nox, and that nothing else in the package imports it.

The registration tests need nox (not a dependency of holoclone-venv) and skip
without it; the session's installs are tested end to end with real nox, pip
and XFS in ``tests/test_integrations.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import holoclone_venv

PACKAGE = Path(holoclone_venv.__file__).parent


def test_no_module_of_the_package_imports_the_nox_module():
    # nox is imported only by a noxfile that asks for it: the seeder, which virtualenv imports on every
    # run, and the holoclone command must work without nox installed.
    for path in PACKAGE.rglob("*.py"):
        if path.name == "nox.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = {node.module or ""} | {f"{node.module or ''}.{a.name}".lstrip(".") for a in node.names}
                assert not any(n in ("nox", "holoclone_venv.nox") or n.startswith("nox.") for n in names), path
            elif isinstance(node, ast.Import):
                assert not any(a.name.split(".")[0] == "nox" or a.name == "holoclone_venv.nox"
                               for a in node.names), path


@pytest.fixture
def registry():
    """nox's session registry, empty for the test and restored after."""
    nox = pytest.importorskip("nox")
    saved = dict(nox.registry._REGISTRY)
    nox.registry._REGISTRY.clear()
    yield nox.registry
    nox.registry._REGISTRY.clear()
    nox.registry._REGISTRY.update(saved)


def test_a_bare_session_is_made_by_virtualenv_seeded_by_holoclone(registry):
    from holoclone_venv.nox import session

    @session
    def tests(session):
        """Run the tests."""

    func = registry.get()["tests"]
    assert func.venv_backend == "virtualenv"  # pinned: a -db uv default would get virtualenv's --seeder
    assert list(func.venv_params) == ["--seeder=holoclone"]
    assert func.__doc__ == "Run the tests."  # nox lists sessions by their docstring


def test_nox_session_arguments_keep_their_meaning(registry):
    from holoclone_venv.nox import session

    @session(python=["3.11", "3.12"], name="unit", venv_params=["--no-periodic-update"], tags=["fast"],
             reuse_venv=True)
    def tests(session):
        pass

    func = registry.get()["unit"]
    assert func.python == ["3.11", "3.12"]
    assert func.tags == ["fast"]
    assert func.reuse_venv is True
    assert list(func.venv_params) == ["--no-periodic-update", "--seeder=holoclone"]


@pytest.mark.parametrize("backend", ["venv", "uv", "uv|virtualenv", "none"])
def test_another_backend_named_by_the_session_is_kept_without_the_seeder_option(registry, backend):
    from holoclone_venv.nox import session

    @session(venv_backend=backend)
    def tests(session):
        pass

    func = registry.get()["tests"]
    assert func.venv_backend == backend
    assert "--seeder=holoclone" not in list(func.venv_params)


def test_the_session_function_receives_a_nox_session_whose_install_is_holoclones(registry):
    import nox

    from holoclone_venv.nox import Session, session

    seen = []

    @session
    def tests(session):
        seen.append(session)

    class Runner:  # the one attribute Session's constructor keeps
        pass

    registry.get()["tests"](nox.Session(Runner()))
    assert isinstance(seen[0], Session) and isinstance(seen[0], nox.Session)
    assert type(seen[0]).install is not nox.Session.install


def test_parametrized_sessions_keep_their_parameters(registry):
    import nox

    from holoclone_venv.nox import session

    calls = []

    @session
    @nox.parametrize("x", [1, 2])
    def tests(session, x):
        calls.append(x)

    class Runner:
        pass

    func = registry.get()["tests"]
    assert len(func.parametrize) == 2  # nox makes one session per parameter set from this
    func(nox.Session(Runner()), x=2)  # as nox calls each of them
    assert calls == [2]
