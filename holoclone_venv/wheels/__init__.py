"""Wheels into the store: import, bytecode and regenerated files."""
