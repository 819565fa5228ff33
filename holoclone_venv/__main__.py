"""``python -m holoclone_venv``: the ``holoclone`` command."""

import sys

from .cli import main

sys.exit(main())
