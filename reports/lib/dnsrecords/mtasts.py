"""MTA-STS (RFC 8461) and SMTP TLS Reporting (RFC 8460): records and policies read and written.

MTA-STS is two pieces: a TXT record at ``_mta-sts.<domain>`` (``v=STSv1; id=...``) saying that a
policy exists and which version it is, and the policy itself, a small text file served over HTTPS
at ``https://mta-sts.<domain>/.well-known/mta-sts.txt`` listing the mode and the MX host patterns
that senders must find a valid certificate on. TLS-RPT is one TXT record at ``_smtp._tls.<domain>``
(``v=TLSRPTv1; rua=...``) saying where senders send their daily reports of TLS failures.

The parsers raise ``RecordError`` or ``PolicyError`` (both ValueError) with the reason a sender
would discard the record or the policy: senders treat an invalid record or policy as no policy at
all (RFC 8461 §3.1, §3.2), so a checker must be as strict as they are. Things that work but are
worth fixing go into ``StsPolicy.problems``.

Pure Python, no Django and no DNS (``reports.lib.dnsrecords.lookups`` does the lookups,
``reports.lib.policyfetch`` fetches policies).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

from reports.lib.dnsrecords import shown
from reports.lib.dnsrecords.dmarc import mailto_address
from reports.lib.names import normalize_domain

STS_VERSION = "STSv1"
TLSRPT_VERSION = "TLSRPTv1"
MODES = ("enforce", "testing", "none")
MAX_MAX_AGE = 31557600  # one year: the largest max_age RFC 8461 §3.2 allows
SHORT_MAX_AGE = 86400  # under a day, senders keep forgetting the policy between deliveries
MAX_POLICY_BYTES = 65536  # RFC 8461 §3.3: senders may refuse larger policies
POLICY_PATH = "/.well-known/mta-sts.txt"

_ID = re.compile(r"[A-Za-z0-9]{1,32}")
_EXT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_EXT_VALUE = re.compile(r"[\x21-\x3a\x3c\x3e-\x7e]+")  # printable but not "=", ";" or space
_MAX_AGE = re.compile(r"[0-9]{1,10}")
_WSP = " \t"
_OWN_CHECKS = ("id", "rua")  # fields whose values the record's parser checks, with reasons of their own


class RecordError(ValueError):
    """Why an ``_mta-sts`` or ``_smtp._tls`` TXT record is invalid; the message is shown as is."""


class PolicyError(ValueError):
    """Why an MTA-STS policy file is invalid; the message is shown as is."""


@dataclass(frozen=True)
class StsRecord:
    version: str  # always "STSv1"
    id: str  # changes whenever the policy changes, so senders fetch it again
    extensions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TlsRptRecord:
    version: str  # always "TLSRPTv1"
    rua: list[str]  # mailto: and https: URIs, as published
    extensions: dict[str, str] = field(default_factory=dict)


@dataclass
class StsPolicy:
    version: str  # always "STSv1"
    mode: str  # one of MODES
    mx: list[str]  # host patterns, as published: "mail.example.com" or "*.example.com"
    max_age: int  # seconds senders may cache the policy
    problems: list[str] = field(default_factory=list)  # valid, but worth fixing


# --- TXT records ---------------------------------------------------------------------------


def parse_sts_record(text: str) -> StsRecord:
    """The ``_mta-sts`` TXT record ``text`` (RFC 8461 §3.1); raises RecordError saying why it is invalid."""
    fields = _record_fields(text, STS_VERSION)
    policy_id = fields.pop("id", None)
    if policy_id is None:
        raise RecordError("the record has no id= (the policy's version)")
    if not _ID.fullmatch(policy_id):
        raise RecordError(f"id={shown(policy_id)} must be 1 to 32 letters and digits")
    return StsRecord(STS_VERSION, policy_id, fields)


def parse_tlsrpt_record(text: str) -> TlsRptRecord:
    """The ``_smtp._tls`` TXT record ``text`` (RFC 8460 §3); raises RecordError saying why it is invalid."""
    fields = _record_fields(text, TLSRPT_VERSION)
    value = fields.pop("rua", None)
    if value is None:
        raise RecordError("the record has no rua= (where reports go)")
    uris = [uri.strip(_WSP) for uri in value.split(",")]
    for uri in uris:
        reason = rua_problem(uri)
        if reason:
            raise RecordError(f"rua= {reason}")
    return TlsRptRecord(TLSRPT_VERSION, uris, fields)


def rua_problem(uri: str) -> str:
    """Why ``uri`` cannot be a TLS-RPT report destination ("" when it can): a ``mailto:`` address or an
    ``https:`` URL; plain ``http:`` is refused, since reports would travel in the clear."""
    if not uri:
        return "has an empty URI"
    if any(char in uri for char in " ;,") or not uri.isprintable():
        return f"{shown(uri)!r} has a space, comma, semicolon or control character (percent-encode them)"
    scheme, colon, _ = uri.partition(":")
    scheme = scheme.lower()
    if not colon:
        return f"{shown(uri)!r} has no scheme: use mailto: or https:"
    if scheme == "mailto":
        if "!" in uri or not mailto_address(uri):
            return f"{shown(uri)!r} is not a valid mailto: address"
        return ""
    if scheme == "https":
        try:
            host = urlsplit(uri).hostname or ""
        except ValueError:
            host = ""
        if not normalize_domain(host):
            return f"{shown(uri)!r} has no valid host name"
        return ""
    if scheme == "http":
        return f"{shown(uri)!r} is plain http: reports must go to https: (or mailto:)"
    return f"{shown(uri)!r}: {shown(scheme)}: is not a report scheme (use mailto: or https:)"


def _record_fields(text: str, version: str) -> dict[str, str]:
    """The ``name=value`` fields after the leading ``v=<version>``; raises RecordError."""
    parts = [part.strip(_WSP) for part in text.split(";")]
    if len(parts) > 1 and not parts[-1]:
        parts.pop()  # a trailing ";" is allowed
    if parts[0] != f"v={version}" or text[:1] in _WSP:
        raise RecordError(f"the record must start with exactly v={version}")
    fields: dict[str, str] = {}
    for part in parts[1:]:
        name, equals, value = part.partition("=")
        if not equals:
            raise RecordError(f"{shown(part)!r} is not a name=value field")
        if not _EXT_NAME.fullmatch(name):
            raise RecordError(f"{shown(name)!r} is not a valid field name")
        if name in fields or name == "v":
            raise RecordError(f"{name}= appears more than once")
        if name not in _OWN_CHECKS and not _EXT_VALUE.fullmatch(value):
            raise RecordError(f"{name}= has an empty value or one with spaces or control characters")
        fields[name] = value
    return fields


def sts_record(policy_id: str) -> str:
    """The ``_mta-sts`` TXT record for the policy version ``policy_id``."""
    if not _ID.fullmatch(policy_id):
        raise ValueError(f"a policy id is 1 to 32 letters and digits, not {policy_id!r}")
    return f"v={STS_VERSION}; id={policy_id}"


def tlsrpt_record(rua: list[str]) -> str:
    """The ``_smtp._tls`` TXT record sending reports to ``rua`` (URIs; a bare address becomes ``mailto:``).
    Raises ValueError for an invalid URI, among them plain ``http:``."""
    uris = [uri if ":" in uri else f"mailto:{uri}" for uri in (item.strip() for item in rua) if uri]
    if not uris:
        raise ValueError("TLS reports need at least one destination")
    for uri in uris:
        reason = rua_problem(uri)
        if reason:
            raise ValueError(f"rua {reason}")
    return f"v={TLSRPT_VERSION}; rua={','.join(uris)}"


def new_policy_id(now: datetime) -> str:
    """A fresh policy id from the time (UTC when ``now`` is aware): ``20261207T051000``. Senders only
    compare ids for equality, so any change will do; a timestamp also tells people when."""
    if now.tzinfo is not None:
        now = now.astimezone(UTC)
    return now.strftime("%Y%m%dT%H%M%S")


def sts_record_name(domain: str) -> str:
    return f"_mta-sts.{_domain(domain)}"


def tlsrpt_record_name(domain: str) -> str:
    return f"_smtp._tls.{_domain(domain)}"


def policy_host(domain: str) -> str:
    return f"mta-sts.{_domain(domain)}"


def policy_url(domain: str, port: int = 443) -> str:
    """Where senders fetch the policy of ``domain``; a port other than 443 only serves tests."""
    netloc = policy_host(domain) if port == 443 else f"{policy_host(domain)}:{port}"
    return f"https://{netloc}{POLICY_PATH}"


def _domain(domain: str) -> str:
    normalized = normalize_domain(domain)
    if not normalized:
        raise ValueError(f"not a domain name: {domain!r}")
    return normalized


# --- policies ------------------------------------------------------------------------------


def parse_policy(text: str) -> StsPolicy:
    """The MTA-STS policy file ``text`` (RFC 8461 §3.2); raises PolicyError saying why senders discard it.

    Lines end in CRLF or LF and hold ``key: value``. Keys are case-sensitive; unknown keys are
    ignored, as senders do. ``version``, ``mode`` and ``max_age`` are required, ``mx`` too unless
    the mode is ``none``. A repeated single key counts once (the first), with a problem noted.
    """
    size = len(text.encode("utf-8", "replace"))
    if size > MAX_POLICY_BYTES:
        raise PolicyError(f"the policy is {size} bytes: senders refuse policies over {MAX_POLICY_BYTES}")
    problems: list[str] = []
    values: dict[str, str] = {}
    mx: list[str] = []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip(_WSP):
            continue
        key, colon, value = line.partition(":")
        if not colon or not key or key != key.strip(_WSP):
            raise PolicyError(f"line {number} is not key: value ({shown(line)!r})")
        value = value.strip(_WSP)
        if key == "mx":
            mx.append(value)
        elif key in values and key in ("version", "mode", "max_age"):
            problems.append(f"{key} appears more than once: senders use the first ({values[key]})")
        else:
            values.setdefault(key, value)
    version = _required(values, "version")
    if version != STS_VERSION:
        raise PolicyError(f"version: {shown(version)} must be exactly {STS_VERSION}")
    mode = _required(values, "mode")
    if mode not in MODES:
        raise PolicyError(f"mode: {shown(mode)} must be enforce, testing or none (lower-case)")
    max_age = _max_age(_required(values, "max_age"))
    for pattern in mx:
        reason = mx_pattern_problem(pattern)
        if reason:
            raise PolicyError(f"mx: {reason}")
        if pattern.endswith("."):
            problems.append(f"mx: {pattern} ends in a dot: write host names without it")
    if not mx and mode != "none":
        raise PolicyError(f"mode {mode} needs at least one mx: line (the hosts that receive mail)")
    if max_age < SHORT_MAX_AGE and mode != "none":
        problems.append(f"max_age {max_age} is under a day: senders forget the policy between deliveries")
    return StsPolicy(STS_VERSION, mode, mx, max_age, problems)


def mx_pattern_problem(pattern: str) -> str:
    """Why ``pattern`` cannot be a policy's ``mx:`` ("" when it can): a host name, or ``*.`` and one."""
    name = pattern.removeprefix("*.")
    if not pattern:
        return "an empty host pattern"
    if "*" in name:
        return f"{shown(pattern)!r}: a wildcard may only be a whole leftmost label (*.example.com)"
    if not normalize_domain(name):
        return f"{shown(pattern)!r} is not a host name"
    return ""


