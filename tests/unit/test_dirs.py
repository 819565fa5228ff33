"""Directories made by linking workers side by side (fsutil.make_dir_below), on the real filesystem."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from holoclone_venv.fsutil import make_dir_below

PACKAGES = ("pip", "setuptools")


def _app_data(tmp_path):
    """A tree like virtualenv's app-data image, which --symlink-app-data envs link into."""
    image = tmp_path / "app-data"
    for name in PACKAGES:
        (image / name / "_internal").mkdir(parents=True)
        (image / name / "__init__.py").write_text("# app-data's own\n")
    return image, sorted(str(p.relative_to(image)) for p in image.rglob("*"))


def test_makers_racing_over_symlinked_parents_replace_the_links_and_never_write_through(tmp_path):
    image, before = _app_data(tmp_path)
    wanted = [f"{name}/_internal/sub{i}/deeper" for name in PACKAGES for i in range(6)]
    for attempt in range(25):
        root = tmp_path / f"site-{attempt}"
        root.mkdir()
        for name in PACKAGES:  # what a --symlink-app-data env leaves in site-packages
            (root / name).symlink_to(image / name, target_is_directory=True)
        start = threading.Barrier(4)
        errors: list[BaseException] = []

        def maker(order: list[str]) -> None:
            made: set[str] = set()
            start.wait()
            try:
                for directory in order:
                    make_dir_below(str(root), directory, made)
            except BaseException as error:  # noqa: BLE001 - reported by the test below
                errors.append(error)

        orders = [wanted, wanted[::-1], wanted[1::2] + wanted[::2], wanted[::2] + wanted[1::2]]
        threads = [threading.Thread(target=maker, args=(order,)) for order in orders]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [], f"attempt {attempt}: {errors}"
        for directory in wanted:
            parts = directory.split("/")
            for depth in range(1, len(parts) + 1):
                mode = os.lstat(root.joinpath(*parts[:depth])).st_mode
                assert stat.S_ISDIR(mode), f"{'/'.join(parts[:depth])} is not a directory of its own"
    assert sorted(str(p.relative_to(image)) for p in image.rglob("*")) == before, "app-data was written through"


def test_a_file_in_the_way_is_left_and_making_below_it_fails(tmp_path):
    (tmp_path / "pip").write_text("not a directory\n")
    made: set[str] = set()
    assert make_dir_below(str(tmp_path), "pip", made) == f"{tmp_path}/pip"
    assert (tmp_path / "pip").read_text() == "not a directory\n"
    with pytest.raises(NotADirectoryError):
        make_dir_below(str(tmp_path), "pip/_internal", set())
