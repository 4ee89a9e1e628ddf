"""Signed bundles: a lab key's Ed25519 signature over a bundle's SHA256SUMS.

SHA256SUMS lists the sha256 of every other file of a bundle (manifest.json and DATASHEET.md
included), so a signature over its exact bytes covers the whole bundle. Checksums alone show
that nothing was damaged on the way; they cannot show who made the bundle, since anyone who
changes a file can recompute them. A signature can: only the holder of the private key can
make one that a station's trusted public key accepts.

Keys are PEM files, as OpenSSL writes them (PKCS#8 private, SubjectPublicKeyInfo public), so
``openssl pkeyutl -verify -rawin`` can check a signature too. A key is named by its id: the
first 16 hex digits of the sha256 of its 32 raw public-key bytes. A station trusts the public
keys in ``<data-root>/keys/`` (``teleop keys trust``) and any named with ``--trusted-key``.

The signature file, ``SIGNATURE`` beside SHA256SUMS (not listed in it), is JSON::

    {"format": "teleop-bundle-signature/1", "algorithm": "ed25519", "signed_file": "SHA256SUMS",
     "key_id": "…", "public_key": "<base64 of 32 bytes>", "signature": "<base64 of 64 bytes>",
     "signed_utc": "…"}
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from teleop.export.atomic import ExportError

SIGNATURE = "SIGNATURE"
SIGNATURE_FORMAT = "teleop-bundle-signature/1"
KEYS_DIR = "keys"
_RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


class BundleKeyError(ExportError):
    """A key file is missing, unreadable or not an Ed25519 key."""


@dataclass(frozen=True)
class SignatureCheck:
    """A bundle's signature, checked: it matches SHA256SUMS; ``trusted`` if by a known key."""

    key_id: str
    trusted: bool
    signed_utc: str


def key_id(public: Ed25519PublicKey) -> str:
    """The first 16 hex digits of the sha256 of the key's raw 32 bytes."""
    return hashlib.sha256(public.public_bytes(*_RAW)).hexdigest()[:16]


def new_key(private_path: Path) -> tuple[Path, Path, str]:
    """Make a key pair: ``private_path`` (mode 0600) and ``<stem>.pub`` beside it.

    Returns:
        (private path, public path, key id).

    Raises:
        BundleKeyError: either file exists (keys are never overwritten) or cannot be written.
    """
    private_path = Path(private_path)
    public_path = private_path.with_suffix(".pub")
    if private_path == public_path:
        raise BundleKeyError(f"{private_path}: name the private key file NAME.key, not NAME.pub")
    key = Ed25519PrivateKey.generate()
    pem_private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    pem_public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for path in (private_path, public_path):
        if path.exists():
            raise BundleKeyError(f"{path}: exists; keys are never overwritten, choose another name")
    try:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem_private)
        with open(public_path, "xb") as f:
            f.write(pem_public)
    except OSError as exc:
        raise BundleKeyError(
            f"{exc.filename or private_path}: cannot write ({exc.strerror})"
        ) from None
    return private_path, public_path, key_id(key.public_key())


def load_private(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in the PEM file ``path``."""
    data = _read(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise BundleKeyError(
            f"{path}: not an unencrypted PEM private key ({exc}); make one with `teleop keys new`"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleKeyError(f"{path}: not an Ed25519 key; make one with `teleop keys new`")
    return key


def load_public(path: Path) -> Ed25519PublicKey:
    """The Ed25519 public key in the PEM file ``path``."""
    data = _read(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise BundleKeyError(f"{path}: not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BundleKeyError(f"{path}: not an Ed25519 public key")
    return key


def _read(path: Path, what: str) -> bytes:
    try:
        if not Path(path).is_file():
            raise BundleKeyError(f"{path}: no such {what} file")
        return Path(path).read_bytes()
    except OSError as exc:
        raise BundleKeyError(f"{path}: cannot read the {what} ({exc.strerror})") from None


def sign(sums: bytes, key: Ed25519PrivateKey) -> bytes:
    """The SIGNATURE file for a bundle whose SHA256SUMS is ``sums``."""
    public = key.public_key()
    body = {
        "format": SIGNATURE_FORMAT,
        "algorithm": "ed25519",
        "signed_file": "SHA256SUMS",
        "key_id": key_id(public),
        "public_key": base64.b64encode(public.public_bytes(*_RAW)).decode("ascii"),
        "signature": base64.b64encode(key.sign(sums)).decode("ascii"),
        "signed_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return (json.dumps(body, indent=2) + "\n").encode("utf-8")


def trusted_keys(data_root: Path | None, extra: Iterable[Path] = ()) -> dict[str, Ed25519PublicKey]:
    """Key id → key, for the station's ``keys/*.pub`` and each ``extra`` file."""
    paths = list(extra)
    if data_root is not None and (Path(data_root) / KEYS_DIR).is_dir():
        paths += sorted((Path(data_root) / KEYS_DIR).glob("*.pub"))
    keys = {}
    for path in paths:
        key = load_public(path)
        keys[key_id(key)] = key
    return keys


def check(
    bundle: Path, sums: bytes, signature: bytes, trusted: dict[str, Ed25519PublicKey]
) -> SignatureCheck:
    """Check ``signature`` (a SIGNATURE file's bytes) against ``sums``.

    Raises:
        ExportError: the file is malformed, or the signature does not match SHA256SUMS (the
            bundle was altered after signing, or the signature was made up).
    """
    try:
        body = json.loads(signature.decode("utf-8"))
        if not isinstance(body, dict) or body.get("format") != SIGNATURE_FORMAT:
            raise ValueError(f"not {SIGNATURE_FORMAT}")
        if body.get("algorithm") != "ed25519" or body.get("signed_file") != "SHA256SUMS":
            raise ValueError("not an ed25519 signature of SHA256SUMS")
        raw_key = base64.b64decode(str(body["public_key"]), validate=True)
        raw_signature = base64.b64decode(str(body["signature"]), validate=True)
        public = Ed25519PublicKey.from_public_bytes(raw_key)
        signed_utc = str(body.get("signed_utc", ""))
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise ExportError(
            f"{bundle}: {SIGNATURE} is malformed ({exc}); nothing was imported"
        ) from None
    kid = key_id(public)
    if body.get("key_id") != kid:
        raise ExportError(
            f"{bundle}: {SIGNATURE} names key {body.get('key_id')} but holds key {kid}"
        )
    try:
        public.verify(raw_signature, sums)
    except InvalidSignature:
        raise ExportError(
            f"{bundle}: {SIGNATURE} does not match SHA256SUMS (the bundle was changed after key "
            f"{kid} signed it); nothing was imported"
        ) from None
    known = trusted.get(kid)
    is_trusted = known is not None and known.public_bytes(*_RAW) == public.public_bytes(*_RAW)
    return SignatureCheck(kid, is_trusted, signed_utc)
