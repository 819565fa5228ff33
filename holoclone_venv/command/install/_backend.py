"""Runs a PEP 517 build backend's hooks for ``holoclone install``, inside the target environment's interpreter.

Run as a script (never imported: it needs only the standard library and is
started by the environment's interpreter, which may not have holoclone-venv):

    python _backend.py BACKEND BACKEND_PATH_JSON

with the project folder as the working directory.  It reads one request per
line on stdin, ``{"hook": NAME, "args": [...]}``, calls the hook with those
arguments in PEP 517's order (positionally, as pip does: backends name them freely) and
answers one line of JSON on the stdout it was started with:
``{"result": VALUE}``, ``{"missing": true}`` when the backend lacks an optional
hook, or ``{"error": TEXT}``.  Everything the backend prints (and its
subprocesses) goes to stderr, so it can never be taken for an answer.

One process serves every hook of a build (``get_requires_for_build_wheel``
then ``build_wheel``): the backend is imported once, where a process per hook
would import it twice.
"""

import importlib
import json
import os
import sys
import traceback

# Optional hooks and what a backend without them means (PEP 517/660); the build hooks are required.
_DEFAULTS = {"get_requires_for_build_wheel": [], "get_requires_for_build_editable": []}  # type: dict[str, list[str]]


def _load(spec, backend_path):
    """The backend object named ``module:object`` (PEP 517), importing from ``backend_path`` first when given."""
    if backend_path:
        sys.path[:0] = [os.path.abspath(p) for p in backend_path]
    module_name, _, obj_path = spec.partition(":")
    backend = importlib.import_module(module_name)
    for part in filter(None, obj_path.split(".")):
        backend = getattr(backend, part)
    if backend_path:  # an in-tree backend must come from the tree (PEP 517)
        where = os.path.abspath(getattr(sys.modules[module_name], "__file__", "") or "")
        if not any(where.startswith(os.path.abspath(p) + os.sep) for p in backend_path):
            raise ImportError("the backend %s was not found in its backend-path %s" % (spec, backend_path))
    return backend


def main():
    # The script's own folder is not the backend's: take it off sys.path before anything is imported.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # the backend's prints, and its children's, go to stderr
    sys.stdout = sys.stderr
    spec, backend_path = sys.argv[1], json.loads(sys.argv[2])
    try:
        backend = _load(spec, backend_path)
    except Exception:
        traceback.print_exc()
        answers.write(json.dumps({"error": "cannot import the build backend %s: %s" % (spec, sys.exc_info()[1])}))
        answers.write("\n")
        answers.flush()
        return 1
    for line in sys.stdin:
        request = json.loads(line)
        hook = request["hook"]
        function = getattr(backend, hook, None)
        if function is None:
            answer = {"result": _DEFAULTS[hook]} if hook in _DEFAULTS else {"missing": True}
        else:
            try:
                answer = {"result": function(*request["args"])}
            except BaseException:  # SystemExit from a setup.py included: the answer says what went wrong
                traceback.print_exc()
                error = sys.exc_info()[1]
                answer = {"error": "%s: %s" % (type(error).__name__, error)}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
