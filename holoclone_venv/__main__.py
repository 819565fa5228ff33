"""``python -m holoclone_venv``: the ``holoclone`` command."""

import sys

from .command.cli import main

sys.exit(main())
