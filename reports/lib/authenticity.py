"""Is a report email really from the reporter it names? DKIM, checked with dkimpy.

Anyone can mail the rua address "a report from google.com". This module verifies the
DKIM signatures of the report email and compares the signing domain (``d=``) with the
reporter's ``<email>`` address inside the report, by organizational domain (Public
Suffix List, shipped offline by ``publicsuffixlist``). It is pure Python: no Django.

Labels (``Authenticity.label``):

- ``verified``: a signature verifies and its ``d=`` is in the same organizational domain
  as the ``<email>`` domain (``mail.google.com`` signs for ``noreply@google.com``).
- ``mismatch``: the message is signed, but no signature both verifies and aligns: another
  organization signed it, a signature failed (body or headers altered, key missing or
  revoked, malformed header), or the report has no usable ``<email>`` address.
- ``unsigned``: the message has no DKIM-Signature header at all.
- ``temperror``: a signature whose ``d=`` *aligns* with the ``<email>`` domain could not
  be checked because the DNS lookup of its key failed temporarily (timeout, SERVFAIL, no
  resolver) and no other signature verified. This is a separate label because it says
  something different to the operator: ``mismatch`` means "this report looks forged",
  while a DNS outage at ingest time would otherwise brand every genuine report of that
  hour as forged, and operators learn to ignore a warning that cries wolf. A
  ``temperror`` report can be checked again later from the stored raw message; a failed
  lookup for a signature that does not align cannot make the report verified, so it
  stays ``mismatch``.

Everything in the message is attacker-controlled, so the work is capped and no input
reaches a slow path of dkimpy 1.1.8:

- at most ``max_signatures`` signatures are checked (those whose ``d=`` aligns first),
  each key name is looked up once, and all lookups share a time budget;
- dkimpy parses only the header section (its parser splits the whole message into a
  list of lines: a 64 MiB body of short lines would take gigabytes), and only once it
  is size- and line-capped (it appends continuation lines to bytes, quadratic in their
  number);
- a DKIM-Signature value may not be long, hold long whitespace runs (dkimpy's ``b=``
  and ``h=`` regexes backtrack quadratically on them) or list too many header fields;
- key records, RSA moduli and exponents are size-checked before any arithmetic;
- the body is handed to dkimpy already canonicalized (its relaxed body regex is
  quadratic in runs of spaces; its trailing-blank-line strip is a Python loop); a
  relaxed body may hold at most ``MAX_RELAXED_SPACES`` spaces (dkimpy's re.sub still
  makes a list entry for each: about 250 MB and 1 s per million and signature), and
  dkimpy's relaxed regexes (still ~30 ns a byte even with nothing to change) see at
  most ``MAX_RELAXED_WORK`` body bytes per message: two signatures on a 64 MiB body.

No exception from dkimpy or from the DNS function escapes; the detail is one short
printable line (domains in it are validated host names, other text is clipped).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import dkim
import dkim.util
import dns.exception
import dns.resolver

from reports.lib import resolver
from reports.lib.names import normalize_domain, organizational_domain, report_email_domain

VERIFIED = "verified"
MISMATCH = "mismatch"
UNSIGNED = "unsigned"
TEMPERROR = "temperror"
LABELS = (VERIFIED, MISMATCH, UNSIGNED, TEMPERROR)

MAX_SIGNATURES = 5  # DKIM-Signature headers checked per message
DNS_TIMEOUT = 5.0  # seconds, one key lookup
DNS_BUDGET = 10.0  # seconds, all key lookups of one message together
MAX_DETAIL = 300  # characters of Authenticity.detail
MAX_REASON = 80  # characters of one reason inside the detail
MAX_HEADER_BYTES = 256 * 1024  # header section handed to dkimpy
MAX_HEADER_LINES = 2000
MAX_SIGNED_FIELDS = 200  # entries in one signature's h= list
MAX_SIGNATURE_BYTES = 16 * 1024  # one DKIM-Signature value (real ones are under 2 KB)
MAX_WHITESPACE_RUN = 256  # inside one DKIM-Signature value (real folding is a few characters)
MAX_RELAXED_SPACES = 1_000_000  # in a body checked with c=*/relaxed (report bodies are base64: none)
MAX_RELAXED_WORK = 128 * 1024 * 1024  # body bytes through dkimpy's relaxed regexes per message (~30 ns a byte)
MAX_KEY_RECORD = 4096  # bytes of one DKIM key TXT record
MAX_KEY_BITS = 8192
MAX_EXPONENT_BITS = 256  # FIPS 186 caps the RSA public exponent at 2**256
MIN_KEY_BITS = 1024  # dkimpy's default: shorter RSA keys fail

DnsFunc = Callable[[bytes], bytes | str | None]
"""dkimpy's DNS function: called as ``dnsfunc(name)`` with ``name`` the key's DNS name as
bytes with a trailing dot (``b"selector._domainkey.example.com."``); returns the TXT record
(bytes or str) or None when there is none; raises on a temporary failure. dkimpy's own
``dkim.dnsplug.get_txt`` fits, and so does ``dns_txt_lookup`` below."""


@dataclass(frozen=True)
class Authenticity:
    label: str  # one of LABELS
    signing_domains: tuple[str, ...]  # d= of the signatures checked, header order, no duplicates
    detail: str  # one short line for the UI


class DnsLookupError(Exception):
    """A key lookup failed temporarily (timeout, SERVFAIL, no resolver)."""


def dns_txt_lookup(name: bytes | str, timeout: float = DNS_TIMEOUT) -> bytes | None:
    """The production DNS function: TXT record of ``name`` through ``reports.lib.resolver`` (so
    ``DNS_RESOLVER`` decides which server is asked), at most ``timeout`` s.

    None when the name or the record does not exist (a permanent "no key"); raises
    DnsLookupError when the answer could not be had (timeout, SERVFAIL, no resolver).
    """
    if isinstance(name, bytes):
        try:
            name = name.decode("ascii")
        except UnicodeDecodeError:
            return None
    try:
        answer = resolver.make().resolve(name, "TXT", lifetime=timeout, search=False, raise_on_no_answer=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.YXDOMAIN):
        return None
    except dns.exception.Timeout as exc:
        raise DnsLookupError(f"timed out after {timeout:g} s") from exc
    except dns.resolver.NoNameservers as exc:
        raise DnsLookupError("no name server answered (SERVFAIL or refused)") from exc
    except dns.resolver.NoResolverConfiguration as exc:
        raise DnsLookupError("no DNS resolver configured") from exc
    except dns.exception.DNSException as exc:
        raise DnsLookupError(type(exc).__name__) from exc
    if answer.rrset is None:
        return None
    records = [b"".join(rdata.strings) for rdata in answer.rrset]
    return next((record for record in records if b"p=" in record), records[0] if records else None)


def check_report_authenticity(
    message: bytes | str,
    report_email: str,
    dnsfunc: DnsFunc | None = None,
    *,
    max_signatures: int = MAX_SIGNATURES,
    timeout: float = DNS_TIMEOUT,
    dns_budget: float = DNS_BUDGET,
) -> Authenticity:
    """Verify the DKIM signatures of the raw report email ``message`` against the reporter's ``<email>``.

    ``dnsfunc`` answers the key lookups (see DnsFunc); None means ``dns_txt_lookup`` with
    ``timeout`` per lookup. Once the lookups of one message have taken ``dns_budget``
    seconds in all, the remaining keys count as temporary DNS failures.
    Never raises on any input.
    """
    try:
        return _check_message(message, report_email, dnsfunc, max_signatures, timeout, dns_budget)
    except Exception as exc:  # a bug here must not stop the ingest of the report
        _LOG.exception("DKIM check failed")
        return Authenticity(MISMATCH, (), f"could not be checked ({type(exc).__name__})")


# --- internals ---------------------------------------------------------------------------


def _check_message(
    message: bytes | str,
    report_email: str,
    dnsfunc: DnsFunc | None,
    max_signatures: int,
    timeout: float,
    dns_budget: float,
) -> Authenticity:
    if isinstance(message, str):
        message = message.encode("utf-8", "surrogateescape")
    header, body_start = _split_message(message)
    if not _SIGNATURE_HEADER.search(header):
        return Authenticity(UNSIGNED, (), "no DKIM signature")
    email_domain = report_email_domain(report_email)
    lines = header.count(b"\n") + 1
    if len(header) > MAX_HEADER_BYTES or lines > MAX_HEADER_LINES:
        return Authenticity(MISMATCH, (), f"not checked: header section too large ({len(header)} bytes, {lines} lines)")
    try:  # dkimpy gets the header only: its parser splits the whole message into a list of lines
        verifier = dkim.DKIM(header + b"\r\n", logger=_DKIM_LOG, minkey=MIN_KEY_BITS, timeout=timeout)
    except Exception as exc:  # MessageFormatError, or IndexError when the first line is a continuation
        reason = _reason(exc, keep_type=not isinstance(exc, dkim.DKIMException))
        return Authenticity(MISMATCH, (), f"message headers could not be parsed: {reason}")
    signatures = [
        _inspect(index, value, email_domain)
        for index, value in enumerate(value for name, value in verifier.headers if name.lower() == b"dkim-signature")
    ]
    if not signatures:  # the header regex saw one that dkimpy did not (e.g. a space before the colon)
        return Authenticity(MISMATCH, (), "malformed DKIM-Signature header")
    # Aligned signatures first: the caps and budgets are spent on the ones that can verify the report.
    chosen = sorted(signatures, key=lambda sig: (not sig.aligned, sig.index))[: max(1, max_signatures)]
    bodies = _Bodies(_crlf_body(message, body_start))
    lookup = _KeyLookup(dnsfunc, timeout, dns_budget)
    results = sorted((_check(verifier, sig, bodies, lookup) for sig in chosen), key=lambda r: r.signature.index)
    domains = tuple(dict.fromkeys(result.signature.domain for result in results if result.signature.domain))
    return _summarize(results, email_domain, domains, len(signatures))


# --- internals ---------------------------------------------------------------------------

_SELECTOR = re.compile(rb"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9_])?")
_SIGNATURE_HEADER = re.compile(rb"^dkim-signature[ \t]*:", re.IGNORECASE | re.MULTILINE)
_BLANK_LINE = re.compile(rb"\n\r?\n")
_LONG_WHITESPACE = re.compile(rb"\s{%d,}" % (MAX_WHITESPACE_RUN + 1))
_BYTES_REPR = re.compile(r"\bb'([^']*)'")

PASS, FAIL, TEMP, MALFORMED = "pass", "fail", "temp", "malformed"

_LOG = logging.getLogger(__name__)

# dkimpy logs every failed key at ERROR with attacker-chosen text; the result says it all.
_DKIM_LOG = logging.getLogger(__name__ + ".dkimpy")
_DKIM_LOG.addHandler(logging.NullHandler())
_DKIM_LOG.propagate = False


@dataclass(frozen=True)
class _Signature:
    index: int  # position among the DKIM-Signature headers, as dkimpy's verify(idx) counts
    domain: str  # normalized d=, "" when missing or invalid
    aligned: bool
    relaxed_body: bool
    problem: str  # why it is malformed, "" when it can go to dkimpy


@dataclass(frozen=True)
class _Result:
    signature: _Signature
    status: str  # PASS, FAIL, TEMP or MALFORMED
    reason: str


def _inspect(index: int, value: bytes, email_domain: str) -> _Signature:
    """The cheap look at one DKIM-Signature before any DNS or crypto: size, d=, s=, h=, c=.

    dkimpy's regexes for b= and h= backtrack quadratically on long whitespace runs
    (80 KB of spaces in b= takes half a minute), so those never reach it.
    """
    if len(value) > MAX_SIGNATURE_BYTES:
        return _Signature(index, "", False, False, f"longer than {MAX_SIGNATURE_BYTES} bytes")
    if _LONG_WHITESPACE.search(value):
        return _Signature(index, "", False, False, f"whitespace run longer than {MAX_WHITESPACE_RUN} characters")
    try:
        tags = dkim.util.parse_tag_value(value)
    except Exception:
        return _Signature(index, "", False, False, "not a tag=value list")
    raw_domain = tags.get(b"d", b"")
    domain = normalize_domain(raw_domain.decode("ascii", "replace"))
    aligned = bool(domain and email_domain) and _aligned(domain, email_domain)
    canon = tags.get(b"c", b"simple/simple").split(b"/")
    relaxed = len(canon) == 2 and canon[1] == b"relaxed"
    problem = ""
    if not domain:
        problem = "missing or invalid d= domain"
    elif not _SELECTOR.fullmatch(tags.get(b"s", b"")):
        problem = "missing or invalid s= selector"
    elif tags.get(b"h", b"").count(b":") + 1 > MAX_SIGNED_FIELDS:
        problem = f"signs more than {MAX_SIGNED_FIELDS} header fields"
    return _Signature(index, domain, aligned, relaxed, problem)


def _aligned(signing_domain: str, email_domain: str) -> bool:
    org = organizational_domain(signing_domain)
    return bool(org) and org == organizational_domain(email_domain)


def _split_message(message: bytes) -> tuple[bytes, int]:
    """The header lines as dkimpy's parser cuts them (up to the first empty line), and where the body starts."""
    if message.startswith((b"\n", b"\r\n")):
        return b"", message.index(b"\n") + 1
    blank = _BLANK_LINE.search(message)
    if blank is None:
        return message, len(message)
    return message[: blank.start() + 1], blank.end()


