"""Ed25519 keys and signatures over the exact bytes of ``manifest.yaml``.

Key files are PEM (PKCS#8 private, SubjectPublicKeyInfo public), so any
OpenSSL-era tool can read them. The private key is written unencrypted with
mode 0600 (on Windows the mode is advisory: keep the file on an encrypted
volume). The signature file holds one line: the base64 of the 64-byte
signature. A key's *id* (first 16 hex digits of the BLAKE3 of its raw public
bytes) is what the tools print, so operators can tell keys apart.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from appliance.content.errors import KeyFileError, SignatureError
from appliance.content.hashing import digest_bytes

#: A signature file larger than this is not a signature.
MAX_SIGNATURE_FILE = 4096


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    return digest_bytes(_raw_public(key))[:16]


@dataclass(frozen=True)
class TrustedKey:
    """A public key and where it came from (for messages)."""

    key: Ed25519PublicKey
    origin: str

    @property
    def id(self) -> str:
        return key_id(self.key)


_PRIVATE_MARKERS = (b"PRIVATE KEY-----", b"OPENSSH PRIVATE KEY", b"PuTTY-User-Key-File")


def looks_like_private_key(path: Path) -> bool:
    """True when ``path`` starts like a PEM/OpenSSH/PuTTY private key (a curator's slip)."""
    try:
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError:
        return False
    return any(marker in head for marker in _PRIVATE_MARKERS)


def public_path(private: Path) -> Path:
    return private.with_name(private.name + ".pub")


def generate(out: Path) -> tuple[Path, Path, str]:
    """Write a new private key to ``out`` (0600) and its public key to ``out.pub``.

    Refuses to overwrite either file: losing a signing key is not undoable.
    Returns ``(private path, public path, key id)``.
    """
    pub = public_path(out)
    for p in (out, pub):
        if p.exists():
            raise KeyFileError(f"{p}: already exists; not overwriting a key")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(out, flags, 0o600)
    except OSError as exc:
        raise KeyFileError(f"{out}: cannot create ({exc.strerror})") from exc
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem)
    with contextlib.suppress(OSError):
        os.chmod(out, 0o600)  # in case a umask or platform widened it
    try:
        with open(pub, "xb") as f:
            f.write(public_pem)
    except OSError as exc:
        raise KeyFileError(f"{pub}: cannot create ({exc.strerror})") from exc
    return out, pub, key_id(key.public_key())


def load_private(path: Path) -> Ed25519PrivateKey:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read key ({exc.strerror})") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: not an unencrypted PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: not an Ed25519 private key")
    return key


def load_public(path: Path) -> TrustedKey:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read key ({exc.strerror})") from exc
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        hint = " (that is a private key; use KEY.pub)" if b"PRIVATE KEY" in data else ""
        raise KeyFileError(f"{path}: not a PEM public key{hint}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path}: not an Ed25519 public key")
    return TrustedKey(key, str(path))


def load_trusted(paths: Iterable[str | Path]) -> list[TrustedKey]:
    return [load_public(Path(p)) for p in paths]


def sign(key: Ed25519PrivateKey, message: bytes) -> bytes:
    """The signature file's bytes for ``message``."""
    return base64.b64encode(key.sign(message)) + b"\n"


def parse_signature(data: bytes, where: str) -> bytes:
    if len(data) > MAX_SIGNATURE_FILE:
        raise SignatureError(f"{where}: not a signature (too large)")
    try:
        raw = base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError(f"{where}: not a base64 signature") from exc
    if len(raw) != 64:
        raise SignatureError(f"{where}: not an Ed25519 signature ({len(raw)} bytes, want 64)")
    return raw


def check_signature(
    message: bytes, signature_file: bytes, trusted: Sequence[TrustedKey], where: str
) -> TrustedKey:
    """Return the trusted key that signed ``message``; raise :class:`SignatureError` if none."""
    raw = parse_signature(signature_file, where)
    if not trusted:
        raise SignatureError(
            f"{where}: no trusted keys to check it against (content.trusted_keys, --trusted-key)"
        )
    for candidate in trusted:
        try:
            candidate.key.verify(raw, message)
        except InvalidSignature:
            continue
        return candidate
    ids = ", ".join(k.id for k in trusted)
    raise SignatureError(
        f"{where}: signature does not match manifest.yaml under any trusted key ({ids}); "
        "the manifest was changed or signed by someone else"
    )
