"""A plain nox configuration: nothing here names holoclone.

nox creates session environments with ``python -m virtualenv`` (its default
backend), so ``seeder = holoclone`` in virtualenv.ini or
``VIRTUALENV_SEEDER=holoclone`` makes holoclone seed them.  The ``uv`` and
``venv`` backends do not run virtualenv and are not seeded by holoclone.
"""

import nox


@nox.session
def tests(session: nox.Session) -> None:
    """Install the project and run its tests."""
    session.install(".")
    session.run("python", "-m", "unittest", "discover", "-s", "tests", "-v")
