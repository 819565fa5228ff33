"""Bytecode for the target interpreter, compiled once per wheel at import time.

Choice: **timestamp-based .pyc files with a fixed source mtime**
(:data:`~holoclone_venv.store.catalog.FIXED_MTIME`).

* Every store object, and every materialized ``.py`` that has bytecode, gets
  that mtime, so one .pyc is valid in every environment: hardlinks share the
  object's mtime for free, clones and copies get it with one ``utime`` on the
  open file.
* Unchecked hash-based .pyc files were rejected: Python never revalidates
  them, so editing a file in an environment would silently run stale code.
* Checked hash-based .pyc files were rejected: Python reads and hashes every
  source file on every import, a cost paid on every run of every tool.
* Editing a ``.py`` in an environment changes its mtime, so Python recompiles
  exactly that module, as with any pip-installed package.

Compilation uses the target interpreter: in this process when it is the same
implementation and version (same magic number), otherwise in one subprocess
of the target interpreter per wheel.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Callable

from ..store.catalog import FIXED_MTIME
from ..environment import Interpreter

# Runs inside the target interpreter: reads [(source, display name)], writes
# {source: pyc path} for what compiled.  A file that does not compile (Python 2
# code in a test directory, say) simply gets no bytecode, as with pip.
_COMPILER = r"""
import importlib.util, json, py_compile, sys
done = {}
for source, display in json.load(sys.stdin):
    target = importlib.util.cache_from_source(source)
    try:
        py_compile.compile(source, target, display, doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)
    except (py_compile.PyCompileError, SyntaxError, ValueError, UnicodeError):
        continue
    done[source] = target
json.dump(done, sys.stdout)
"""


def compile_sources(
    sources: list[tuple[str, str]], interpreter: Interpreter, progress: Callable[[int], None] | None = None
) -> dict[str, str]:
    """Compile staged ``.py`` files; return ``{source: pyc path}`` for those that compiled.

    ``sources`` holds ``(staged path, path shown in tracebacks)``.  Each staged
    source's mtime is set to ``FIXED_MTIME`` first, because that is what the
    timestamp .pyc records and what every environment will see.  ``progress``
    is called with the number of files compiled so far (in this process only).
    """
    for source, _ in sources:
        os.utime(source, (FIXED_MTIME, FIXED_MTIME))
    if not sources:
        return {}
    if interpreter.is_running:
        return _compile_here(sources, progress)
    try:
        result = subprocess.run(
            [interpreter.executable, "-I", "-c", _COMPILER],
            input=json.dumps(sources),
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError) as error:
        from ..errors import HoloCloneError

        detail = getattr(error, "stderr", "") or str(error)
        raise HoloCloneError(
            f"compiling bytecode with {interpreter.executable} failed: {detail.strip()[-500:]}"
        ) from None
    return json.loads(result.stdout)


def _compile_here(sources: list[tuple[str, str]], progress: Callable[[int], None] | None) -> dict[str, str]:
    import importlib.util
    import py_compile

    done = {}
    for count, (source, display) in enumerate(sources, 1):
        if progress and count % 64 == 0:
            progress(count)
        target = importlib.util.cache_from_source(source)
        try:
            py_compile.compile(
                source, target, display, doraise=True, invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP
            )
        except (py_compile.PyCompileError, SyntaxError, ValueError, UnicodeError):
            continue
        done[source] = target
    return done
