"""Hostile or broken input gets one clear sentence and writes nothing to the store.

Wheels go through the real path where virtualenv accepts them: a fake
``pip-<version>-py3-none-any.whl`` in ``--extra-search-dir`` with ``--pip
<version>``.  The importer is called directly only for the checks that need
no virtualenv around them.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
from helpers import PY, virtualenv
from storecheck import contents, store_problems, tmp_leftovers
from wheels import WheelSpec, corrupt_member_data, fake_pip, record_hash, simple_spec, truncate

from holoclone_venv.environment import Interpreter
from holoclone_venv.errors import HoloCloneError, StoreError
from holoclone_venv.wheels.importer import ensure_catalog
from holoclone_venv.store import Store

VERSION = "99.0"
INTERPRETER = Interpreter(sys.executable, sys.implementation.name, sys.version_info[:2])

pytestmark = pytest.mark.slow  # every test here runs the real virtualenv (or needs the warm store it makes)

#: The member name each path-escaping case writes: where it would land is checked, relative to every base.
ESCAPING = {
    "parent-path": "../../escaped.py",
    "nested-parent-path": "pip/../../escaped.py",
    "absolute-path": "/tmp/holoclone-escaped.py",
    "backslash-path": "pip\\..\\..\\escaped.py",
}


def _hostile(kind: str) -> WheelSpec:
    spec = simple_spec("pip", VERSION)
    if kind in ESCAPING:
        spec.add(ESCAPING[kind], "print('escaped')\n")
    elif kind == "symlink":
        spec.add("pip/passwd", "/etc/passwd", mode=0o777, file_type=stat.S_IFLNK)
    elif kind == "duplicate":
        spec.add("pip/core.py", "print('second copy')\n")
    elif kind == "case-duplicate":
        spec.add("pip/CORE.py", "print('second copy')\n")
    elif kind == "record-wrong-hash":
        spec.members[1].record = (record_hash(b"something else"), str(len(spec.members[1].data)))
    elif kind == "record-wrong-size":
        spec.members[1].record = (record_hash(spec.members[1].data), str(len(spec.members[1].data) - 5))
    elif kind == "record-missing-file":
        spec.members[1].record = None
    elif kind == "record-no-hash":
        spec.members[1].record = ("", "")
    elif kind == "no-record":
        spec.record = False
    elif kind == "no-wheel-file":
        spec.wheel_file = False
    elif kind == "empty-wheel-file":
        spec.wheel_file = ""
    elif kind == "unknown-data-scheme":
        spec.add(f"pip-{VERSION}.data/elsewhere/x.txt", "x\n")
    elif kind == "bad-entry-point-name":
        spec.entry_points = "[console_scripts]\n../../../evil = pip:main\n"
    else:
        raise AssertionError(kind)
    return spec


HOSTILE = [
    "parent-path", "nested-parent-path", "absolute-path", "backslash-path", "symlink", "duplicate",
    "case-duplicate", "record-wrong-hash", "record-wrong-size", "record-missing-file", "record-no-hash",
    "no-record", "no-wheel-file", "empty-wheel-file", "unknown-data-scheme", "bad-entry-point-name",
]
BROKEN_FILES = ["truncated", "corrupt-member", "not-a-zip", "empty-file"]
#: virtualenv itself opens these while picking the wheel, before holoclone sees them.
REJECTED_BY_VIRTUALENV = {"truncated", "not-a-zip", "empty-file"}


def _broken_file(directory: Path, kind: str) -> Path:
    wheel = fake_pip(directory, VERSION)
    if kind == "truncated":
        truncate(wheel, 0.6)
    elif kind == "corrupt-member":
        corrupt_member_data(wheel, "pip/core.py")
    elif kind == "not-a-zip":
        wheel.write_text("<html>404 Not Found</html>\n")
    elif kind == "empty-file":
        wheel.write_bytes(b"")
    return wheel


@pytest.fixture(scope="module")
def good_store(warm_store, tmp_path_factory) -> Path:
    """A store that already holds a good wheel, so 'nothing new' is a real comparison."""
    wheel = fake_pip(tmp_path_factory.mktemp("hostile") / "good", "98.0")
    return warm_store(None, "--no-setuptools", "--extra-search-dir", str(wheel.parent), "--pip", "98.0")


def _escape_targets(member: str, env: Path, store: Path) -> list[Path]:
    """Where ``member`` would resolve if it were extracted or materialized naively.

    Relative to the environment, its site-packages and package directory, the store, and
    staging directories one and two levels below the store's ``tmp/``.
    """
    site = env / "lib" / f"python{PY}" / "site-packages"
    bases = [env, site, site / "pip", store, store / "tmp" / "stage", store / "tmp" / "stage" / "wheel"]
    names = {member, member.replace("\\", "/")}
    return sorted({Path(os.path.normpath(base / name)) for base in bases for name in names})


def _assert_refused(result, wheel: Path, store: Path, before: set[str]) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if wheel.name in line]
    assert len(lines) == 1, output  # one sentence naming the file...
    assert any(word in lines[0].lower() for word in ("rebuild", "download", "do not install")), lines[0]  # ...and what to do
    assert contents(store) == before
    assert tmp_leftovers(store) == []
    assert store_problems(store) == []


@pytest.mark.parametrize("kind", HOSTILE + BROKEN_FILES)
def test_hostile_wheel_is_refused_through_virtualenv(kind, good_store, tmp_path):
    warm_store = good_store
    if kind in BROKEN_FILES:
        wheel = _broken_file(tmp_path / "wheels", kind)
    else:
        wheel = fake_pip(tmp_path / "wheels", VERSION, _hostile(kind))
    before = contents(warm_store)
    env = tmp_path / "env"
    result = virtualenv(env, "--no-setuptools", "--extra-search-dir", str(wheel.parent), "--pip", VERSION,
                        store=warm_store, check=False)
    if kind in REJECTED_BY_VIRTUALENV:
        output = result.stdout + result.stderr
        assert result.returncode != 0 and "Traceback" not in output and "not a zip" in output
        assert contents(warm_store) == before
    else:
        _assert_refused(result, wheel, warm_store, before)
    if kind in ESCAPING:
        targets = _escape_targets(ESCAPING[kind], env, warm_store)
        assert Path("/tmp/holoclone-escaped.py") in targets or kind != "absolute-path"
        assert [t for t in targets if t.exists()] == []
    for root in (tmp_path, warm_store.parent):
        assert not list(root.rglob("*escaped.py"))
        assert not [p for p in root.rglob("passwd") if p.is_symlink()]
    assert not (env / "lib").exists() or not list((env / "lib").glob("python*/site-packages/pip*"))


@pytest.mark.parametrize("kind", ["parent-path", "symlink", "record-wrong-hash", *sorted(REJECTED_BY_VIRTUALENV)])
def test_hostile_wheel_is_refused_by_the_importer(kind, good_store, tmp_path):
    warm_store = good_store
    wheel = (_broken_file(tmp_path / "w", kind) if kind in BROKEN_FILES
             else fake_pip(tmp_path / "w", VERSION, _hostile(kind)))
    before = contents(warm_store)
    with pytest.raises(HoloCloneError) as caught:
        ensure_catalog(Store(warm_store), wheel, INTERPRETER)
    assert wheel.name in str(caught.value) and caught.value.hint
    assert contents(warm_store) == before
    assert tmp_leftovers(warm_store) == []
    if kind in ESCAPING:
        assert [t for t in _escape_targets(ESCAPING[kind], tmp_path / "env", warm_store) if t.exists()] == []


def _good_catalog(store: Path) -> Path:
    return next((store / "catalogs").glob("*.json"))


@pytest.mark.parametrize("damage", ["not-json", "unsafe-path", "wrong-format", "truncated-json"])
def test_malformed_catalog_is_reported_and_left_alone(damage, warm_store, tmp_path):
    wheel = fake_pip(tmp_path / "wheels", "97.0")
    args = ("--no-setuptools", "--extra-search-dir", str(wheel.parent), "--pip", "97.0")
    store = warm_store(None, *args, fresh=True)  # this test damages it
    catalog = _good_catalog(store)
    document = json.loads(catalog.read_bytes())
    if damage == "not-json":
        catalog.write_text("this is not a catalog")
    elif damage == "unsafe-path":
        document["entries"][0][1] = "../../../../etc/evil"
        catalog.write_text(json.dumps(document))
    elif damage == "wrong-format":
        document["format"] = 999
        catalog.write_text(json.dumps(document))
    elif damage == "truncated-json":
        catalog.write_bytes(catalog.read_bytes()[:100])
    before = contents(store)
    second = tmp_path / "second"
    result = virtualenv(second, *args, store=store, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output
    assert catalog.name in output and "verify" in output
    assert contents(store) == before
    # where the unsafe entry would land if it were materialized into the second env's site-packages
    escaped = Path(os.path.normpath(second / "lib" / f"python{PY}" / "site-packages" / "../../../../etc/evil"))
    assert escaped == tmp_path / "etc" / "evil"
    assert not escaped.exists() and not Path("/etc/evil").exists()
    assert not list(tmp_path.rglob("evil"))


def test_store_symlink_planted_by_another_user_is_refused(needs_root, tmp_path):
    # planting a link owned by another user needs root
    real = tmp_path / "their-store"
    real.mkdir()
    planted = tmp_path / "store"
    planted.symlink_to(real)
    os.lchown(planted, 65534, 65534)
    result = virtualenv(tmp_path / "env", "--no-setuptools", store=planted, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output
    assert f"{planted} is a symlink owned by another user" in output
    assert list(real.iterdir()) == []
    with pytest.raises(StoreError):
        Store(planted).check(create=True)


def test_store_directory_of_another_user_is_refused(needs_root, tmp_path):
    # making a directory owned by another user needs root
    store = tmp_path / "store"
    store.mkdir()
    os.chown(store, 65534, 65534)
    result = virtualenv(tmp_path / "env", "--no-setuptools", store=store, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output
    assert "belongs to another user" in output
    assert list(store.iterdir()) == []
