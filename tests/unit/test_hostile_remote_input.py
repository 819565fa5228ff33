"""A hostile remote store and a hostile bundle: stale answers, endless input, dripping servers, deep JSON.

Real parts: real stores with real catalogs (tests/unit/conftest.py), real
Ed25519 signatures, file:// remotes in tmp_path and HTTP servers of the
test's own on loopback, each bounded so that a regression ends the test
instead of hanging it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import tarfile
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from holoclone_venv.errors import BundleError, ConfigError, HoloCloneError, RemoteError
from holoclone_venv.command.maintenance.bundle import BUNDLE_HEADER, export, import_bundle
from holoclone_venv.remote import deadline, find_resolution, layout, not_used, sync
from holoclone_venv.remote.keys import TrustedKeys, Untrusted, generate
from holoclone_venv.remote.sync import fetch_resolution, pull, push, remote_catalog_keys
from holoclone_venv.remote.transport import open_remote
from holoclone_venv.settings import Settings
from holoclone_venv.store import Store

pytest.importorskip("cryptography")
TAG = "cpython-311"
DEEP = b"[" * 200_000 + b"]" * 200_000  # parses fine as a structure, but past Python's recursion limit


@pytest.fixture
def fleet(store, make_catalog, tmp_path):
    """A store with one catalog, pushed signed to a file:// remote; a fresh target store to pull into."""
    catalog = make_catalog(store, "demo", {"demo/__init__.py": b"x = 1\n" * 500, "demo/data.bin": os.urandom(3000)})
    key = generate("fleet")
    url = f"file://{tmp_path / 'remote'}"
    push(store, open_remote(url), [catalog], key)
    target = Store(tmp_path / "target", lock_timeout=5.0)
    return SimpleNamespace(store=store, catalog=catalog, key=key, url=url, root=tmp_path / "remote", target=target,
                           trusted=TrustedKeys.parse([str(key.public)]))


def _nothing_pulled(target: Store) -> None:
    assert not any(target.iter_catalogs()) and not any(target.iter_objects())


# -- 6. every document capped before it is parsed; every object stopped at its signed size -----------
@pytest.mark.parametrize("document", ["marker", "catalog", "signature"])
def test_an_oversized_document_is_refused_before_it_is_parsed(document, fleet):
    path = fleet.root / {"marker": layout.MARKER, "catalog": layout.catalog_name(fleet.catalog.key),
                         "signature": layout.catalog_signature(fleet.catalog.key)}[document]
    limit = {"marker": layout.MARKER_MAX, "catalog": layout.CATALOG_MAX, "signature": layout.SIGNATURE_MAX}[document]
    path.unlink()
    with open(path, "wb") as handle:
        handle.truncate(limit + 1)  # sparse: as large as a hostile remote likes, at no cost to the test
    with pytest.raises(RemoteError) as caught:
        pull(fleet.target, open_remote(fleet.url), fleet.trusted, [fleet.catalog.key])
    assert f"larger than {limit:,} bytes" in caught.value.message, caught.value
    _nothing_pulled(fleet.target)


def test_an_oversized_resolution_is_refused(fleet):
    key = "ab" * 32
    (fleet.root / "resolutions").mkdir(exist_ok=True)
    with open(fleet.root / layout.resolution_name(key), "wb") as handle:
        handle.truncate(layout.RESOLUTION_MAX + 1)
    with pytest.raises(RemoteError, match="larger than"):
        fetch_resolution(fleet.target, open_remote(fleet.url), fleet.trusted, key)


