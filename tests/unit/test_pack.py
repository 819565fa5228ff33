"""The pack format read as untrusted input: every way a pack can be wrong is refused in one sentence."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from holoclone_venv.errors import HoloCloneError
from holoclone_venv.remote import pack

CONTENTS = [(b"", False), (b"#!/bin/sh\necho hi\n", True), (bytes(range(256)) * 4000, False)]


@pytest.fixture
def objects(tmp_path: Path) -> list[tuple[str, bool, str]]:
    made = []
    for i, (data, executable) in enumerate(CONTENTS):
        path = tmp_path / f"object{i}"
        path.write_bytes(data)
        made.append((hashlib.sha256(data).hexdigest(), executable, str(path)))
    return made


def _expected(objects) -> dict:
    return {(digest, executable): Path(path).stat().st_size for digest, executable, path in objects}


def _packed(objects) -> bytes:
    buffer = io.BytesIO()
    assert pack.write_pack(buffer, objects) == len(buffer.getvalue()) == pack.pack_size(_expected(objects).values())
    return buffer.getvalue()


def _read(data: bytes, expected: dict, out: Path, chunk: int = 4099) -> dict:
    """Feed ``data`` in chunks; returns ``{key: staged path}`` of the objects written."""
    out.mkdir(exist_ok=True)
    written: dict = {}
    reader = pack.PackReader("test.pack", expected, lambda key: str(out / f"{key[0]}{key[1]}"),
                             written.__setitem__, lambda _: None, "reading a test pack")
    try:
        for at in range(0, len(data), chunk):
            reader.feed(data[at:at + chunk])
        reader.finish()
    finally:
        reader.close()
    return written


@pytest.mark.parametrize("chunk", [1, 41, 4099, 1 << 20])
def test_a_pack_reads_back_in_chunks_of_any_size(objects, tmp_path, chunk):
    written = _read(_packed(objects), _expected(objects), tmp_path / "out", chunk)
    assert sorted(written) == sorted(_expected(objects))
    for digest, executable, path in objects:
        assert Path(written[(digest, executable)]).read_bytes() == Path(path).read_bytes()


def test_objects_not_wanted_are_read_through_but_checked(objects, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    reader = pack.PackReader("test.pack", _expected(objects), lambda key: None, lambda *_: None, lambda _: None, "x")
    data = bytearray(_packed(objects))
    data[-pack.HEADER.size - 10] ^= 1  # in the last body, which nobody wants
    with pytest.raises(HoloCloneError, match="do not match its digest"):
        reader.feed(bytes(data))
    assert not any(out.iterdir())


def _damaged(objects, how: str) -> tuple[bytes, dict]:
    data, expected = bytearray(_packed(objects)), _expected(objects)
    first = len(pack.MAGIC)
    if how == "magic":
        data[0] ^= 1
    elif how == "kind":
        data[first] = 7
    elif how == "size":
        digest, executable, _ = objects[0]
        expected[(digest, executable)] = 5
    elif how == "unnamed":
        del expected[next(iter(expected))]
    elif how == "twice":
        record = pack.HEADER.size + len(CONTENTS[0][0])
        data[first:first] = data[first:first + record]
    elif how == "end":
        data[-1] ^= 1
    elif how == "boundary":
        del data[-pack.HEADER.size:]
    elif how == "trailing":
        data += b"\0"
    return bytes(data), expected


@pytest.mark.parametrize("how, message", [
    ("magic", "is not a holoclone pack"), ("kind", "malformed record header"),
    ("size", "where its signed catalog says 5"), ("unnamed", "which its signed catalog does not name"),
    ("twice", "twice"), ("end", "malformed end record"), ("boundary", "truncated .* before its end record"),
    ("trailing", "larger than its catalog's objects can be"),
])
def test_a_damaged_pack_is_refused_in_one_sentence(objects, tmp_path, how, message):
    data, expected = _damaged(objects, how)
    with pytest.raises(HoloCloneError, match=message) as refused:
        _read(data, expected, tmp_path / "out")
    assert "nothing was pulled" in str(refused.value) and "\n" not in str(refused.value)


def test_a_record_may_not_claim_more_than_a_record_object_can_be(tmp_path):
    digest = hashlib.sha256(b"").hexdigest()
    data = pack.MAGIC + pack.HEADER.pack(pack.OBJECT, bytes.fromhex(digest), pack.RECORD_MAX + 1)
    with pytest.raises(HoloCloneError, match="more than a RECORD may have"):
        _read(data, {(digest, False): None}, tmp_path / "out")
