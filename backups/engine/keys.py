"""The repository key and its wrapped copies (`keys/<id>` objects).

The repository has one random *master key*: a 32-byte data key (AES-256-GCM for every blob
and envelope) and a separate 32-byte id key (HMAC-SHA256 blob ids). Neither ever leaves the
process unwrapped. Each `keys/<id>` object holds a copy wrapped by a key-encryption key
(KEK) derived from an operator secret, so secrets can be added and rotated without
rewriting data: adding a secret writes one more `keys/<id>`; retiring one deletes it.

KEK derivation (see docs/repository-format.md, "Keys"):

* a secret that already *is* 32 random bytes (32 raw bytes, or 64 hex digits as written by
  `openssl rand -hex 32`) -> HKDF-SHA256 with the key object's salt. Stretching a
  full-entropy key adds nothing, and HKDF costs microseconds per command;
* any other secret (a passphrase) -> scrypt(N=2^15, r=8, p=1, 32 MiB) with a 16-byte salt:
  ~0.1 s per command here, well under restic's ~0.7 s, still ~2^15 times dearer to guess.

Key object layout: header(type KEY) | UTF-8 JSON
`{"kdf": "hkdf"|"scrypt", "salt": b64, "n","r","p" (scrypt only), "created": iso,
  "wrapped": b64(nonce | AES-256-GCM_kek(data_key | id_key, aad=header) | tag)}`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import re
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import FormatError, KeyMissing, WrongKey
from .format import HEADER_SIZE, NONCE_SIZE, ObjectType, check_header, header

SCRYPT_N = 1 << 15
SCRYPT_R = 8
SCRYPT_P = 1
_HEX_KEY = re.compile(rb"^[0-9a-fA-F]{64}$")


class KeyEncryptionKey:
    """An operator secret from which per-key-object KEKs are derived. Never printed."""

    def __init__(self, secret: bytes):
        if not secret:
            raise KeyMissing()
        stripped = secret.strip()
        if _HEX_KEY.match(stripped):
            self._material, self.kdf = bytes.fromhex(stripped.decode()), "hkdf"
        elif len(secret) == 32:
            self._material, self.kdf = secret, "hkdf"
        else:
            self._material, self.kdf = stripped, "scrypt"
        if not self._material:
            raise KeyMissing()
        self._cache: dict[tuple, bytes] = {}

    def __repr__(self) -> str:
        return f"KeyEncryptionKey(kdf={self.kdf}, <secret hidden>)"

    def derive(self, kdf: str, salt: bytes, n: int = SCRYPT_N, r: int = SCRYPT_R,
               p: int = SCRYPT_P) -> bytes:
        """The 32-byte KEK for a key object with these parameters (cached per process)."""
        cache_key = (kdf, salt, n, r, p)
        if cache_key not in self._cache:
            if kdf == "hkdf":
                derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt,
                               info=b"storage-platform key-encryption-key v1").derive(self._material)
            elif kdf == "scrypt":
                if not (2 <= n <= 1 << 20 and 1 <= r <= 32 and 1 <= p <= 16):
                    raise FormatError("key object: scrypt parameters out of range")
                derived = hashlib.scrypt(self._material, salt=salt, n=n, r=r, p=p,
                                         maxmem=256 * 1024 * 1024, dklen=32)
            else:
                raise FormatError(f"key object: unknown kdf {kdf!r}")
            self._cache[cache_key] = derived
        return self._cache[cache_key]


def load_key_encryption_key(secret: str | bytes | KeyEncryptionKey) -> KeyEncryptionKey:
    """Build a KEK source from a secret string/bytes (e.g. a key file's contents).

    Surrounding whitespace (a trailing newline in a key file) is ignored for text secrets.
    An empty secret raises `KeyMissing`.
    """
    if isinstance(secret, KeyEncryptionKey):
        return secret
    if secret is None:
        raise KeyMissing()
    if isinstance(secret, str):
        secret = secret.strip().encode("utf-8")
    return KeyEncryptionKey(bytes(secret))


@dataclass(frozen=True)
class MasterKey:
    """The repository's unwrapped keys. repr hides them."""

    data_key: bytes
    id_key: bytes

    def __repr__(self) -> str:
        return "MasterKey(<hidden>)"

    @classmethod
    def generate(cls) -> "MasterKey":
        return cls(secrets.token_bytes(32), secrets.token_bytes(32))


def wrap_master_key(master: MasterKey, kek: KeyEncryptionKey) -> bytes:
    """A new key object: `master` wrapped under a KEK derived from `kek` with a fresh salt."""
    salt = secrets.token_bytes(16)
    description: dict = {"kdf": kek.kdf, "salt": base64.b64encode(salt).decode()}
    if kek.kdf == "scrypt":
        description.update(n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    wrapping = kek.derive(kek.kdf, salt)
    head = header(ObjectType.KEY)
    nonce = os.urandom(NONCE_SIZE)
    wrapped = nonce + AESGCM(wrapping).encrypt(nonce, master.data_key + master.id_key, head)
    description["created"] = dt.datetime.now(dt.timezone.utc).isoformat()
    description["wrapped"] = base64.b64encode(wrapped).decode()
    return head + json.dumps(description, sort_keys=True).encode()


def describe_key_object(data: bytes, name: str) -> dict:
    """The public fields of a key object (kdf, created), for `key list`."""
    check_header(data, ObjectType.KEY, name)
    try:
        description = json.loads(data[HEADER_SIZE:])
    except ValueError:
        raise FormatError(f"{name}: unreadable key object") from None
    return {"kdf": description.get("kdf"), "created": description.get("created")}


def unwrap_master_key(data: bytes, kek: KeyEncryptionKey, name: str) -> MasterKey:
    """Open a key object with `kek`; `WrongKey` when it is not the secret it was wrapped with."""
    check_header(data, ObjectType.KEY, name)
    try:
        description = json.loads(data[HEADER_SIZE:])
        salt = base64.b64decode(description["salt"])
        wrapped = base64.b64decode(description["wrapped"])
        kdf = description["kdf"]
        params = {k: int(description[k]) for k in ("n", "r", "p") if k in description}
    except (ValueError, KeyError, TypeError):
        raise FormatError(f"{name}: unreadable key object") from None
    if kdf != kek.kdf:
        # A hex/32-byte secret and a passphrase can never open each other's wrappings.
        raise WrongKey()
    wrapping = kek.derive(kdf, salt, **params)
    try:
        plain = AESGCM(wrapping).decrypt(wrapped[:NONCE_SIZE], wrapped[NONCE_SIZE:],
                                         bytes(data[:HEADER_SIZE]))
    except InvalidTag:
        raise WrongKey() from None
    if len(plain) != 64:
        raise FormatError(f"{name}: wrapped key has the wrong length")
    return MasterKey(plain[:32], plain[32:])
