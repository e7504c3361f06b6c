"""Field encryption of personal data and the keyed blind indexes that let it be looked up.

A keyring is ``id:base64key`` items separated by commas, the current key first
(``PORTAL_DATA_KEY="k2:...,k1:..."``). Each item is 32 random bytes; from it HKDF derives two
independent keys: one for AES-256-GCM, one for HMAC-SHA256 blind indexes. A sealed value is
``<key id>:<base64(nonce | ciphertext | tag)>`` with a random 96-bit nonce and the column's
``table.column`` as associated data, so a value copied into another column does not open.

Nothing here touches Flask or the database: the app installs the configured keyring once at start
(``install``) and the column types in ``portal.db.sealed`` read it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
import unicodedata
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")
# A sealed value: a key id, a colon and at least a nonce and a tag in standard base64.
_SEALED = re.compile(r"^([A-Za-z0-9_-]{1,16}):([A-Za-z0-9+/]{38,}={0,2})$")

# What a blind index is of: each kind has its own normalisation and its own HMAC domain.
INDEX_KINDS = ("email", "phone", "postcode", "name")


class KeyringError(ValueError):
    """The configured data key cannot be used (said without showing any key)."""


class SealError(ValueError):
    """A sealed value does not open: unknown key id, wrong key, or altered bytes."""


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"returns-portal " + purpose).derive(master)


@dataclass(frozen=True)
class DataKey:
    id: str
    cipher_key: bytes = field(repr=False)
    index_key: bytes = field(repr=False)

    @classmethod
    def from_master(cls, key_id: str, master: bytes) -> DataKey:
        return cls(key_id, _derive(master, b"field encryption v1"), _derive(master, b"blind index v1"))


@dataclass(frozen=True)
class Keyring:
    """The current key (first) and older ones still able to open values and match indexes."""

    keys: tuple[DataKey, ...]

    @property
    def current(self) -> DataKey:
        return self.keys[0]

    def get(self, key_id: str) -> DataKey | None:
        return next((k for k in self.keys if k.id == key_id), None)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(k.id for k in self.keys)


def parse_keyring(text: str) -> Keyring:
    """``"k2:base64,k1:base64"`` (first is current). Raises KeyringError naming the problem, never the key."""
    keys: list[DataKey] = []
    for n, item in enumerate((part.strip() for part in text.split(",")), start=1):
        if not item:
            continue
        key_id, sep, encoded = item.partition(":")
        if not sep or not _KEY_ID.match(key_id):
            raise KeyringError(
                f"data key item {n}: expected ID:BASE64KEY with an ID of letters, digits, - or _ (at most 16)"
            )
        try:
            master = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise KeyringError(f"data key {key_id!r}: the key is not valid base64") from None
        if len(master) != KEY_BYTES:
            raise KeyringError(f"data key {key_id!r}: the key must be {KEY_BYTES} bytes, not {len(master)}")
        if any(k.id == key_id for k in keys):
            raise KeyringError(f"data key {key_id!r} is listed twice")
        keys.append(DataKey.from_master(key_id, master))
    if not keys:
        raise KeyringError("the data key is empty")
    return Keyring(tuple(keys))


def new_key(key_id: str | None = None) -> str:
    """A fresh keyring item ``id:base64key`` (a random id when none is given)."""
    key_id = key_id or "k" + secrets.token_hex(3)
    if not _KEY_ID.match(key_id):
        raise KeyringError("a key id is letters, digits, - or _ (at most 16)")
    return f"{key_id}:{base64.b64encode(os.urandom(KEY_BYTES)).decode()}"


def is_sealed(value: str) -> bool:
    """Shaped like a sealed value (``id:base64`` of at least a nonce and a tag)."""
    return _SEALED.match(value) is not None


def sealed_key_id(value: str) -> str | None:
    match = _SEALED.match(value)
    return match.group(1) if match else None


def seal(keyring: Keyring, plaintext: str, context: str) -> str:
    """Encrypt under the current key, bound to ``context`` (the column, ``table.column``)."""
    key = keyring.current
    nonce = os.urandom(NONCE_BYTES)
    body = AESGCM(key.cipher_key).encrypt(nonce, plaintext.encode(), context.encode())
    return f"{key.id}:{base64.b64encode(nonce + body).decode()}"


def unseal(keyring: Keyring, value: str, context: str) -> str:
    match = _SEALED.match(value)
    if match is None:
        raise SealError("not a sealed value")
    key = keyring.get(match.group(1))
    if key is None:
        raise SealError(f"value sealed under key {match.group(1)!r}, which is not in the data key")
    raw = base64.b64decode(match.group(2))
    if len(raw) < NONCE_BYTES + TAG_BYTES:
        raise SealError("sealed value too short")
    try:
        return AESGCM(key.cipher_key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode()).decode()
    except InvalidTag:
        raise SealError(f"value under key {key.id!r} does not open (wrong key, column or altered)") from None


def normalise(kind: str, value: str) -> str:
    """The form two spellings of one value share: what a blind index is taken of."""
    value = unicodedata.normalize("NFKC", value)
    if kind == "email":
        return value.strip().lower()
    if kind == "phone":  # digits only; "00" before the country code is the "+" of other keyboards
        digits = "".join(ch for ch in value if ch.isdigit())
        return digits[2:] if value.strip().startswith("00") else digits
    if kind == "postcode":
        return "".join(value.upper().split())
    if kind == "name":
        return " ".join(value.casefold().split())
    raise ValueError(f"unknown blind index kind {kind!r}")


def blind_index_with(key: DataKey, kind: str, value: str) -> str:
    message = kind.encode() + b"\x00" + normalise(kind, value).encode()
    return hmac.new(key.index_key, message, hashlib.sha256).hexdigest()


def blind_index(keyring: Keyring, kind: str, value: str | None) -> str | None:
    """The index under the current key; None for no value (or one that normalises to nothing)."""
    if value is None or not normalise(kind, value):
        return None
    return blind_index_with(keyring.current, kind, value)


def blind_candidates(keyring: Keyring, kind: str, value: str) -> list[str]:
    """The index of ``value`` under every key of the ring (rows not yet rotated match too), always
    as many as there are keys, so a lookup does the same work whatever was typed."""
    return [blind_index_with(key, kind, value) for key in keyring.keys]


_installed: Keyring | None = None


def install(keyring: Keyring) -> None:
    """Make ``keyring`` the one the database column types seal with. Keys of a ring installed
    earlier in the process (another app of the same process) stay able to open what they sealed."""
    global _installed
    older = [k for k in (_installed.keys if _installed else ()) if keyring.get(k.id) is None]
    _installed = Keyring(keyring.keys + tuple(older))


def installed() -> Keyring | None:
    return _installed


def keyring() -> Keyring:
    if _installed is None:
        raise KeyringError("no data key is configured (PORTAL_DATA_KEY); create the app first")
    return _installed


__all__ = [
    "INDEX_KINDS",
    "DataKey",
    "Keyring",
    "KeyringError",
    "SealError",
    "blind_candidates",
    "blind_index",
    "blind_index_with",
    "install",
    "installed",
    "is_sealed",
    "keyring",
    "new_key",
    "normalise",
    "parse_keyring",
    "seal",
    "sealed_key_id",
    "unseal",
]
