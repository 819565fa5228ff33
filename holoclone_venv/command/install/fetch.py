"""The planned wheels, in the store: found by sha256, else copied from a local file or downloaded by pip.

A wheel is looked up as ``wheels/<sha256>/<file name>`` (kept read-only by
the store) and its digest checked (remembered by name, size and mtime).  A
missing one is copied from its ``file:`` URL (a find-links folder), or
fetched with the environment's pip, ``pip download --no-deps`` of the exact
URL with the index options of the original command line, and kept only when
its sha256 is the one pip's plan named.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from ...fsutil import hash_file
from .pipargs import VALUED
from .plan import InstallError, run_pip

if TYPE_CHECKING:
    from ...store import Store
    from ...store.catalog import Catalog

LOG = logging.getLogger("holoclone")

#: Options a ``pip download`` of one exact URL needs from the original command line: where and how to connect.
_NETWORK = {"-i", "--index-url", "--extra-index-url", "--no-index", "-f", "--find-links", "--trusted-host", "--cert",
            "--client-cert", "--proxy", "--retries", "--timeout", "--isolated", "--keyring-provider", "--cache-dir",
            "--no-cache-dir"}


#: What pip gives the install of a build environment's requirements: where to look, and how to choose.
BUILD_ENV_OPTIONS = _NETWORK | {"--pre", "--prefer-binary", "--only-binary", "--no-binary"}


def network_options(forwarded: list[str], names: frozenset[str] | set[str] = _NETWORK) -> list[str]:
    """The options among ``forwarded`` (each with its value) named in ``names``: by default, how to connect."""
    kept: list[str] = []
    i = 0
    while i < len(forwarded):
        arg = forwarded[i]
        name = arg.partition("=")[0] if arg.startswith("--") else arg[:2]
        takes_value = "=" not in arg and name in VALUED and (arg.startswith("--") or len(arg) == 2)
        width = 2 if takes_value else 1
        if name in names:
            kept += forwarded[i:i + width]
        i += width
    return kept


def store_wheels(store: Store, items: list[dict], pip: list[str], forwarded: list[str]) -> dict[str, Path]:
    """``{item name: kept wheel}`` for every ``store`` item, fetching what is missing; fills in a missing sha256.

    Raises :class:`InstallError` when pip cannot fetch a wheel or one does not match the plan's sha256.
    """
    found: dict[str, Path] = {}
    missing: list[dict] = []
    for item in items:
        path = _kept(store, item)
        if path is not None:
            found[item["name"]] = path
        else:
            missing.append(item)
    if not missing:
        return found
    store.require_writable("the planned wheels")
    staging = store.staging_dir("download")
    try:
        remote = [item for item in missing if not item["url"].startswith("file:")]
        for item in missing:
            if item not in remote:
                from urllib.request import url2pathname  # imports http.client and email: only when needed

                source = url2pathname(urlparse(item["url"]).path)
                try:
                    shutil.copyfile(source, staging / item["filename"])
                except OSError as error:
                    raise InstallError(f"cannot read the wheel {source}: {error.strerror or error}.") from None
        if remote:
            _download(pip, [item["url"] for item in remote], staging, forwarded)
        for item in missing:
            staged = staging / item["filename"]
            if not staged.is_file():
                raise InstallError(f"pip did not download {item['filename']} from {item['url']}.")
            digest, _ = hash_file(staged)
            if item["sha256"] and digest != item["sha256"]:
                raise InstallError(f"{item['filename']} from {item['url']} has sha256 {digest}, not the {item['sha256']} "
                                   "pip's plan named; nothing was installed.", "Run again with --refresh.")
            item["sha256"] = digest
            found[item["name"]] = store.adopt_wheel(staged, item["filename"], digest)
    except OSError as error:
        raise InstallError(f"keeping the planned wheels in {store.root} failed: {error.strerror or error}.",
                           "Check free space and permissions of the store.") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return found


def stored_catalog(store: Store, item: dict, tag: str) -> Catalog | None:
    """The store's catalog of a planned wheel for ``tag``, by the wheel's sha256 (its objects are checked as
    they are linked); None when there is none yet."""
    from ...store.catalog import catalog_key, is_sha256

    return store.load_catalog(catalog_key(item["sha256"], tag)) if is_sha256(item["sha256"]) else None


def _kept(store: Store, item: dict) -> Path | None:
    """The store's copy of the item's wheel when it is there and whole, else None."""
    name, digest = item["filename"], item["sha256"]
    if not digest or "/" in name or os.sep in name:
        return None
    path = store.wheel_path(name, digest)
    try:
        return path if store.wheel_digest(path) == digest else None
    except OSError:
        return None


def _download(pip: list[str], urls: list[str], dest: Path, forwarded: list[str]) -> None:
    cmd = [*pip, "download", "--no-deps", "--dest", str(dest), "--disable-pip-version-check", "--progress-bar", "off",
           *network_options(forwarded), *urls]
    LOG.debug("holoclone: fetching %d wheel%s with pip", len(urls), "" if len(urls) == 1 else "s")
    result = run_pip(cmd)
    if result.returncode:
        from ...seeding.dependencies import last_pip_error

        raise InstallError(f"pip could not download the planned wheels: {last_pip_error(result.stderr, result.stdout)}",
                           "Nothing was installed.")
