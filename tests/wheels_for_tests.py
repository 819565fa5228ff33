"""Small real wheels for dependency-set tests, built on the spot.

``build_wheelhouse(dest)`` writes three wheels that together cover what an
installer must handle:

``hcpure``  pure Python, ``Requires-Dist: hcdata`` (so pip must resolve a dependency).
``hcdata``  pure Python with ``.data/scripts`` (a ``#!python`` script), ``.data/data``,
            ``.data/headers``, and console and GUI entry points.
``hcext``   a platlib wheel holding a C extension module compiled by setuptools'
            ``build_ext`` with the running interpreter's headers.

Wheels are zip files with a RECORD of sha256 hashes and sizes, exactly as
build backends write them; the extension is really compiled (gcc and the
Python headers are needed) and imported by the tests.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

PURE_TAG = "py3-none-any"


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def write_wheel(dest: Path, name: str, version: str, files: dict[str, bytes], *, tag: str = PURE_TAG,
                requires: tuple[str, ...] = (), entry_points: str = "", modes: dict[str, int] | None = None) -> Path:
    """Write ``<name>-<version>-<tag>.whl`` into ``dest`` with METADATA, WHEEL, RECORD; return its path."""
    dist_info = f"{name}-{version}.dist-info"
    purelib = tag == PURE_TAG
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires
    )
    members = dict(files)
    members[f"{dist_info}/METADATA"] = metadata.encode()
    members[f"{dist_info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: holoclone-tests\nRoot-Is-Purelib: {'true' if purelib else 'false'}\n"
        f"Tag: {tag}\n"
    ).encode()
    if entry_points:
        members[f"{dist_info}/entry_points.txt"] = textwrap.dedent(entry_points).lstrip().encode()
    record = [_record_line(n, d) for n, d in members.items()] + [f"{dist_info}/RECORD,,"]
    members[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    path = dest / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in members.items():
            info = zipfile.ZipInfo(member, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = ((modes or {}).get(member, 0o644) | 0o100000) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return path


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
