"""Ed25519 keys for remote stores and bundles: key files, trusted-key lists, canonical forms, signatures.

Keys are written as Nix writes its binary-cache keys: ``NAME:BASE64``.  A
public key is the 32 raw bytes of an Ed25519 public key; a secret key file
holds ``NAME:BASE64`` of the 32-byte seed (Nix's 64-byte seed+public form is
read too).  A signature is a line ``NAME:BASE64`` over a *canonical form*: a
domain string that says what kind of document it is, then the exact bytes
holoclone itself would write for it, so a signature for a catalog can never
be replayed as one for a resolution or a bundle, and nothing a document says
is left out of what is signed.

``cryptography`` is imported only when a key is used (the ``remote`` extra).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

from ..errors import ConfigError, HoloCloneError

if TYPE_CHECKING:
    from ..store.catalog import Catalog

DOMAIN_CATALOG = b"holoclone-catalog-v1\n"
DOMAIN_RESOLUTION = b"holoclone-resolution-v1\n"
DOMAIN_BUNDLE = b"holoclone-bundle-v1\n"
DOMAIN_INSTALL_PLAN = b"holoclone-install-plan-v1\n"
SIGNING_KEY_ENV = "VIRTUALENV_HOLOCLONE_SIGNING_KEY"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
INSTALL_HINT = 'Install the remote extra: pip install "holoclone-venv[remote]".'


def _ed25519():
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise HoloCloneError("signatures need the 'cryptography' package, which is not installed.", INSTALL_HINT) from None
    return ed25519


# -- canonical forms ----------------------------------------------------------------------------
def catalog_payload(catalog: Catalog) -> bytes:
    """What a catalog's signature covers: every field, entry and script, as ``Catalog.to_json`` writes them."""
    return DOMAIN_CATALOG + catalog.to_json()


def resolution_payload(key: str, document: dict) -> bytes:
    """What a resolution's signature covers: its key (what was asked) and its whole document (the answer)."""
    return DOMAIN_RESOLUTION + key.encode("ascii") + b"\n" + canonical_json(document)


def install_plan_payload(key: str, document: dict) -> bytes:
    """What an install plan's signature covers: its key (what pip was asked, where) and its whole document."""
    return DOMAIN_INSTALL_PLAN + key.encode("ascii") + b"\n" + canonical_json(document)


def bundle_payload(catalogs: Iterable[Catalog]) -> bytes:
    """What a bundle's signature covers: each catalog's key and the sha256 of its canonical form.

    Objects need no signature: they are named by their sha256 and checked on import.
    """
    lines = sorted(f"{c.key} {hashlib.sha256(catalog_payload(c)).hexdigest()}" for c in catalogs)
    return DOMAIN_BUNDLE + "\n".join(lines).encode("ascii")


def canonical_json(document: object) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


# -- keys -----------------------------------------------------------------------------------------
def _split(text: str, what: str) -> tuple[str, bytes]:
    name, sep, encoded = text.strip().partition(":")
    if not sep or not _NAME.match(name):
        raise ConfigError(f"{what} {text.strip()[:40]!r} is not NAME:BASE64.",
                          "Keys look like 'ci-2025:3q2+7w...'; 'holoclone store keygen' prints one.")
    try:
        return name, base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{what} {name!r} is not valid base64.") from None