def test_an_object_is_read_no_further_than_its_signed_size(fleet):
    import shutil

    shutil.rmtree(fleet.root / "packs")  # object by object
    entry = max(fleet.catalog.entries, key=lambda e: e.size)
    victim = fleet.root / layout.object_name(entry.digest, False)
    good = victim.read_bytes()
    victim.unlink()
    with open(victim, "wb") as handle:  # its bytes, then 256 MiB more (sparse)
        handle.write(good)
        handle.truncate(len(good) + (256 << 20))
    with pytest.raises(RemoteError) as caught:
        pull(fleet.target, open_remote(fleet.url), fleet.trusted, [fleet.catalog.key])
    assert f"larger than the {entry.size:,} bytes its signed catalog gives" in caught.value.message, caught.value
    _nothing_pulled(fleet.target)


# -- 8. deep JSON and odd URLs: one sentence, never a traceback --------------------------------------
def test_deeply_nested_remote_documents_are_one_sentence_and_not_store_advice(fleet):
    (fleet.root / layout.catalog_name(fleet.catalog.key)).write_bytes(DEEP)
    with pytest.raises(RemoteError) as caught:
        pull(fleet.target, open_remote(fleet.url), fleet.trusted, [fleet.catalog.key])
    assert "malformed" in caught.value.message and "verify --repair" not in str(caught.value), caught.value
    assert "push it again" in caught.value.hint
    _nothing_pulled(fleet.target)
    key = "cd" * 32
    (fleet.root / "resolutions").mkdir(exist_ok=True)
    (fleet.root / layout.resolution_name(key)).write_bytes(DEEP)
    with pytest.raises(RemoteError, match="nested too deeply"):
        fetch_resolution(fleet.target, open_remote(fleet.url), fleet.trusted, key)


@pytest.mark.parametrize("url", ["http://[::1", "http://127.0.0.1:abc/", "https://", "s3://", "ftp://host/x"])
def test_odd_remote_urls_are_refused_in_one_sentence(url):
    from holoclone_venv.settings import check_remote_url

    with pytest.raises(ConfigError) as caught:
        check_remote_url(url)
    assert caught.value.message.startswith(f"the remote {url!r}") and "\n" not in str(caught.value)
    with pytest.raises(ConfigError):  # store push/pull name the URL themselves
        open_remote(url)


# -- 7. a FIFO in a file:// remote; servers that drip ------------------------------------------------
def test_a_fifo_in_a_file_remote_does_not_block(fleet):
    marker = fleet.root / layout.MARKER
    marker.unlink()
    os.mkfifo(marker)
    outcome: list = []
    worker = threading.Thread(target=lambda: outcome.append(_raised(remote_catalog_keys, open_remote(fleet.url))))
    worker.start()
    worker.join(60)
    released = worker.is_alive()
    if released:  # the read is blocked waiting for a writer: release it so the test ends, and fail
        with open(marker, "wb"):
            pass
        worker.join()
    assert not released, "opening a FIFO in the remote blocked"
    assert isinstance(outcome[0], HoloCloneError) and "something other than a file" in outcome[0].message


def _raised(function, *args) -> BaseException | None:
    try:
        function(*args)
    except BaseException as error:  # noqa: BLE001 - handed to the test thread
        return error
    return None


class _Drip:
    """A loopback server answering every request with the first ``first`` bytes of ``data`` at once, then
    the rest in ``step``-byte pieces ``pause`` seconds apart, then closing: bounded, whatever the client does."""

    def __init__(self, data: bytes, first: int, step: int, pause: float) -> None:
        self.data, self.first, self.step, self.pause = data, first, step, pause
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def _serve(self) -> None:
        self.listener.settimeout(0.1)  # so that close() is seen: closing a socket does not wake accept()
        while not self.stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            connection.settimeout(None)
            with connection:
                connection.recv(65536)
                try:
                    connection.sendall(self.data[:self.first])
                    for at in range(self.first, len(self.data), self.step):
                        if self.stop.wait(self.pause):
                            return
                        connection.sendall(self.data[at:at + self.step])
                except OSError:
                    continue  # the client gave up

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.listener.close()


@pytest.fixture
def short_deadlines(monkeypatch):
    """Deadlines of a second instead of thirty, so a test of them takes seconds."""
    monkeypatch.setattr(deadline, "GRACE", 1.0)
    monkeypatch.setattr(deadline, "MIN_RATE", 4096)


