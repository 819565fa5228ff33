"""Transports: reading and writing the files of a remote store, by URL scheme.

``file://DIR`` a shared directory (symlinks inside it are never followed);
``http://`` and ``https://`` read-only (any static web server);
``s3://bucket/prefix`` any S3-compatible service through obstore, with the
standard AWS settings (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``...,
web-identity and instance roles; ``AWS_PROFILE`` through boto3 when installed).

Every method is safe to call from several threads.  Failures are one
:class:`RemoteError` sentence naming the remote; a missing file is not a
failure (``get``/``fetch`` return None/False).
"""

from __future__ import annotations

import errno
import os
import threading
from typing import Callable, Iterator, Protocol
from urllib.parse import urlsplit

from ..errors import HoloCloneError, RemoteError
from .keys import INSTALL_HINT
from .layout import RemoteUnavailable

_CHUNK = 1 << 20
TIMEOUT = 30.0


class Transport(Protocol):
    url: str
    writable: bool

    def get(self, name: str, limit: int) -> bytes | None:
        """The whole file ``name`` (small ones: markers, catalogs, signatures), or None when absent;
        raises rather than read more than ``limit`` bytes."""

    def fetch(self, name: str, write: Callable[[bytes], object]) -> bool:
        """Stream ``name`` into ``write`` chunk by chunk; False when absent."""

    def put(self, name: str, data: bytes) -> None:
        """Make ``name`` hold ``data``, whole: a reader never sees part of it."""

    def put_file(self, name: str, path: str) -> None:
        """Upload a local file as ``name``, whole."""

    def list(self, prefix: str) -> Iterator[str]:
        """Names under ``prefix`` (e.g. ``objects/``)."""


def open_remote(url: str) -> Transport:
    """The transport for ``url``; raises :class:`RemoteError` for a URL holoclone cannot use."""
    from ..settings import check_remote_url

    scheme = urlsplit(check_remote_url(url)).scheme.lower()
    if scheme == "file":
        return FileTransport(url)
    if scheme in ("http", "https"):
        return HTTPTransport(url)
    return S3Transport(url)


