"""Platform clone backends, one module per platform, each registered as a plugin.

This is the one place that asks which platform we are on.
"""

from __future__ import annotations

import sys


def platform_module_name() -> str | None:
    """Dotted name of this platform's backend module, or None where there is none."""
    if sys.platform.startswith("linux"):
        return "holoclone_venv.platforms.linux"
    if sys.platform == "darwin":
        return "holoclone_venv.platforms.darwin"
    if sys.platform == "win32":
        return "holoclone_venv.platforms.windows"
    return None