@pytest.mark.parametrize("where", ["body", "headers"])
def test_a_dripping_http_server_is_cut_off(where, short_deadlines, tmp_path):
    marker = layout.marker()
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n" % len(marker) + b"X-Pad: " + b"a" * 40 + b"\r\n\r\n"
    # One byte every 0.25 s: never too slow for a per-read timeout; ~35 s at most, should the deadline not hold.
    server = _Drip(head + marker, 0 if where == "headers" else len(head), 1, 0.25)
    try:
        target = Store(tmp_path / "t", lock_timeout=5.0)
        with pytest.raises(RemoteError) as caught:
            pull(target, open_remote(server.url), TrustedKeys(), ["ab" * 32 + "-" + TAG])
    finally:
        server.close()
    assert "was cut off while sending holoclone-remote.json" in caught.value.message, caught.value
    assert "slower than the 4 KiB/s" in caught.value.message


def test_a_slow_but_steady_http_transfer_longer_than_the_grace_succeeds(short_deadlines):
    body = os.urandom(24 << 10)
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
    server = _Drip(head + body, len(head), 2048, 0.2)  # ~10 KiB/s for ~2.5 s: above the rate, past the grace
    try:
        got = open_remote(server.url).get("packs/x", 1 << 20)
    finally:
        server.close()
    assert hashlib.sha256(got or b"").digest() == hashlib.sha256(body).digest()


# -- 5. rollback: a validly signed but superseded resolution -----------------------------------------
def test_a_superseded_resolution_is_refused_once_the_store_has_seen_a_newer_one(fleet, make_catalog):
    """The remote is rolled back to an older signed resolution: a store that saw the newer one refuses it."""
    newer = make_catalog(fleet.store, "demo", {"demo/__init__.py": b"x = 2\n"}, version="2.0")
    key = "ef" * 32
    remote = open_remote(fleet.url)

    def resolved(catalog, serial: int) -> None:
        fleet.store.write_resolution(key, {"format": 1, "requirements": [], "specs": ["demo"], "serial": serial,
                                           "wheels": [[catalog.wheel, catalog.wheel_sha256]]})
        push(fleet.store, remote, [fleet.catalog, newer], fleet.key)

    resolved(fleet.catalog, 100)
    stale = {name: (fleet.root / name).read_bytes()
             for name in (layout.resolution_name(key), layout.resolution_signature(key))}
    resolved(newer, 200)  # re-resolved: the push supersedes the remote's older answer
    settings = Settings(store=str(fleet.target.root), strategy="smart", strategy_source="default", remote=fleet.url,
                        trusted_keys=(str(fleet.key.public),))
    fleet.target.check(create=True)
    first = find_resolution(settings, fleet.target, key, TAG)
    assert first is not None and [p.name for p in first] == [newer.wheel]
    for name, data in stale.items():  # the rollback: validly signed, but older
        (fleet.root / name).write_bytes(data)
    fleet.target.catalog_path(newer.key).unlink()  # the store lost a catalog: it asks the remote again
    sync._just_pulled.clear()  # as a later process sees the store (this one remembers what it just pulled)
    assert find_resolution(settings, fleet.target, key, TAG) is None  # pip resolves instead
    assert "older (serial 100) than the one this store has already seen (serial 200)" in not_used(fleet.url)


# -- 9. bundles ------------------------------------------------------------------------------------
def _rebuilt(source: str, target: Path, extra: list[tuple[str, bytes]]) -> str:
    """The bundle ``source`` with ``extra`` members after its header (its signature still holds)."""
    with tarfile.open(source) as old, tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as new:
        for index, member in enumerate(old):
            new.addfile(member, old.extractfile(member))
            for name, data in extra if index == 0 else []:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                new.addfile(info, io.BytesIO(data))
    return str(target)