def _get(transport: Transport, name: str, limit: int) -> bytes | None:
    """``transport.get``: the file through ``fetch``, stopped as soon as it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0

    def take(block: bytes) -> None:
        nonlocal size
        size += len(block)
        if size > limit:  # before the rest is read: a hostile remote cannot fill memory
            raise RemoteError(f"{name} on the remote {transport.url} is larger than {limit:,} bytes, more than "
                                 "holoclone writes there; it was not used.", "Remove it from the remote and push again.")
        chunks.append(block)

    return b"".join(chunks) if transport.fetch(name, take) else None


def _failed(url: str, doing: str, error: object) -> RemoteError:
    reason = getattr(error, "strerror", None) or getattr(error, "reason", None) or str(error) or type(error).__name__
    return RemoteUnavailable(f"the remote {url} failed while {doing}: {str(reason).splitlines()[0][:200]}.",
                          "Check the URL and that the server answers; run again to complete what was left.")


class FileTransport:
    """A directory; reads open every path component without following symlinks."""

    writable = True

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise RemoteError(f"the remote {url} names a host; file:// remotes are local directories.")
        self.url = url.rstrip("/")
        self.root = os.path.abspath(parts.path)

    def _open(self, name: str) -> int | None:
        """A descriptor for ``name`` under the root, opened component by component with O_NOFOLLOW."""
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            directory = os.open(self.root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except FileNotFoundError:
            return None
        except OSError as error:  # not a directory, not readable
            raise _failed(self.url, "opening it", error) from None
        try:
            *folders, last = name.split("/")
            for folder in folders:
                inner = os.open(folder, flags | getattr(os, "O_DIRECTORY", 0), dir_fd=directory)
                os.close(directory)
                directory = inner
            # O_NONBLOCK: opening a FIFO (or a device) someone put there must not wait for a writer;
            # fetch refuses anything but a regular file, where the flag changes nothing.
            return os.open(last, flags | getattr(os, "O_NONBLOCK", 0), dir_fd=directory)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise RemoteError(f"the remote {self.url} has a symlink at {name}; it is never followed.",
                                     "Remove the link from the shared directory.") from None
            raise _failed(self.url, f"reading {name}", error) from None
        finally:
            os.close(directory)

    def get(self, name: str, limit: int) -> bytes | None:
        return _get(self, name, limit)

    def fetch(self, name: str, write: Callable[[bytes], object]) -> bool:
        fd = self._open(name)
        if fd is None:
            return False
        try:
            import stat

            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise RemoteError(f"the remote {self.url} has something other than a file at {name}.")
            with os.fdopen(fd, "rb", closefd=False) as handle:
                for block in iter(lambda: handle.read(_CHUNK), b""):
                    write(block)
        except OSError as error:
            raise _failed(self.url, f"reading {name}", error) from None
        finally:
            os.close(fd)
        return True

    def _target(self, name: str) -> str:
        final = os.path.join(self.root, *name.split("/"))
        folder = os.path.dirname(final)
        os.makedirs(folder, exist_ok=True)
        if os.path.realpath(folder) != os.path.join(os.path.realpath(self.root), *name.split("/")[:-1]):
            raise RemoteError(f"the remote {self.url} has a symlink on the way to {name}; nothing is written through it.")
        return final

    def put(self, name: str, data: bytes) -> None:
        self._write(name, lambda handle: handle.write(data))

    def put_file(self, name: str, path: str) -> None:
        import shutil

        def copy(handle) -> None:
            with open(path, "rb") as source:
                shutil.copyfileobj(source, handle, _CHUNK)

        self._write(name, copy)

    def _write(self, name: str, fill: Callable) -> None:
        try:
            final = self._target(name)
            staged = f"{final}.tmp.{os.getpid()}.{threading.get_ident()}.{os.urandom(4).hex()}"
            try:
                with open(staged, "xb") as handle:
                    fill(handle)
                os.chmod(staged, 0o644)
                os.replace(staged, final)  # unique temporary name, then one rename: concurrent pushers are safe
            finally:
                if os.path.lexists(staged):
                    os.unlink(staged)
        except OSError as error:
            raise _failed(self.url, f"writing {name}", error) from None

    def list(self, prefix: str) -> Iterator[str]:
        top = os.path.join(self.root, prefix.strip("/"))
        for dirpath, dirnames, filenames in os.walk(top):  # os.walk does not follow symlinked folders
            relative = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
            for filename in filenames:
                yield f"{relative}/{filename}"


class HTTPTransport:
    """A pushed tree served by a static web server: read-only, one kept-alive connection per thread."""

    writable = False

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        parts = urlsplit(self.url)
        self.https = parts.scheme.lower() == "https"
        self.host = parts.netloc
        self.base = parts.path
        self.local = threading.local()

    def _connection(self, fresh: bool = False):
        import http.client

        if fresh or getattr(self.local, "connection", None) is None:
            if getattr(self.local, "connection", None) is not None:
                self.local.connection.close()
            if self.https:
                import ssl

                self.local.connection = http.client.HTTPSConnection(self.host, timeout=TIMEOUT,
                                                                    context=ssl.create_default_context())
            else:
                self.local.connection = http.client.HTTPConnection(self.host, timeout=TIMEOUT)
        return self.local.connection

    def fetch(self, name: str, write: Callable[[bytes], object]) -> bool:
        import http.client
        from urllib.parse import quote

        from .deadline import WATCHDOG

        path = f"{self.base}/{quote(name)}"
        for attempt in (0, 1):
            connection = self._connection(fresh=attempt > 0)
            written = False
            timer = None
            try:
                if connection.sock is None:
                    connection.connect()  # bounded by the socket timeout; the deadline covers the rest
                timer = WATCHDOG.start(connection.sock)
                connection.request("GET", path, headers={"User-Agent": "holoclone-venv"})
                response = connection.getresponse()
                if response.status == 404 or response.status == 403 and not self.url.startswith("http:"):
                    response.read()
                    return False
                if response.status != 200:
                    response.read()
                    raise RemoteUnavailable(f"the remote {self.url} answered {response.status} {response.reason} for {name}.",
                                            "Check the URL and the server; run again to complete what was left.")
                try:  # read1: whatever one read brings, so the deadline sees each block as it comes
                    for block in iter(lambda: response.read1(_CHUNK), b""):
                        written = True
                        timer.got(len(block))
                        write(block)
                except HoloCloneError:
                    self._connection(fresh=True)  # the caller refused the stream midway: the rest is unread
                    raise
                if timer.expired or response.length:  # cut off, or closed before its Content-Length: not whole
                    raise http.client.IncompleteRead(b"", response.length)
                if response.will_close:
                    self._connection(fresh=True)
                return True
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as error:
                # A kept-alive connection the server closed is retried once; not one that was cut off.
                if attempt or written or timer is not None and timer.expired:
                    raise self._broken(name, error, timer) from None
            except (OSError, http.client.HTTPException) as error:
                raise self._broken(name, error, timer) from None
            finally:
                if timer is not None:
                    WATCHDOG.stop(timer)
        return False  # not reached

    def _broken(self, name: str, error: BaseException, timer) -> RemoteError:
        self.local.connection = None  # half read: never used again
        if timer is not None and timer.expired:
            return RemoteUnavailable(f"the remote {self.url} was cut off while sending {name}: {timer.describe()}.",
                                     "Check the server and the network; run again to complete what was left.")
        return _failed(self.url, f"reading {name}", error)

    def get(self, name: str, limit: int) -> bytes | None:
        return _get(self, name, limit)

    def _read_only(self, name: str) -> RemoteError:
        return RemoteError(f"the remote {self.url} is read-only over HTTP, so {name} cannot be written there.",
                              "Push to the s3:// or file:// location the web server serves.")

    def put(self, name: str, data: bytes) -> None:
        raise self._read_only(name)

    def put_file(self, name: str, path: str) -> None:
        raise self._read_only(name)

    def list(self, prefix: str) -> Iterator[str]:
        raise RemoteError(f"the remote {self.url} cannot be listed over HTTP.",
                             "Name the catalogs (their keys) instead of --all.")


#: The overall bound of one S3 request where obstore has no read_timeout (before 0.11).
OLD_OBSTORE_TIMEOUT = "10min"


def _obstore_reads_timeout() -> bool:
    """Whether the installed obstore bounds stalls (``read_timeout``, since 0.11) rather than whole requests."""
    import obstore

    return tuple(int(p) if p.isdigit() else 0 for p in obstore.__version__.split(".")[:2]) >= (0, 11)


class S3Transport:
    """A bucket and prefix of an S3-compatible service, through obstore (chosen by measurement: docs/fleet.md)."""

    writable = True

    def __init__(self, url: str) -> None:
        try:
            import obstore  # noqa: F401
            from obstore.store import S3Store
        except ImportError:
            raise RemoteError("s3:// remotes need the 'obstore' package, which is not installed.", INSTALL_HINT) from None
        parts = urlsplit(url)
        if not parts.netloc:
            raise RemoteError(f"the remote {url} names no bucket.", "Example: s3://my-bucket/holoclone")
        self.url = url.rstrip("/")
        self.prefix = parts.path.strip("/")
        # A stall (no byte for TIMEOUT seconds) fails; a slow but steady transfer does not, however
        # long: the overall timeout only stops one that would never end.  obstore before 0.11 (all
        # that Python 3.9 gets) has no read_timeout: there the whole transfer is bounded instead, by
        # OLD_OBSTORE_TIMEOUT, long enough for a big pack on a slow link.
        bounds = ({"read_timeout": f"{int(TIMEOUT)}s", "timeout": "24h"} if _obstore_reads_timeout()
                  else {"timeout": OLD_OBSTORE_TIMEOUT})
        options: dict = {"client_options": {**bounds, "connect_timeout": "5s"}}
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            options["endpoint"] = endpoint
            options["client_options"]["allow_http"] = endpoint.startswith("http://")
            options.setdefault("virtual_hosted_style_request", False)
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region:
            options["region"] = region
        if os.environ.get("AWS_PROFILE") and not os.environ.get("AWS_ACCESS_KEY_ID"):
            try:  # profiles (and SSO) as the AWS CLI reads them
                import boto3
                from obstore.auth.boto3 import Boto3CredentialProvider

                options["credential_provider"] = Boto3CredentialProvider(boto3.Session())
            except ImportError:
                raise RemoteError("AWS_PROFILE needs boto3 to read profiles, and it is not installed.",
                                     "pip install boto3, or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY.") from None
        from datetime import timedelta

        options["retry_config"] = {"max_retries": 2, "retry_timeout": timedelta(seconds=20),
                                   "backoff": {"init_backoff": timedelta(milliseconds=100),
                                               "max_backoff": timedelta(seconds=2), "base": 2}}
        try:
            self.store = S3Store(parts.netloc, **options)
        except Exception as error:
            raise _failed(self.url, "opening the bucket", error) from None

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def fetch(self, name: str, write: Callable[[bytes], object]) -> bool:
        import obstore
        from obstore.exceptions import NotFoundError

        try:
            result = obstore.get(self.store, self._key(name))
            for block in result.stream(min_chunk_size=_CHUNK):
                write(bytes(block))
        except (NotFoundError, FileNotFoundError):
            return False
        except HoloCloneError:
            raise
        except Exception as error:
            raise _failed(self.url, f"reading {name}", error) from None
        return True

    def get(self, name: str, limit: int) -> bytes | None:
        return _get(self, name, limit)

    def put(self, name: str, data: bytes) -> None:
        import obstore

        try:
            obstore.put(self.store, self._key(name), data)  # a PUT is atomic: whole or absent
        except Exception as error:
            raise _failed(self.url, f"writing {name}", error) from None

    def put_file(self, name: str, path: str) -> None:
        import obstore
        from pathlib import Path

        try:
            obstore.put(self.store, self._key(name), Path(path))
        except Exception as error:
            raise _failed(self.url, f"writing {name}", error) from None

    def list(self, prefix: str) -> Iterator[str]:
        import obstore

        skip = len(self.prefix) + 1 if self.prefix else 0
        try:
            for batch in obstore.list(self.store, prefix=self._key(prefix), chunk_size=1000):
                for meta in batch:
                    yield meta["path"][skip:]
        except Exception as error:
            raise _failed(self.url, f"listing {prefix}", error) from None
