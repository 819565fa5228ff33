"""Fixtures for the unit tests: the stand-in libSystem (``store`` and ``make_catalog`` are in tests/conftest.py)."""

from __future__ import annotations

from fakes import libsystem  # noqa: F401 (a fixture, shared by the macOS backend and tree-clone tests)