def _member(data: bytes, named: bytes | None = None) -> tuple[str, bytes]:
    digest = hashlib.sha256(data if named is None else named).hexdigest()
    return f"objects/{digest[:2]}/{digest[2:]}", data


def test_an_unsigned_bundle_is_refused_before_any_of_its_data_is_read(fleet, tmp_path):
    unsigned = export(fleet.store, [fleet.catalog], str(tmp_path / "unsigned.tar")).output
    # An object whose bytes are not its name: were objects read before the signature, this would be the error.
    hostile = _rebuilt(unsigned, tmp_path / "hostile.tar", [_member(b"x" * 4096, named=b"other")])
    for trusted, words in ((fleet.trusted, "is not signed"),
                           (TrustedKeys.parse([str(generate("other").public)]), "not signed")):
        with pytest.raises(Untrusted) as caught:
            import_bundle(fleet.target, hostile, trusted=trusted)
        assert words in caught.value.message, caught.value
    signed = export(fleet.store, [fleet.catalog], str(tmp_path / "signed.tar"), signer=generate("stranger")).output
    hostile = _rebuilt(signed, tmp_path / "hostile2.tar", [_member(b"x" * 4096, named=b"other")])
    with pytest.raises(Untrusted, match="signed by stranger, which is not a trusted key"):
        import_bundle(fleet.target, hostile, trusted=fleet.trusted)
    _nothing_pulled(fleet.target)


def test_a_signed_bundle_adopts_only_objects_its_catalogs_name(fleet, tmp_path):
    signed = export(fleet.store, [fleet.catalog], str(tmp_path / "signed.tar"), signer=fleet.key).output
    extra = b"#!/bin/sh\necho planted\n"
    bundle = _rebuilt(signed, tmp_path / "extra.tar", [_member(extra)])
    result = import_bundle(fleet.target, bundle, trusted=fleet.trusted)
    assert result.imported == ["demo 1.0"] and fleet.target.load_catalog(fleet.catalog.key) == fleet.catalog
    digest = hashlib.sha256(extra).hexdigest()
    assert not os.path.lexists(fleet.target.object_path(digest, False))
    assert {d for d, _, _ in fleet.target.iter_objects()} == {d for d, _ in fleet.catalog.objects()}


def test_deeply_nested_bundle_documents_are_one_sentence(fleet, tmp_path):
    signed = export(fleet.store, [fleet.catalog], str(tmp_path / "signed.tar"), signer=fleet.key).output
    for member, data in ((BUNDLE_HEADER, DEEP), (f"catalogs/{fleet.catalog.key}.json", DEEP)):
        bundle = tmp_path / "deep.tar"
        with tarfile.open(signed) as old, tarfile.open(bundle, "w", format=tarfile.PAX_FORMAT) as new:
            for item in old:
                body = data if item.name == member else old.extractfile(item).read()
                item.size = len(body)
                new.addfile(item, io.BytesIO(body))
        with pytest.raises(BundleError) as caught:
            import_bundle(fleet.target, str(bundle), trusted=fleet.trusted if member != BUNDLE_HEADER else None)
        assert "nothing was imported" in caught.value.message.lower(), caught.value
    _nothing_pulled(fleet.target)


def test_store_import_names_each_catalog_it_imported(fleet, tmp_path):
    from helpers import holoclone

    signed = export(fleet.store, [fleet.catalog], str(tmp_path / "signed.tar"), signer=fleet.key).output
    result = holoclone("store", "import", signed, "--trusted-keys", str(fleet.key.public), store=fleet.target.root)
    assert result.returncode == 0, result.stderr
    assert "imported 1 catalog (demo 1.0) and" in result.stdout, result.stdout
    again = holoclone("--json", "store", "import", signed, "--trusted-keys", str(fleet.key.public),
                      store=fleet.target.root)
    assert json.loads(again.stdout)["imported"] == []
