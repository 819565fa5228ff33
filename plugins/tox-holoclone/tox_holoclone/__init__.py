"""tox-holoclone: tox 4 environments seeded by holoclone and installed with ``holoclone install``.

tox loads :mod:`tox_holoclone.plugin` through the ``tox`` entry point; nothing
else needs importing.
"""

__version__ = "0.1.0"
