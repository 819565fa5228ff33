"""Building a template, with a plain-directory tree cloner and a recording platform: the order of its steps."""

from __future__ import annotations

import os
import shutil

import pytest

from holoclone_venv import platforms
from holoclone_venv.environment import Layout
from holoclone_venv.errors import Unsupported
from holoclone_venv.platforms import Platform, TreeCloner, base
from holoclone_venv.store import Store
from holoclone_venv.materialize.tree_clone import _template

IDENTITY = "0123456789abcdef0123456789abcdef"


class Builder:
    """Stands in for the per-file materializer: writes what a template build writes."""

    def __init__(self, steps: list) -> None:
        self.steps = steps

    def for_template(self) -> "Builder":
        return self

    def run(self, catalogs, layout: Layout) -> None:
        self.steps.append(("build", layout.purelib))
        os.makedirs(os.path.join(layout.purelib, "pkg-1.0.dist-info"))
        for name in ("pkg/__init__.py", "pkg-1.0.dist-info/RECORD", "pkg-1.0.dist-info/INSTALLER"):
            os.makedirs(os.path.dirname(os.path.join(layout.purelib, name)), exist_ok=True)
            with open(os.path.join(layout.purelib, name), "w") as handle:
                handle.write(name)


@pytest.fixture
def world(tmp_path, monkeypatch):
    """``(store, steps, tree, layout, probe)`` with ``platforms.current()`` recording make_durable."""
    steps: list = []

    def clone(template: str, target: str) -> None:
        steps.append(("clone", os.path.basename(target)))
        if os.path.exists(os.path.join(str(tmp_path), "other-volume")):
            raise Unsupported("clonefile of the tree failed: [Errno 18] Cross-device link", 18)
        shutil.copytree(template, target, symlinks=True)

    tree = TreeCloner("plain", os.mkdir, lambda path: steps.append(("seal", os.listdir(path))), clone,
                      base.remove_tree)
    fake = Platform("other", None, None, base.posix_pid_alive,
                    lambda directory, paths: steps.append(("durable", sorted(os.path.relpath(p, directory)
                                                                              for p in paths))), None, tree)
    monkeypatch.setattr(platforms, "current", lambda: fake)
    store = Store(tmp_path / "store")
    store.check(create=True)
    env = tmp_path / "env" / "lib"
    (env / "site-packages").mkdir(parents=True)
    layout = Layout(str(env / "site-packages"), str(env / "site-packages"), str(tmp_path / "env" / "bin"),
                    str(tmp_path / "env"), str(tmp_path / "env" / "include"), "python")
    return store, steps, tree, layout, str(env / ".site-packages.holoclone-new")


def test_the_files_written_into_a_template_are_made_durable_before_it_is_sealed(world):
    store, steps, tree, layout, probe = world
    path = _template(store, tree, Builder(steps), [], layout, IDENTITY, probe)
    assert [step[0] for step in steps] == ["clone", "build", "durable", "seal"]
    assert steps[2][1] == ["pkg-1.0.dist-info/INSTALLER", "pkg-1.0.dist-info/RECORD", "pkg/__init__.py"]
    assert path == store.template_path(IDENTITY) and store.has_template(IDENTITY)
    assert store.template_files_path(IDENTITY).is_file() and not os.path.lexists(probe)


def test_a_target_that_cannot_be_cloned_into_is_found_before_the_build_and_leaves_no_template(world, tmp_path):
    store, steps, tree, layout, probe = world
    (tmp_path / "other-volume").mkdir()
    with pytest.raises(Unsupported):
        _template(store, tree, Builder(steps), [], layout, IDENTITY, probe)
    assert steps == [("clone", ".site-packages.holoclone-new")]  # nothing built
    assert list(store.templates.iterdir()) == [] and not os.path.lexists(probe)
