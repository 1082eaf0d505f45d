"""Encryption at rest for raw inputs that hold personal data (failure reports): AES-256-GCM in chunks.

A failure report returns the message that failed, headers and body, so its raw bytes are written
encrypted and never touch the disk in the clear. The file is ``MAGIC``, the 8-byte id of the key,
then chunks of (4-byte length, 12-byte nonce, ciphertext); each chunk's associated data binds it to
the key, its index and whether it is the last, so chunks cannot be reordered, dropped or cut off
unnoticed.

Keys: ``DMARCDASH_RAW_KEYS``, comma-separated urlsafe-base64 32-byte keys; the first encrypts, all
decrypt, so a new key goes first and ``manage.py rotate_raw_keys`` re-encrypts what the old ones
wrote before they are removed. Unset, one key is derived from SECRET_KEY.
"""

import base64
import hashlib
import io
import os
import struct
from collections.abc import Iterator
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

MAGIC = b"dmarcdash-raw-aesgcm-1\n"
CHUNK = 1024 * 1024
HEADER = struct.Struct(">I12s")


class DecryptError(Exception):
    """The file cannot be decrypted: no key here has its id, or it was altered."""


def keys() -> list[bytes]:
    configured = [text.strip() for text in settings.RAW_ENCRYPTION_KEYS if text.strip()]
    if not configured:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"dmarcdash", info=b"raw failure reports").derive(
            settings.SECRET_KEY.encode()
        )
        return [derived]
    found = []
    for text in configured:
        try:
            key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except ValueError as exc:
            raise ImproperlyConfigured("DMARCDASH_RAW_KEYS: a key is not urlsafe base64") from exc
        if len(key) != 32:
            raise ImproperlyConfigured(f"DMARCDASH_RAW_KEYS: a key is {len(key)} bytes, not 32")
        found.append(key)
    return found


def key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"dmarcdash raw key id" + key).digest()[:8]


def new_key() -> str:
    """A fresh key for DMARCDASH_RAW_KEYS."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


def is_encrypted(head: bytes) -> bool:
    return head.startswith(MAGIC)


def _aad(kid: bytes, index: int, last: bool) -> bytes:
    return kid + struct.pack(">Q?", index, last)


def encrypt_chunks(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The encrypted file, piece by piece, for plaintext ``chunks`` (one chunk is held back to know the last)."""
    key = keys()[0]
    kid = key_id(key)
    cipher = AESGCM(key)
    yield MAGIC + kid
    index, held = 0, None
    for chunk in chunks:
        if held is not None:
            yield _sealed(cipher, kid, index, held, last=False)
            index += 1
        held = chunk
    yield _sealed(cipher, kid, index, held or b"", last=True)


def _sealed(cipher: AESGCM, kid: bytes, index: int, plain: bytes, last: bool) -> bytes:
    nonce = os.urandom(12)
    sealed = cipher.encrypt(nonce, plain, _aad(kid, index, last))
    return HEADER.pack(len(sealed), nonce) + sealed


def decrypt(stream: BinaryIO) -> bytes:
    """The plaintext of an encrypted file (failure reports are emails, capped in size: held in memory)."""
    out = io.BytesIO()
    for piece in decrypt_chunks(stream):
        out.write(piece)
    return out.getvalue()


def decrypt_chunks(stream: BinaryIO) -> Iterator[bytes]:
    if stream.read(len(MAGIC)) != MAGIC:
        raise DecryptError("not an encrypted raw input")
    kid = stream.read(8)
    key = next((key for key in keys() if key_id(key) == kid), None)
    if key is None:
        raise DecryptError("encrypted with a key not in DMARCDASH_RAW_KEYS (was it removed before rotation?)")
    cipher = AESGCM(key)
    index = 0
    header = stream.read(HEADER.size)
    while header:
        if len(header) != HEADER.size:
            raise DecryptError("the encrypted file is truncated")
        length, nonce = HEADER.unpack(header)
        sealed = stream.read(length)
        following = stream.read(HEADER.size)
        try:
            yield cipher.decrypt(nonce, sealed, _aad(kid, index, last=not following))
        except InvalidTag as exc:
            raise DecryptError("the encrypted file was altered or cut short") from exc
        index += 1
        header = following


def current_key_wrote(head: bytes) -> bool:
    return head[len(MAGIC) : len(MAGIC) + 8] == key_id(keys()[0])
