"""Privacy for failure reports (RFC 9991 section on privacy): email addresses with their local
part replaced by a keyed hash, and URLs defanged so that nobody follows them by a click.

The hash is keyed and deterministic: the same sender gives the same ``h.<hash>`` in every
sample, so samples can still be matched, while nobody without the key can test a guess.
"""

import dataclasses
import hashlib
import hmac
import re
from email.errors import MessageError
from email.header import decode_header, make_header

from reports.lib.parsing.failure import FailureReport

# Anything but what separates an address from its surroundings. Broader than RFC 5322's atext
# (SMTPUTF8 local parts, "=" in VERP and SRS addresses) since an address left whole is a leak.
LOCAL = r"[^\s@<>()\[\]\\,;:\"]"
DOMAIN = r"(?:\[[^\]\s]{1,64}\]|[\w-]+(?:\.[\w-]+)*)"
# The lookbehind starts a match only where a run of local-part characters starts, which keeps
# the scan linear over a long run with no "@" in it.
ADDRESS = re.compile(rf"(?:\"[^\"\r\n]{{1,64}}\"|(?<!{LOCAL}){LOCAL}++)@{DOMAIN}")
# Authentication-Results and Received-SPF properties written against an address
# ("smtp.mailfrom=user@example.com"): the name stays readable, the local part does not.
PROPERTY = re.compile(
    r"((?:smtp\.(?:mailfrom|from|rcptto|helo)|header\.(?:from|i|sender|to)|policy\.\w+|envelope-(?:from|to)"
    r"|x-sender|mailfrom|rcptto|from|to)=)",
    re.IGNORECASE,
)
ENCODED_WORDS = re.compile(r"=\?[^?\s]{1,40}\?[bBqQ]\?[^?\s]*\?=(?:\s+=\?[^?\s]{1,40}\?[bBqQ]\?[^?\s]*\?=)*")
URL = re.compile(
    r"\b(?:(?P<scheme>https?)://(?P<authority>[^\s/?#<>\"'\\]+)|(?P<www>www\.[\w-]+(?:\.[\w-]+)+))",
    re.IGNORECASE,
)
ADDRESS_FIELDS = ("original_mail_from", "header_from")
FREE_TEXT = ("original_headers", "subject", "report_subject")


def hash_local_part(address: str, key: bytes) -> str:
    """``alice@example.com`` -> ``h.3f9a1c2b7d@example.com``; a bare local part is hashed whole."""
    local, at, domain = address.strip().rpartition("@")
    if not at:
        local, domain = domain, ""
    if not local:
        return address.strip()
    digest = hmac.new(key, local.lower().encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:10]
    return f"h.{digest}{at}{domain}"


def hash_addresses(text: str, key: bytes) -> str:
    """Every address in free text hashed, also inside RFC 2047 encoded words (which are decoded)."""
    text = ENCODED_WORDS.sub(lambda match: _decoded_words(match.group(0), key), text)
    return ADDRESS.sub(lambda match: _hashed(match.group(0), key), text)


def defang_urls(text: str) -> str:
    """``http://evil.example/x`` -> ``hxxp://evil[.]example/x``; ``www.evil.example`` -> ``www[.]evil[.]example``."""

    def defang(match: re.Match) -> str:
        if match.group("www"):
            return match.group("www").replace(".", "[.]")
        scheme = match.group("scheme")
        return f"{scheme[0]}xx{scheme[3:]}://{match.group('authority').replace('.', '[.]')}"

    return URL.sub(defang, text)


def redact(report: FailureReport, *, hash_key: bytes | None, defang: bool) -> FailureReport:
    """A copy of the report with every address hashed (when a key is given) and URLs in its free
    text defanged. Every text field is hashed, not only those meant to hold addresses: any of
    them can carry one."""
    changes: dict[str, object] = {}
    for item in dataclasses.fields(report):
        value = getattr(report, item.name)
        if isinstance(value, str):
            changes[item.name] = _redacted(item.name, value, hash_key, defang)
        elif isinstance(value, list):
            changes[item.name] = [_redacted(item.name, v, hash_key, defang) if isinstance(v, str) else v for v in value]
        elif isinstance(value, dict):
            changes[item.name] = {_redacted(item.name, k, hash_key, False): v for k, v in value.items()}
    return dataclasses.replace(report, **changes)


def _redacted(name: str, value: str, key: bytes | None, defang: bool) -> str:
    if key is not None:
        if name in ADDRESS_FIELDS or name == "original_rcpt_to":
            value = hash_local_part(value, key) if value and not ADDRESS.search(value) else hash_addresses(value, key)
        else:
            value = hash_addresses(value, key)
    if defang and name in FREE_TEXT:
        value = defang_urls(value)
    return value


def _hashed(found: str, key: bytes) -> str:
    prefix = ""
    if "=" in found:
        # the longest property name followed by "=" at the start of the match
        match = PROPERTY.match(found)
        if match is not None and "@" in found[match.end() :]:
            prefix, found = match.group(1), found[match.end() :]
    return prefix + hash_local_part(found, key)


def _decoded_words(words: str, key: bytes) -> str:
    try:
        text = str(make_header(decode_header(words)))
    except (ValueError, LookupError, UnicodeError, MessageError):  # bad base64 words, unknown charsets
        return words
    hashed = ADDRESS.sub(lambda match: _hashed(match.group(0), key), text)
    return words if hashed == text else hashed
