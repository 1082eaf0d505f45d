"""Mailbox passwords: taken from the environment, or stored encrypted at rest.

The encryption key is DMARCDASH_ENCRYPTION_KEY (a Fernet key) when set, else one
derived from SECRET_KEY, so a leaked database alone does not reveal passwords.
"""

import base64
import os
from urllib.parse import unquote, urlsplit

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


class SecretError(Exception):
    pass


def _fernet() -> Fernet:
    key = os.environ.get("DMARCDASH_ENCRYPTION_KEY")
    if not key:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"dmarcdash", info=b"mailbox passwords").derive(
            settings.SECRET_KEY.encode()
        )
        key = base64.urlsafe_b64encode(derived).decode()
    try:
        return Fernet(key)
    except ValueError as exc:
        raise SecretError("DMARCDASH_ENCRYPTION_KEY is not a valid Fernet key") from exc


def encrypt(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretError("the stored password cannot be decrypted (was SECRET_KEY changed?); enter it again") from exc


def password_from_env(name: str) -> str:
    """The value of an environment variable, or the password inside it when it holds an IMAP URL."""
    value = os.environ.get(name)
    if value is None:
        raise SecretError(f"environment variable {name} is not set")
    if value.startswith(("imap://", "imaps://", "imap+plain://")):
        password = urlsplit(value).password
        if password is None:
            raise SecretError(f"the URL in {name} has no password")
        return unquote(password)
    return value
