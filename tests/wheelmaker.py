"""Build small, real wheels for tests: valid ones, and deliberately broken or hostile ones.

Every wheel is a genuine zip written with :mod:`zipfile`, with a ``WHEEL`` file
and a ``RECORD`` that is correct unless a test asks it to lie.  Hostile
members (``../`` paths, absolute paths, symlinks, duplicates) are added with
:class:`zipfile.ZipInfo` so their names and attributes reach the archive
exactly as given.
"""

from __future__ import annotations

import base64
import hashlib
import stat
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path


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
    wheel_file: str | None = None  # None: a valid WHEEL file
    record: bool = True  # False: no RECORD at all

    @property
    def dist_info(self) -> str:
        return f"{self.name}-{self.version}.dist-info"

    @property
    def file_name(self) -> str:
        return f"{self.name}-{self.version}-py3-none-any.whl"

    def add(self, name: str, data: bytes | str, **kwargs) -> "WheelSpec":
        self.members.append(Member(name, data.encode() if isinstance(data, str) else data, **kwargs))
        return self


def simple_spec(name: str = "demo", version: str = "1.0") -> WheelSpec:
    """A small valid pure-Python wheel: a package, a module, METADATA."""
    spec = WheelSpec(name, version)
    spec.add(f"{name}/__init__.py", f"VERSION = {version!r}\n")
    spec.add(f"{name}/core.py", "def hello():\n    return 'hello'\n" + "# padding\n" * 200)
    spec.add(f"{spec.dist_info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return spec


def build_wheel(directory: Path, spec: WheelSpec) -> Path:
    """Write ``spec`` as ``directory/<name>-<version>-py3-none-any.whl`` and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / spec.file_name
    members = list(spec.members)
    if spec.entry_points is not None:
        members.append(Member(f"{spec.dist_info}/entry_points.txt", spec.entry_points.encode()))
    wheel_text = spec.wheel_file
    if wheel_text is None:
        wheel_text = "Wheel-Version: 1.0\nGenerator: wheelmaker\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
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
