"""Which local projects ``holoclone install`` builds itself and which it leaves to pip, and how it reads them."""

from __future__ import annotations

import pytest

from holoclone_venv.command.install.build import NotBuildable, _satisfied, build_system, pip_builds, source_of
from holoclone_venv.environment import Interpreter


def _item(direct_url: dict | None, kind: str = "pip") -> dict:
    return {"name": "proj", "version": "1.0", "url": "", "kind": kind, "direct_url": direct_url}


def test_local_folders_sdists_and_editables_are_built_and_nothing_else(tmp_path):
    sdist = tmp_path / "proj-1.0.tar.gz"
    sdist.write_bytes(b"")
    folder = tmp_path.as_uri()
    assert source_of(_item({"url": folder, "dir_info": {}})) == (str(tmp_path), False)
    assert source_of(_item({"url": folder, "dir_info": {"editable": True}})) == (str(tmp_path), True)
    assert source_of(_item({"url": sdist.as_uri(), "archive_info": {}})) == (str(sdist), False)
    # An index sdist (pip builds it, hash-checked), a remote archive, a VCS checkout, a missing folder, a wheel.
    assert source_of(_item(None)) is None
    assert source_of(_item({"url": "https://example.org/proj-1.0.tar.gz", "archive_info": {}})) is None
    assert source_of(_item({"url": "https://example.org/proj.git", "vcs_info": {"vcs": "git"}})) is None
    assert source_of(_item({"url": (tmp_path / "gone").as_uri(), "dir_info": {}})) is None
    assert source_of(_item({"url": folder, "dir_info": {}}, kind="store")) is None


def test_the_build_system_table_is_read_as_pip_reads_it(tmp_path):
    with pytest.raises(NotBuildable, match="no pyproject.toml"):
        build_system(str(tmp_path))
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "proj"\n')
    with pytest.raises(NotBuildable, match=r"no \[build-system\] requires"):  # pip's legacy setuptools route
        build_system(str(tmp_path))
    (tmp_path / "pyproject.toml").write_text("[build-system\n")
    with pytest.raises(NotBuildable, match="not valid TOML"):
        build_system(str(tmp_path))
    (tmp_path / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools>=61"]\n')
    assert build_system(str(tmp_path)) == (["setuptools>=61"], "setuptools.build_meta:__legacy__", [])
    (tmp_path / "pyproject.toml").write_text('[build-system]\nrequires = []\nbuild-backend = "be:obj"\n'
                                             'backend-path = ["tools"]\n')
    assert build_system(str(tmp_path)) == ([], "be:obj", [str(tmp_path / "tools")])


def test_options_and_settings_that_change_how_pip_builds_leave_the_build_to_pip(tmp_path):
    assert pip_builds(["--no-index", "-f", "w", "."], {}, []) is None
    assert pip_builds(["--no-build-isolation", "."], {}, []) == "pip's --no-build-isolation is given"
    assert pip_builds(["-Ckey=value", "."], {}, []) == "pip's -C is given"
    assert pip_builds(["--config-settings=key=value", "."], {}, []) == "pip's --config-settings is given"
    assert pip_builds(["."], {"PIP_NO_BUILD_ISOLATION": "0"}, []) == "PIP_NO_BUILD_ISOLATION is set"
    config = tmp_path / "pip.conf"
    config.write_text("[global]\nindex-url = https://example.org/simple\n")
    assert pip_builds(["."], {}, [str(config)]) is None
    config.write_text("[install]\nno-build-isolation = true\n")
    assert pip_builds(["."], {}, [str(config)]) == f"pip's configuration {config} sets how it builds"


def test_a_backends_extra_requirements_are_checked_against_the_build_environment():
    interpreter = Interpreter(executable="python", implementation="CPython", version=(3, 11), release=(3, 11, 7),
                              platform="linux-x86_64", architecture=64,
                              markers=(("python_version", "3.11"), ("sys_platform", "linux")))
    target = type("T", (), {"interpreter": interpreter})()
    installed = {"setuptools": "80.0", "wheel": "0.45.1"}
    assert _satisfied([], installed, target)
    assert _satisfied(["setuptools>=61", "Wheel"], installed, target)
    assert _satisfied(['cython; python_version < "3"'], installed, target)  # its marker does not hold
    assert not _satisfied(["setuptools<70"], installed, target)
    assert not _satisfied(["cython"], installed, target)


def test_a_built_wheel_matches_its_plan_however_its_metadata_spells_it(tmp_path):
    import zipfile

    from holoclone_venv.command.install.build import StalePlan, _checked

    wheel = tmp_path / "Proj-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("Proj-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: Proj\nVersion: 1.0\n"
                         "Requires-Dist: requests >=2 ; python_version<'3.12'\nRequires-Dist: beta==2.0\n")
    planned = {"name": "proj", "version": "1.0.0", "requires": ["beta==2.0", 'requests>=2; python_version < "3.12"']}
    assert _checked(wheel, planned, check_requires=True) == {"name": "Proj", "version": "1.0"}
    with pytest.raises(StalePlan):  # a dependency changed
        _checked(wheel, {**planned, "requires": ["beta==1.0", "requests>=2"]}, check_requires=True)
    assert _checked(wheel, {**planned, "requires": []}, check_requires=False)["name"] == "Proj"
    with pytest.raises(StalePlan):  # another version
        _checked(wheel, {**planned, "version": "1.1"}, check_requires=False)