def _required(values: dict[str, str], key: str) -> str:
    if key in values:
        return values[key]
    hint = next((f" (keys are case-sensitive: found {other!r})" for other in values if other.lower() == key), "")
    raise PolicyError(f"the policy has no {key}: line{hint}")


def _max_age(value: str) -> int:
    if not _MAX_AGE.fullmatch(value):
        raise PolicyError(f"max_age: {shown(value)} must be a whole number of seconds")
    seconds = int(value)
    if seconds > MAX_MAX_AGE:
        raise PolicyError(f"max_age: {seconds} is over the largest allowed, {MAX_MAX_AGE} (a year)")
    return seconds


def render_policy(mode: str, mx_patterns: list[str], max_age: int) -> str:
    """The exact policy file to publish (CRLF line ends, which every sender reads).

    Raises ValueError for an unknown mode, an invalid pattern, a max_age out of range, or no
    patterns with mode testing or enforce. Repeated patterns are written once.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if not 0 <= max_age <= MAX_MAX_AGE:
        raise ValueError(f"max_age must be between 0 and {MAX_MAX_AGE} seconds, not {max_age}")
    patterns = list(dict.fromkeys(pattern.strip().rstrip(".").lower() for pattern in mx_patterns))
    for pattern in patterns:
        reason = mx_pattern_problem(pattern)
        if reason:
            raise ValueError(reason)
    if not patterns and mode != "none":
        raise ValueError(f"mode {mode} needs at least one mx pattern")
    lines = [f"version: {STS_VERSION}", f"mode: {mode}", *(f"mx: {pattern}" for pattern in patterns)]
    lines.append(f"max_age: {max_age}")
    return "".join(f"{line}\r\n" for line in lines)


# --- MX matching ---------------------------------------------------------------------------


def mx_matches(host: str, pattern: str) -> bool:
    """Whether the MX host name ``host`` matches the policy's ``pattern`` (RFC 8461 §4.1).

    Case-insensitive and blind to a trailing dot. ``*.example.com`` stands for exactly one
    leftmost label: it matches ``mail.example.com``, not ``example.com`` nor ``a.b.example.com``.
    """
    host = host.strip().rstrip(".").lower()
    pattern = pattern.strip().rstrip(".").lower()
    if not host or not pattern:
        return False
    if pattern.startswith("*."):
        label, dot, rest = host.partition(".")
        return bool(label and dot) and label != "*" and rest == pattern[2:]
    return host == pattern


def unmatched_mx(mx_hosts: list[str], patterns: list[str]) -> list[str]:
    """The hosts of ``mx_hosts`` that no pattern matches: with mode enforce, senders do not deliver there."""
    return [host for host in mx_hosts if not any(mx_matches(host, pattern) for pattern in patterns)]
