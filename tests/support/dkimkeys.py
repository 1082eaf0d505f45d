"""DKIM keys, signing and a fake DNS for tests: real signatures, no network."""

import base64
import shutil
import subprocess
from dataclasses import dataclass

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


@dataclass(frozen=True)
class Key:
    private: bytes  # PEM
    public_der: bytes

    @property
    def record(self) -> str:
        return f"v=DKIM1; k=rsa; p={base64.b64encode(self.public_der).decode()}"


def generate_key() -> Key:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("neither the cryptography package nor openssl is there to make RSA test keys")
        private = subprocess.run(["openssl", "genrsa", "2048"], capture_output=True, check=True).stdout
        public = subprocess.run(
            ["openssl", "rsa", "-pubout", "-outform", "DER"], input=private, capture_output=True, check=True
        ).stdout
        return Key(private, public)
    secret = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = secret.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = secret.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return Key(private, public)


class FakeDns:
    """dkimpy's dnsfunc format: a name (bytes, trailing dot) in, the TXT record or None out."""

    def __init__(self, records: dict[str, str | bytes | Exception] | None = None):
        self.records = {name.lower(): value for name, value in (records or {}).items()}
        self.calls: list[bytes] = []

    def __call__(self, name):
        self.calls.append(name)
        text = (name.decode() if isinstance(name, bytes) else name).rstrip(".").lower()
        answer = self.records.get(text)
        if isinstance(answer, Exception):
            raise answer
        return answer


def sign(message: bytes, domain: str, key: Key, selector: str = "s1", canonicalize=(b"relaxed", b"simple")) -> bytes:
    return dkim.sign(message, selector.encode(), domain.encode(), key.private, canonicalize=canonicalize) + message


def dns_for(*entries: tuple[str, str, Key]) -> FakeDns:
    return FakeDns({f"{selector}._domainkey.{domain}": key.record for selector, domain, key in entries})


def rsa_record(bits: int, *, form=serialization.PublicFormat.SubjectPublicKeyInfo, extra: str = "") -> str:
    """A DKIM key record with an RSA public key of ``bits`` bits. The checker only reads the key's
    size, so the modulus need not be a product of two primes (cryptography refuses to make short keys)."""
    key = rsa.RSAPublicNumbers(65537, (1 << (bits - 1)) | 1).public_key()
    der = key.public_bytes(serialization.Encoding.DER, form)
    return f"v=DKIM1; k=rsa;{extra} p={base64.b64encode(der).decode()}"
