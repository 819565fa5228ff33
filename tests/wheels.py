"""The one wheel builder of the tests: valid wheels, deliberately broken or hostile ones, and a wheelhouse.

Every wheel is a genuine zip written with :mod:`zipfile`, with a ``WHEEL`` file
and a ``RECORD`` of sha256 hashes and sizes, exactly as build backends write
them, that is correct unless a test asks it to lie.  Hostile members (``../``
paths, absolute paths, symlinks, duplicates) are added with
:class:`zipfile.ZipInfo` so their names and attributes reach the archive
exactly as given.

``build_wheelhouse(dest)`` writes three wheels that together cover what an
installer must handle:

``hcpure``  pure Python, ``Requires-Dist: hcdata`` (so pip must resolve a dependency).
``hcdata``  pure Python with ``.data/scripts`` (a ``#!python`` script), ``.data/data``,
            ``.data/headers``, and console and GUI entry points.
``hcext``   a platlib wheel holding a C extension module compiled by setuptools'
            ``build_ext`` with the running interpreter's headers (gcc and the
            Python headers are needed); the tests import it.
"""

from __future__ import annotations

import base64
import hashlib
import stat
import subprocess
import sys
import sysconfig
import textwrap
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

PURE_TAG = "py3-none-any"


def record_hash(data: bytes) -> str:
    """A RECORD hash field (``sha256=<urlsafe base64, unpadded>``)."""
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


@dataclass
class Member:
    """One archive member.  ``record`` overrides its RECORD row's (hash, size); None leaves it out of RECORD."""

    name: str
    data: bytes
    mode: int = 0o644
    file_type: int = stat.S_IFREG
    record: tuple[str, str] | None | bool = True  # True: a correct row


@dataclass
class WheelSpec:
    """What :func:`build_wheel` writes: a distribution ``name``/``version`` and its members."""

    name: str = "demo"
    version: str = "1.0"
    members: list[Member] = field(default_factory=list)
    entry_points: str | None = None
    wheel_file: str | None | bool = None  # None: a valid WHEEL file; False: none at all
    record: bool = True  # False: no RECORD at all
    tag: str = PURE_TAG

    @property
    def dist_info(self) -> str:
        return f"{self.name}-{self.version}.dist-info"

    @property
    def file_name(self) -> str:
        return f"{self.name}-{self.version}-{self.tag}.whl"

    def add(self, name: str, data: bytes | str, **kwargs) -> "WheelSpec":
        self.members.append(Member(name, data.encode() if isinstance(data, str) else data, **kwargs))
        return self

    def add_metadata(self, requires: tuple[str, ...] = ()) -> "WheelSpec":
        """Add a METADATA member (with ``Requires-Dist`` lines for ``requires``)."""
        text = f"Metadata-Version: 2.1\nName: {self.name}\nVersion: {self.version}\n"
        return self.add(f"{self.dist_info}/METADATA", text + "".join(f"Requires-Dist: {r}\n" for r in requires))


def simple_spec(name: str = "demo", version: str = "1.0") -> WheelSpec:
    """A small valid pure-Python wheel: a package, a module, METADATA."""
    spec = WheelSpec(name, version)
    spec.add(f"{name}/__init__.py", f"VERSION = {version!r}\n")
    spec.add(f"{name}/core.py", "def hello():\n    return 'hello'\n" + "# padding\n" * 200)
    return spec.add_metadata()


def console_spec(name: str = "hcdemo", version: str = "1.0") -> WheelSpec:
    """A tiny pure-Python wheel with a console script ``name`` printing ``"<name> <version> works"``."""
    spec = WheelSpec(name, version, entry_points=f"[console_scripts]\n{name} = {name}:main\n")
    spec.add(f"{name}/__init__.py", f"def main():\n    print('{name} {version} works')\n")
    return spec.add_metadata()


