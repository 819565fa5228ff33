"""holoclone-venv: a reflink-first, content-addressed seeder for virtualenv.

This module is imported whenever virtualenv loads its seeder plugins, so it
must stay free of imports: everything heavy lives in submodules that
``HoloCloneSeeder.run`` imports on demand.
"""

__version__ = "0.1.0"
