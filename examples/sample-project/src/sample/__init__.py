"""A tiny package: enough for a tool to build, install and test it."""


def greet(name: str) -> str:
    """Return a greeting for ``name``."""
    return f"hello, {name}"