def build_wheel(directory: Path, spec: WheelSpec) -> Path:
    """Write ``spec`` as ``directory/<name>-<version>-<tag>.whl`` and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / spec.file_name
    members = list(spec.members)
    if spec.entry_points is not None:
        members.append(Member(f"{spec.dist_info}/entry_points.txt", spec.entry_points.encode()))
    wheel_text = spec.wheel_file
    if wheel_text is None:
        purelib = "true" if spec.tag == PURE_TAG else "false"
        wheel_text = f"Wheel-Version: 1.0\nGenerator: holoclone-tests\nRoot-Is-Purelib: {purelib}\nTag: {spec.tag}\n"
    if wheel_text is not False:
        members.append(Member(f"{spec.dist_info}/WHEEL", wheel_text.encode()))
    rows = []
    for member in members:
        if member.record is True:
            rows.append(f"{member.name},{record_hash(member.data)},{len(member.data)}\n")
        elif member.record:
            rows.append(f"{member.name},{member.record[0]},{member.record[1]}\n")
    rows.append(f"{spec.dist_info}/RECORD,,\n")
    if spec.record:
        members.append(Member(f"{spec.dist_info}/RECORD", "".join(rows).encode(), record=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicates some tests want
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for member in members:
                info = zipfile.ZipInfo(member.name, date_time=(2020, 1, 1, 0, 0, 0))
                # ZipInfo keeps the name as given: no normalization of '..' or leading '/'.
                info.filename = member.name
                info.external_attr = (member.file_type | member.mode) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, member.data)
    return path


def fake_pip(directory: Path, version: str, spec: WheelSpec | None = None) -> Path:
    """A wheel named like pip ``version`` (virtualenv picks it from ``--extra-search-dir``)."""
    spec = spec or simple_spec("pip", version)
    spec.name, spec.version = "pip", version
    return build_wheel(directory, spec)


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut a file to a fraction of its size, as an interrupted download would."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def corrupt_member_data(path: Path, member: str) -> Path:
    """Flip bytes inside one member's compressed data, leaving the central directory intact."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    data = bytearray(path.read_bytes())
    # local header: 30 bytes + name + extra, then the compressed data
    name_len = int.from_bytes(data[info.header_offset + 26 : info.header_offset + 28], "little")
    extra_len = int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len
    for offset in range(start + 2, start + min(info.compress_size - 1, 12)):
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def write_wheel(dest: Path, name: str, version: str, files: dict[str, bytes], *, tag: str = PURE_TAG,
                requires: tuple[str, ...] = (), entry_points: str = "", modes: dict[str, int] | None = None) -> Path:
    """Write a valid ``<name>-<version>-<tag>.whl`` holding ``files`` plus METADATA, WHEEL, RECORD."""
    spec = WheelSpec(name, version, tag=tag,
                     entry_points=textwrap.dedent(entry_points).lstrip() if entry_points else None)
    for member, data in files.items():
        spec.add(member, data, mode=(modes or {}).get(member, 0o644))
    spec.add_metadata(requires)
    return build_wheel(dest, spec)


def build_extension(work: Path) -> tuple[str, bytes]:
    """Compile ``hcext._speed`` with setuptools; return (path inside the wheel, shared object bytes)."""
    src = work / "hcext-src"
    (src / "hcext").mkdir(parents=True, exist_ok=True)
    (src / "hcext" / "_speed.c").write_text(textwrap.dedent("""
        #define PY_SSIZE_T_CLEAN
        #include <Python.h>
        static PyObject *triple(PyObject *self, PyObject *args) {
            long n;
            if (!PyArg_ParseTuple(args, "l", &n)) return NULL;
            return PyLong_FromLong(3 * n);
        }
        static PyMethodDef methods[] = {{"triple", triple, METH_VARARGS, "3 * n"}, {NULL, NULL, 0, NULL}};
        static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_speed", NULL, -1, methods};
        PyMODINIT_FUNC PyInit__speed(void) { return PyModule_Create(&module); }
    """))
    (src / "setup.py").write_text(textwrap.dedent("""
        from setuptools import Extension, setup
        setup(name="hcext", version="1.0", ext_modules=[Extension("hcext._speed", ["hcext/_speed.c"])])
    """))
    built = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=src,
                           capture_output=True, text=True)
    if built.returncode:
        raise RuntimeError(f"building the test extension failed:\n{built.stdout}\n{built.stderr}")
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    so = src / "hcext" / f"_speed{suffix}"
    return f"hcext/_speed{suffix}", so.read_bytes()


def platform_tag() -> str:
    """The CPython wheel tag of the running interpreter (e.g. ``cp311-cp311-linux_x86_64``)."""
    version = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return f"{version}-{version}-{platform}"


def build_wheelhouse(dest: Path) -> dict[str, Path]:
    """Build the three test wheels into ``dest``; returns name -> wheel path."""
    dest.mkdir(parents=True, exist_ok=True)
    so_name, so_data = build_extension(dest.parent / f"{dest.name}-build")
    wheels = {}
    wheels["hcpure"] = write_wheel(
        dest, "hcpure", "1.0",
        {"hcpure/__init__.py": b"from hcdata import greet\n\ndef shout():\n    return greet().upper()\n"},
        requires=("hcdata>=1.0",),
    )
    wheels["hcdata"] = write_wheel(
        dest, "hcdata", "1.0",
        {
            "hcdata/__init__.py": b"def greet():\n    return 'hello from hcdata'\n",
            "hcdata/cli.py": b"import sys\n\ndef main():\n    print('hcdata-cli', sys.executable)\n    return 0\n",
            "hcdata-1.0.data/scripts/hcdata-raw": b"#!python\nimport sys\nprint('hcdata-raw', sys.executable)\n",
            "hcdata-1.0.data/data/share/hcdata/notes.txt": b"data file shipped in .data/data\n",
            "hcdata-1.0.data/headers/hcdata.h": b"#define HCDATA 1\n",
        },
        entry_points="""
            [console_scripts]
            hcdata-cli = hcdata.cli:main
            [gui_scripts]
            hcdata-gui = hcdata.cli:main
        """,
        modes={"hcdata-1.0.data/scripts/hcdata-raw": 0o755},
    )
    wheels["hcext"] = write_wheel(
        dest, "hcext", "1.0",
        {"hcext/__init__.py": b"from ._speed import triple\n", so_name: so_data},
        tag=platform_tag(),
        modes={so_name: 0o755},
    )
    return wheels