def _crlf_body(message: bytes, start: int) -> bytes:
    """The body as dkimpy's ``b"\\r\\n".join(re.split(b"\\r?\\n", ...))`` makes it, without a list of lines."""
    return message[start:].replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


class _Bodies:
    """The body pre-canonicalized, so dkimpy's own canonicalization has no slow case left.

    Both canonicalizations drop empty lines at the end (keep one CRLF: same result, no
    long Python loop); relaxed also shrinks whitespace runs to one space and drops it
    before CRLF, in linear time (dkimpy's ``[\\t ]+\\r\\n`` is quadratic on long runs).
    Both are idempotent, so dkimpy canonicalizing again yields the same bytes it would
    have produced from the original body.
    """

    def __init__(self, body: bytes):
        self.raw = body
        self.simple = _trim_blank_lines(self.raw)
        self.relaxed_work_left = MAX_RELAXED_WORK
        self._relaxed: bytes | None = None
        self._relaxed_spaces = 0

    @property
    def relaxed(self) -> bytes:
        if self._relaxed is None:
            self._relaxed = _trim_blank_lines(_relaxed_body(self.raw))
            self._relaxed_spaces = self._relaxed.count(b" ")
        return self._relaxed

    def for_signature(self, sig: _Signature) -> bytes | str:
        """The body to give dkimpy for ``sig``, or why it is not checked."""
        if not sig.relaxed_body:
            return self.simple
        body = self.relaxed
        if self._relaxed_spaces > MAX_RELAXED_SPACES:
            return f"body has more than {MAX_RELAXED_SPACES} spaces, not checked"
        if len(body) > self.relaxed_work_left:
            return "not checked: this message's budget for relaxed body checks is used up"
        self.relaxed_work_left -= len(body)
        return body


