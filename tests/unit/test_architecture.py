"""Architecture guards over the package source: no import cycles, small modules, one platform owner."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import holoclone_venv

PACKAGE = Path(holoclone_venv.__file__).parent
NAME = "holoclone_venv"
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_package(module: str, modules: dict[str, Path]) -> bool:
    return modules[module].name == "__init__.py"


def _imports(module: str, modules: dict[str, Path]) -> set[str]:
    """Every intra-package module ``module`` imports, anywhere in it (functions, TYPE_CHECKING too)."""
    tree = ast.parse(modules[module].read_text(encoding="utf-8"), str(modules[module]))
    package = module if _is_package(module, modules) else module.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
            for name in names:
                while name and name not in modules:  # "import a.b.c" of a non-module attribute
                    name = name.rpartition(".")[0]
                if name.startswith(NAME):
                    targets.add(name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if not base.startswith(NAME):
                continue
            submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules]
            targets.update(submodules)
            if len(submodules) < len(node.names) and base in modules:
                targets.add(base)  # a name defined in the module (or package __init__) itself
    targets.discard(module)
    return targets


@functools.lru_cache(maxsize=None)
def _graph() -> dict[str, frozenset[str]]:
    modules = _modules()
    return {module: frozenset(_imports(module, modules)) for module in modules}


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def test_the_import_graph_sees_relative_absolute_and_deferred_imports():
    graph = _graph()
    assert "holoclone_venv.settings" in graph["holoclone_venv.materialize.linking"]  # inside a function
    assert "holoclone_venv.report" in graph["holoclone_venv.hookspecs"]  # under TYPE_CHECKING
    assert "holoclone_venv.store" in graph["holoclone_venv.command.maintenance.gc"]  # from ..store
    assert "holoclone_venv.command.maintenance" in graph["holoclone_venv.command.maintenance.gc"]  # from . import Progress
    assert "holoclone_venv.hookspecs" in graph["holoclone_venv.plugins"]  # from . import hookspecs
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles_among_package_modules():
    cycle = _find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_module_is_longer_than_400_lines():
    too_long = {
        str(path.relative_to(PACKAGE.parent)): count
        for path in PACKAGE.rglob("*.py")
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert too_long == {}, f"modules over {MAX_LINES} lines: {too_long}"


_PLATFORM_ATTRIBUTES = {("sys", "platform"), ("os", "name"), ("platform", "system"), ("platform", "machine")}


def _platform_questions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) in _PLATFORM_ATTRIBUTES:
                found.append(f"{path.name}:{node.lineno} {node.value.id}.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module in ("sys", "os", "platform") and not node.level:
            for alias in node.names:
                if (node.module, alias.name) in _PLATFORM_ATTRIBUTES:
                    found.append(f"{path.name}:{node.lineno} from {node.module} import {alias.name}")
    return found


def test_only_the_platforms_package_asks_which_platform_this_is():
    outside = [
        hit
        for path in sorted(PACKAGE.rglob("*.py"))
        if "platforms" not in path.relative_to(PACKAGE).parts
        for hit in _platform_questions(path)
    ]
    assert outside == []


def test_the_platform_guard_detects_what_it_looks_for(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import os, sys, platform\nfrom sys import platform as p\n"
                      "a = sys.platform\nb = os.name\nc = platform.system()\nd = platform.machine()\n")
    assert len(_platform_questions(sample)) == 5
    inside = [hit for path in (PACKAGE / "platforms").rglob("*.py") for hit in _platform_questions(path)]
    assert inside, "the platforms package is where these questions are asked"


PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
#: What a plugin may import from holoclone: the public API, and the package's version.
PUBLIC = {"holoclone_venv.api", "holoclone_venv:__version__"}


def _holoclone_imports(path: Path) -> list[str]:
    """Each import of holoclone in ``path``: a module name, or ``module:name`` for a name from the package."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.split(".")[0] == NAME]
        elif isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == NAME:
            if node.module == NAME:
                found += [f"{NAME}:{alias.name}" for alias in node.names]
            else:
                found.append(node.module)
    return found


def _plugin_sources() -> list[Path]:
    return sorted(path for path in PLUGINS.rglob("*.py") if "tests" not in path.relative_to(PLUGINS).parts)


