"""The s3:// transport's client, as the installed obstore builds it (no server is contacted).

obstore learnt ``read_timeout`` (a stall bound) in 0.11, which needs Python 3.10; Python 3.9 gets
0.8 at most, and an option it does not know is refused when the store is made.  So an ``s3://``
remote must open with whatever obstore the interpreter can have: CI runs this on every Python.
"""

from __future__ import annotations

import pytest

pytest.importorskip("obstore")


def test_an_s3_remote_opens_with_the_obstore_this_python_can_have(monkeypatch):
    import obstore

    from holoclone_venv.remote import transport

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # never contacted: nothing is read
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    remote = transport.S3Transport("s3://bucket/prefix")
    assert remote.url == "s3://bucket/prefix" and remote.prefix == "prefix"
    version = tuple(int(p) for p in obstore.__version__.split(".")[:2])
    # Stalls are bounded where obstore can (0.11+); elsewhere each request as a whole.
    assert transport._obstore_reads_timeout() is (version >= (0, 11))
