"""hatch-holoclone: a hatch environment type seeded by holoclone and installed with ``holoclone install``.

hatch finds :mod:`hatch_holoclone.hooks` through the ``hatch`` entry point.
"""

__version__ = "0.1.0"