def _relaxed_body(body: bytes) -> bytes:
    """RFC 6376 relaxed body whitespace rules with bytes.replace: no regex, no list of pieces."""
    body = body.replace(b"\t", b" ")
    while b"  " in body:  # each pass halves every run of spaces
        body = body.replace(b"  ", b" ")
    return body.replace(b" \r\n", b"\r\n")


def _trim_blank_lines(body: bytes) -> bytes:
    """Keep one of the CRLFs that end the body: both canonicalizations drop the rest anyway."""
    if not body.endswith(b"\r\n\r\n"):
        return body
    tail = body[len(body.rstrip(b"\r\n")) :]
    # The CR/LF run alternates after its last doubled character; from there, whole CRLF pairs.
    alternating = len(tail) - 1 - max(tail.rfind(b"\r\r"), tail.rfind(b"\n\n"))
    return body[: len(body) - 2 * (alternating // 2 - 1)]


class _KeyProblem(Exception):
    """Raised through dkimpy by the DNS wrapper; dkimpy does not catch it, so its reason survives."""


class _TempFail(_KeyProblem):
    pass


class _NoKey(_KeyProblem):
    pass


class _BadKey(_KeyProblem):
    pass


class _KeyLookup:
    """The DNS function handed to dkimpy: one lookup per name, a shared time budget, keys checked first."""

    def __init__(self, dnsfunc: DnsFunc | None, timeout: float, budget: float):
        self._dnsfunc = dnsfunc
        self._timeout = timeout
        self._budget = budget  # seconds left for lookups (hashing a big body does not count)
        self._cache: dict[bytes, bytes | _KeyProblem] = {}

    def __call__(self, name: bytes, timeout: float | None = None) -> bytes:
        key = name.lower()
        if key not in self._cache:
            self._cache[key] = self._fetch(name)
        found = self._cache[key]
        if isinstance(found, _KeyProblem):
            raise type(found)(*found.args)
        return found

    def _fetch(self, name: bytes) -> bytes | _KeyProblem:
        if self._budget <= 0:
            return _TempFail("DNS time budget used up")
        started = time.monotonic()
        try:
            if self._dnsfunc is None:
                record = dns_txt_lookup(name, timeout=min(self._timeout, self._budget))
            else:
                record = self._dnsfunc(name)
        except DnsLookupError as exc:
            return _TempFail(_clip(str(exc), MAX_REASON))
        except Exception as exc:  # an injected function may raise anything
            return _TempFail(_reason(exc, keep_type=True))
        finally:
            self._budget -= time.monotonic() - started
        where = name.decode("ascii", "replace").rstrip(".")
        if not record:
            return _NoKey(f"no DKIM key at {where}")
        if isinstance(record, str):
            if not record.isascii():
                return _BadKey("key record is not ASCII")
            record = record.encode("ascii")
        if not isinstance(record, bytes):
            return _BadKey("key lookup returned no text")
        if len(record) > MAX_KEY_RECORD:
            return _BadKey(f"key record longer than {MAX_KEY_RECORD} bytes")
        try:
            if dkim.util.parse_tag_value(record).get(b"p", b"x") == b"":
                return _BadKey(f"key at {where} is revoked (empty p=)")
            public_key, bits, kind, _ = dkim.evaluate_pk(name, record)
        except dkim.NaClNotFoundError:
            return _BadKey("ed25519 keys are not supported")
        except Exception as exc:
            return _BadKey(f"bad key record: {_reason(exc)}")
        if kind == b"rsa":
            if bits > MAX_KEY_BITS:
                return _BadKey(f"RSA key of {bits} bits is larger than {MAX_KEY_BITS}")
            if public_key["publicExponent"].bit_length() > MAX_EXPONENT_BITS:
                return _BadKey("RSA public exponent too large")
        return record


def _check(verifier: dkim.DKIM, sig: _Signature, bodies: _Bodies, lookup: _KeyLookup) -> _Result:
    if sig.problem:
        return _Result(sig, MALFORMED, sig.problem)
    body = bodies.for_signature(sig)
    if isinstance(body, str):
        return _Result(sig, FAIL, body)
    verifier.body = body
    try:
        ok = verifier.verify(sig.index, dnsfunc=lookup)
    except _TempFail as exc:
        return _Result(sig, TEMP, str(exc))
    except _KeyProblem as exc:
        return _Result(sig, FAIL, str(exc))
    except dkim.DKIMException as exc:
        return _Result(sig, FAIL, _reason(exc))
    except Exception as exc:  # dkimpy has IndexError, KeyError, ... paths on malformed input
        return _Result(sig, MALFORMED, f"could not be checked ({type(exc).__name__})")
    if ok:
        return _Result(sig, PASS, "")
    return _Result(sig, FAIL, "signature does not match the published key")


def _summarize(results: list[_Result], email_domain: str, domains: tuple[str, ...], total: int) -> Authenticity:
    for result in results:
        if result.status == PASS and result.signature.aligned:
            detail = f"signed by {result.signature.domain}, verified, matches <email> domain {email_domain}"
            return Authenticity(VERIFIED, domains, _clip(detail, MAX_DETAIL))
    capped = f"only {len(results)} of {total} signatures were checked" if total > len(results) else ""
    for result in results:
        if result.status == TEMP and result.signature.aligned:
            detail = f"DNS lookup for the key of {result.signature.domain} failed: {result.reason}; check again later"
            return Authenticity(TEMPERROR, domains, _clip("; ".join(filter(None, [detail, capped])), MAX_DETAIL))
    claims = f"the report claims {email_domain}" if email_domain else "the report has no usable <email> address"
    ranked: list[tuple[int, str]] = []
    for result in results:
        sig, reason = result.signature, result.reason
        if result.status == PASS:
            ranked.append((0, f"signature by {sig.domain} verified but {claims}"))
        elif result.status == FAIL:
            ranked.append((1 if sig.aligned else 3, f"signature by {sig.domain} did not verify: {reason}"))
        elif result.status == TEMP:
            ranked.append((2, f"DNS lookup for the key of {sig.domain} failed: {reason}"))
        else:
            ranked.append((4, f"malformed DKIM-Signature header: {reason}"))
    parts = list(dict.fromkeys(text for _, text in sorted(ranked, key=lambda item: item[0])))
    if not email_domain and not any(result.status == PASS for result in results):
        parts.append(claims)
    if not capped:
        return Authenticity(MISMATCH, domains, _clip("; ".join(parts), MAX_DETAIL))
    detail = _clip("; ".join(parts), MAX_DETAIL - len(capped) - 2) + "; " + capped  # the cap note always shows
    return Authenticity(MISMATCH, domains, detail)


def _reason(exc: BaseException, keep_type: bool = False) -> str:
    """A short, printable reason: dkimpy appends the offending (attacker's) value in parentheses."""
    text = str(exc).split(" (", 1)[0].strip()
    text = _BYTES_REPR.sub(r"\1", text)
    if keep_type:
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return _clip(text or type(exc).__name__, MAX_REASON)


def _clip(text: str, limit: int) -> str:
    """At most ``limit`` printable characters on one line, "…" marking a cut."""
    text = "".join(char if char.isprintable() else " " for char in text[: 4 * limit])
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
