"""Is the DKIM key at ``<selector>._domainkey.<domain>`` usable? (RFC 6376 §3.6.1, RFC 8301, RFC 8463)

``check_dkim`` looks the key record up and checks it the way a verifier reads it: a tag list
(case-sensitive names, no duplicates), ``v=DKIM1`` first if present, ``k=`` rsa (the default) or
ed25519, ``h=`` allowing sha256, ``s=`` covering email, and ``p=`` decoding from base64 to a key.
An empty ``p=`` is a revoked key. An RSA key is loaded with ``cryptography`` (DER
SubjectPublicKeyInfo, or a bare RSAPublicKey, which many verifiers also accept): under 1024 bits
verifiers reject it (RFC 8301), under 2048 is a warning. ``t=y`` (testing) is a warning too:
verifiers must treat mail signed with such a key like unsigned mail.
Pure Python, dnspython and cryptography: no Django.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from reports.lib.authenticity import MAX_KEY_RECORD, MIN_KEY_BITS
from reports.lib.dnsrecords import shown
from reports.lib.dnsrecords.lookups import ERROR, OK, DnsError, Resolver, txt
from reports.lib.names import normalize_domain

KEY_TYPES = ("rsa", "ed25519")
GOOD_KEY_BITS = 2048  # RFC 8301: signers SHOULD use at least this
ED25519_BYTES = 32

_SELECTOR = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9_])?")
_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


@dataclass
class DkimKeyCheck:
    selector: str
    domain: str
    name: str  # <selector>._domainkey.<domain>
    status: str  # of the lookup: one of reports.lib.dnsrecords.lookups.STATUSES
    record: str = ""  # the key record as published, "" when none was found
    tags: dict[str, str] = field(default_factory=dict)
    key_type: str = ""  # k= (lower-case; "rsa" when absent), "" when there is no record
    bits: int | None = None  # RSA modulus size, 256 for ed25519, None when the key could not be read
    revoked: bool = False  # p= is empty
    testing: bool = False  # t= has the y flag
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return bool(self.record)

    @property
    def ok(self) -> bool:
        """Whether a key was found and verifiers can use it."""
        return self.found and not self.errors


def check_dkim(selector: str, domain: str, resolver: Resolver) -> DkimKeyCheck:
    """Look up and check the DKIM key of ``selector`` at ``domain``. Never raises."""
    selector = selector.strip()
    domain_name = normalize_domain(domain)
    name = f"{selector}._domainkey.{domain_name or domain.strip()}"
    check = DkimKeyCheck(selector, domain_name or domain.strip(), name, OK)
    if not _SELECTOR.fullmatch(selector) or not domain_name:
        check.status = ERROR
        check.errors.append("not a valid selector and domain")
        return check
    try:
        texts = txt(name, resolver)
    except DnsError as exc:
        check.status = exc.status
        check.errors.append(f"{'no DKIM key at' if exc.missing else 'could not look up'} {name}: {exc.reason}")
        return check
    keys = [text for text in texts if "p=" in text] or texts
    if len(keys) > 1:
        check.warnings.append(f"{len(keys)} TXT records hold keys: verifiers may use any one of them")
    check.record = keys[0]
    _check_record(check)
    return check


# --- internals ---------------------------------------------------------------------------


def _check_record(check: DkimKeyCheck) -> None:
    """Fill ``check`` from its record: tags, then version, type, hashes, service, flags and the key."""
    errors, warnings = check.errors, check.warnings
    if len(check.record.encode()) > MAX_KEY_RECORD:
        errors.append(f"the key record is longer than {MAX_KEY_RECORD} bytes")
        return
    tags = _tags(check.record, errors)
    if tags is None:
        return
    check.tags = tags
    if "v" in tags and (tags["v"] != "DKIM1" or next(iter(tags)) != "v"):
        errors.append("v= must be v=DKIM1 and come first: verifiers ignore the key")
    check.key_type = tags.get("k", "rsa").lower()
    if check.key_type not in KEY_TYPES:
        errors.append(f"k={shown(check.key_type)}: an unknown key type (rsa or ed25519)")
    if "h" in tags and "sha256" not in _list(tags["h"]):
        errors.append(f"h={shown(tags['h'])} does not allow sha256; verifiers no longer accept sha1 (RFC 8301)")
    if "s" in tags and not {"*", "email"} & set(_list(tags["s"])):
        errors.append(f"s={shown(tags['s'])} does not cover email")
    flags = _list(tags.get("t", ""))
    check.testing = "y" in flags
    if check.testing:
        warnings.append("t=y (testing): verifiers treat mail signed with this key like unsigned mail")
    if "p" not in tags:
        errors.append("no p= tag: there is no key")
        return
    data = re.sub(r"\s+", "", tags["p"])
    if not data:
        check.revoked = True
        errors.append("the key is revoked (empty p=)")
        return
    try:
        key = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        errors.append("p= is not valid base64")
        return
    if check.key_type == "rsa":
        _check_rsa(check, key)
    elif check.key_type == "ed25519":
        if len(key) != ED25519_BYTES:
            errors.append(f"p= is {len(key)} bytes, not the {ED25519_BYTES} of an ed25519 key")
            return
        check.bits = 256
        warnings.append("an ed25519 key: many receivers cannot verify it yet, so sign with an RSA key as well")


def _check_rsa(check: DkimKeyCheck, der: bytes) -> None:
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        check.errors.append("p= is not an RSA public key")
        return
    if not isinstance(key, rsa.RSAPublicKey):
        check.errors.append("p= is not an RSA public key, though k=rsa")
        return
    check.bits = key.key_size
    if key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != der:
        check.warnings.append("p= is a bare RSAPublicKey, not the SubjectPublicKeyInfo RFC 6376 asks for")
    if key.key_size < MIN_KEY_BITS:
        check.errors.append(
            f"an RSA key of {key.key_size} bits: verifiers reject keys under {MIN_KEY_BITS} bits (RFC 8301)"
        )
    elif key.key_size < GOOD_KEY_BITS:
        check.warnings.append(f"an RSA key of {key.key_size} bits: use {GOOD_KEY_BITS} bits, as RFC 8301 recommends")


def _tags(record: str, errors: list[str]) -> dict[str, str] | None:
    """The tag list of ``record`` (RFC 6376 §3.2), or None (with the reason in ``errors``) when it is not one."""
    tags: dict[str, str] = {}
    parts = record.split(";")
    if len(parts) > 1 and not parts[-1].strip():
        parts.pop()
    for part in parts:
        name, eq, value = part.partition("=")
        name = name.strip()
        if not eq or not _TAG_NAME.fullmatch(name):
            errors.append(f"not a DKIM key record: {shown(part.strip())!r} is not a tag=value")
            return None
        if name in tags:
            errors.append(f"{name}= appears more than once: verifiers ignore the key")
            return None
        tags[name] = value.strip()
    return tags


def _list(value: str) -> list[str]:
    return [item.strip().lower() for item in value.split(":") if item.strip()]