def test_plugins_import_only_the_public_api():
    sources = _plugin_sources()
    assert sources, "the example plugins are where this rule is checked"
    private = {f"{path.relative_to(PLUGINS)}: {name}" for path in sources for name in _holoclone_imports(path)
               if name not in PUBLIC}
    assert private == set(), "plugins must import holoclone_venv.api only"


def test_the_public_api_guard_detects_what_it_looks_for(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import holoclone_venv.rules\nfrom holoclone_venv.hookspecs import hookimpl\n"
                      "from holoclone_venv import __version__, errors\nfrom holoclone_venv.api import Rule\n")
    assert _holoclone_imports(sample) == ["holoclone_venv.rules", "holoclone_venv.hookspecs",
                                          "holoclone_venv:__version__", "holoclone_venv:errors", "holoclone_venv.api"]


def test_the_public_api_names_what_plugins_use():
    from holoclone_venv import api

    for name in ("hookimpl", "CloneBackend", "LinkMethod", "LinkFunction", "Strategy", "Rule", "Unsupported"):
        assert name in api.__all__ and getattr(api, name) is not None
    # One definition of each link type, wherever it is used.
    from holoclone_venv.materialize import linking
    from holoclone_venv.platforms import base

    assert linking.LinkMethod is api.LinkMethod and linking.Strategy is api.Strategy
    assert linking.LinkFunction is api.LinkFunction and base.LinkFunction is api.LinkFunction


#: The store's folders (attributes of a Store): a path built inside one spells the store's layout.
_STORE_FOLDERS = {"objects", "catalogs", "index", "refs", "wheels", "resolutions", "templates", "tmp", "locks",
                  "install_plans"}
#: Names of the store's own files.
_STORE_FILE_NAMES = (".plan.json", ".files.json", ".record-", "template-use-")
#: A document with these keys is a store format: a resolution, a template plan.
_STORE_DOCUMENTS = ({"format", "wheels"}, {"format", "entries"})


def _folder(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr in _STORE_FOLDERS) or (
        isinstance(node, ast.Name) and node.id in _STORE_FOLDERS)


def _store_formats_spelled(path: Path) -> list[str]:
    """Where ``path`` spells a store format: a path built inside a store folder, a store file's name, or
    a store document's fields."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and _folder(node.left):
            found.append(f"{path.name}:{node.lineno} a path inside a store folder")
        elif isinstance(node, ast.JoinedStr):
            pairs = zip(node.values, node.values[1:])
            if any(isinstance(a, ast.FormattedValue) and _folder(a.value) and isinstance(b, ast.Constant)
                   and str(b.value).startswith("/") for a, b in pairs):
                found.append(f"{path.name}:{node.lineno} a path inside a store folder")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if any(name in node.value for name in _STORE_FILE_NAMES):
                found.append(f"{path.name}:{node.lineno} a store file's name")
        elif isinstance(node, ast.Dict):
            keys = {key.value for key in node.keys if isinstance(key, ast.Constant)}
            if any(fields <= keys for fields in _STORE_DOCUMENTS):
                found.append(f"{path.name}:{node.lineno} a store document")
    return found


def test_no_module_outside_the_store_spells_a_store_format():
    outside = [hit for path in sorted(PACKAGE.rglob("*.py")) if path.relative_to(PACKAGE).parts[0] != "store"
               for hit in _store_formats_spelled(path)]
    assert outside == [], "store formats belong in holoclone_venv/store/"


def test_the_store_format_guard_detects_what_it_looks_for(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("a = store.objects / digest[:2]\nb = f'{objects}/{digest[:2]}/{digest[2:]}'\n"
                      "c = store.templates / (name + '.plan.json')\nd = {'format': 1, 'wheels': []}\n"
                      "e = f'{store.root}/x'\nf = {'format': 1, 'catalogs': []}\n")
    assert sorted(hit.split(" ", 1)[1] for hit in _store_formats_spelled(sample)) == [
        "a path inside a store folder", "a path inside a store folder", "a path inside a store folder",
        "a store document", "a store file's name"]
    inside = [hit for path in (PACKAGE / "store").rglob("*.py") for hit in _store_formats_spelled(path)]
    assert inside, "the store is where its formats are spelled"
