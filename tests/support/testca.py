"""A throwaway certificate authority for tests that speak TLS, plus the ``tls_ca`` fixture.

``tls_ca.ca_file`` is the CA's certificate (PEM) to trust; ``tls_ca.issue(names)`` signs a server
certificate for those DNS names (the first is also the common name) and writes it and its key as
PEM files. ``expired=True`` gives one that expired yesterday, ``untrusted=True`` one signed by
another CA that ``ca_file`` does not hold. Keys are ECDSA P-256: quick to make, so every test gets
a CA of its own::

    def test_something(tls_ca):
        cert = tls_ca.issue(["mta-sts.example.com"], days=5)
        context.load_cert_chain(cert.cert_file, cert.key_file)

PYTEST_DONT_REWRITE: a helper, not a test module.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Cert:
    cert_file: str  # PEM: the certificate alone (the CA is what the client trusts)
    key_file: str  # PEM: its private key, unencrypted
    names: tuple[str, ...]
    not_after: datetime  # UTC


class _Authority:
    """One CA: a self-signed certificate and its key."""

    def __init__(self, name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=400))
            .not_valid_after(now + timedelta(days=400))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )  # fmt: skip

    def sign(
        self, names: list[str], not_before: datetime, not_after: datetime
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name) for name in names]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return certificate, key


class TestCA:
    """A CA whose certificate is in ``ca_file``, issuing server certificates into ``directory``."""

    __test__ = False  # not a test class, despite the name

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._trusted = _Authority("dmarcdash test CA")
        self._stranger: _Authority | None = None
        self._serials = itertools.count(1)
        self.ca_file = str(directory / "ca.pem")
        Path(self.ca_file).write_bytes(self._trusted.certificate.public_bytes(serialization.Encoding.PEM))

    def issue(self, names: list[str], days: int = 30, expired: bool = False, untrusted: bool = False) -> Cert:
        """A server certificate for ``names`` valid ``days`` from now (or expired yesterday), signed by
        this CA (or, ``untrusted``, by another one that ``ca_file`` does not hold)."""
        if not names:
            raise ValueError("a certificate needs at least one name")
        now = datetime.now(UTC).replace(microsecond=0)
        if expired:
            not_before, not_after = now - timedelta(days=days + 1), now - timedelta(days=1)
        else:
            not_before, not_after = now - timedelta(hours=1), now + timedelta(days=days)
        certificate, key = self._authority(untrusted).sign(list(names), not_before, not_after)
        stem = self.directory / f"server-{next(self._serials)}"
        cert_file, key_file = stem.with_suffix(".crt"), stem.with_suffix(".key")
        cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return Cert(str(cert_file), str(key_file), tuple(names), not_after)

    def _authority(self, untrusted: bool) -> _Authority:
        if not untrusted:
            return self._trusted
        if self._stranger is None:
            self._stranger = _Authority("some other CA")
        return self._stranger


@pytest.fixture
def tls_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    """A fresh CA for this test (its files in a temporary directory)."""
    return TestCA(tmp_path_factory.mktemp("tls-ca"))