@dataclass(frozen=True)
class PublicKey:
    name: str
    raw: bytes

    def __str__(self) -> str:
        return f"{self.name}:{base64.b64encode(self.raw).decode('ascii')}"

    def verifies(self, signature: bytes, payload: bytes) -> bool:
        ed25519 = _ed25519()  # first: without cryptography, its one-sentence error
        from cryptography.exceptions import InvalidSignature

        try:
            ed25519.Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, payload)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class SecretKey:
    name: str
    seed: bytes = field(repr=False)

    def _key(self):
        return _ed25519().Ed25519PrivateKey.from_private_bytes(self.seed)

    @property
    def public(self) -> PublicKey:
        key = self._key()  # first: without cryptography, its one-sentence error
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return PublicKey(self.name, key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    def sign(self, payload: bytes) -> str:
        """A signature line ``NAME:BASE64`` over ``payload``."""
        return f"{self.name}:{base64.b64encode(self._key().sign(payload)).decode('ascii')}"


def generate(name: str) -> SecretKey:
    if not _NAME.match(name):
        raise ConfigError(f"the key name {name!r} is not valid.",
                          "Use letters, digits, '.', '_' and '-' (e.g. the machine or CI project and a year).")
    return SecretKey(name, os.urandom(32))


def write_secret(key: SecretKey, path: str) -> None:
    """Write a secret key file readable by its owner only; never overwrites a file."""
    text = f"{key.name}:{base64.b64encode(key.seed).decode('ascii')}\n".encode("ascii")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise HoloCloneError(f"{path} exists already; a key file is never overwritten.", "Choose another -o FILE.") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(text)


def read_secret(path: str) -> SecretKey:
    try:
        text = open(path, encoding="ascii").read()
    except OSError as error:
        raise HoloCloneError(f"cannot read the signing key {path}: {error.strerror or error}.",
                             "Make one with 'holoclone store keygen NAME -o FILE'.") from None
    except UnicodeError:
        raise HoloCloneError(f"{path} is not a holoclone signing key.") from None
    name, raw = _split(text, "the signing key in")
    if len(raw) not in (32, 64):
        raise HoloCloneError(f"{path} is not an Ed25519 secret key ({len(raw)} bytes).")
    return SecretKey(name, raw[:32])


def signing_key(path: str | None, env) -> SecretKey:
    """The key ``--signing-key`` names, else ``$VIRTUALENV_HOLOCLONE_SIGNING_KEY``; raises when neither is set."""
    path = path or env.get(SIGNING_KEY_ENV)
    if not path:
        raise HoloCloneError("pushing needs a signing key, and none was given.",
                             f"Pass --signing-key FILE or set {SIGNING_KEY_ENV} (make one with 'holoclone store keygen').")
    return read_secret(os.path.expanduser(path))


# -- trust ---------------------------------------------------------------------------------------
class Untrusted(HoloCloneError):
    """A catalog, resolution or bundle is unsigned, signed by no trusted key, or its signature is wrong."""


@dataclass(frozen=True)
class TrustedKeys:
    keys: tuple[PublicKey, ...] = ()

    @classmethod
    def parse(cls, values: Iterable[str]) -> TrustedKeys:
        """Keys from ``NAME:BASE64`` items, each possibly a comma- or whitespace-separated list."""
        keys = []
        for value in values:
            for item in re.split(r"[,\s]+", value):
                if item:
                    name, raw = _split(item, "the trusted key")
                    if len(raw) != 32:
                        raise ConfigError(f"the trusted key {name!r} is not an Ed25519 public key ({len(raw)} bytes).")
                    keys.append(PublicKey(name, raw))
        return cls(tuple(keys))

    def _lines(self, signatures: bytes | str | None, what: str) -> list[str]:
        """The signature lines (at most 16); raises :class:`Untrusted` when there are none or no trusted keys."""
        if not self.keys:
            raise Untrusted(f"{what} cannot be trusted: no trusted keys are configured.",
                            "Pass --holoclone-trusted-keys NAME:KEY (or VIRTUALENV_HOLOCLONE_TRUSTED_KEYS).")
        if isinstance(signatures, bytes):
            signatures = signatures.decode("ascii", "replace")
        lines = [line.strip() for line in (signatures or "").splitlines() if line.strip()]
        if not lines:
            raise Untrusted(f"{what} is not signed.", "Push or export it with --signing-key.")
        return lines[:16]

    def named(self, signatures: Iterable[object], what: str) -> None:
        """Raise :class:`Untrusted` unless one of ``signatures`` at least names a trusted key.

        For a document whose payload comes after its data (a bundle's catalogs
        follow its objects): refused before any of that data is read.
        """
        names = {line.partition(":")[0] for line in self._lines("\n".join(map(str, signatures)), what)}
        if not names & {key.name for key in self.keys}:
            raise Untrusted(f"{what} is signed by {', '.join(sorted(names))[:80]}, which is not a trusted key.",
                            "Add its public key to --holoclone-trusted-keys if you trust whoever holds it.")

    def signer(self, signatures: bytes | str | None, payload: bytes, what: str) -> str:
        """The name of a trusted key that signed ``payload``; raises :class:`Untrusted` saying why none did."""
        lines = self._lines(signatures, what)
        names = []
        for line in lines:
            name, sep, encoded = line.partition(":")
            names.append(name)
            try:
                signature = base64.b64decode(encoded, validate=True) if sep else b""
            except (binascii.Error, ValueError):
                continue
            for key in self.keys:
                if key.name == name and key.verifies(signature, payload):
                    return name
        known = {key.name for key in self.keys}
        if any(name in known for name in names):
            raise Untrusted(f"{what} has a bad signature by {', '.join(n for n in names if n in known)}: "
                            "it was changed after it was signed.", "Do not use it; push it again from a good store.")
        raise Untrusted(f"{what} is signed by {', '.join(sorted(set(names)))[:80]}, which is not a trusted key.",
                        "Add its public key to --holoclone-trusted-keys if you trust whoever holds it.")
