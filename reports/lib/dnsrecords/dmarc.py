"""DMARC policy records: parsed, checked and written (RFC 9989, still read by RFC 7489 receivers).

``parse_dmarc`` reads the TXT strings found at ``_dmarc.<domain>`` and says what is wrong with
them in three degrees: ``errors`` (receivers ignore the record or a tag of it), ``warnings``
(probably not what the owner meant) and ``notes`` (worth knowing, nothing to fix).
``format_dmarc`` and ``record_for_stage`` write the record of the next stage of the staged plan
(design/standards.md §4), and ``external_verification`` lists the records a report destination
in another organizational domain must publish before receivers send it reports.

What RFC 9989 changed, and what this module therefore says about it:

- ``pct``, ``rf`` and ``ri`` are removed: RFC 9989 receivers ignore them, so ``p=quarantine;
  pct=25`` quarantines all failing mail there, while RFC 7489 receivers still sample 25%.
- ``t=y`` (testing) asks receivers to apply the next lower policy; RFC 7489 receivers do not
  know it, but ``pct=0`` asks them for the same thing, so testing stages publish both.
- ``np`` is the policy for subdomains that do not exist (falls back to ``sp``, then ``p``);
  ``psd`` marks public-suffix operators (``y``), organizational domains (``n``) or neither (``u``).
- Unknown tags are ignored by receivers.

Pure Python, no Django and no DNS (``reports.lib.dnsrecords.lookups`` does the lookups).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from reports.lib.dnsrecords import shown
from reports.lib.names import normalize_domain, organizational_domain

POLICIES = ("none", "quarantine", "reject")
TAG_ORDER = ("v", "p", "sp", "np", "t", "pct", "adkim", "aspf", "fo", "rua", "ruf")
REMOVED_TAGS = ("pct", "rf", "ri")  # historic in RFC 9989: its receivers ignore them
KNOWN_TAGS = frozenset(TAG_ORDER) | {"psd", "rf", "ri"}
VERIFICATION_RECORD = "v=DMARC1"

SEVERAL_RECORDS = "several DMARC records: receivers treat the domain as having none"

_VERSION = re.compile(r"\s*v\s*=\s*dmarc1\s*(?:;|$)", re.IGNORECASE)
_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_SIZE = re.compile(r"[0-9]+[kmgt]?", re.IGNORECASE)
_LOCAL_PART = re.compile(r"[^\s@<>(),;:\\\"\[\]]+")


@dataclass
class DmarcResult:
    """What ``parse_dmarc`` found at one ``_dmarc`` name.

    ``record`` holds the tags of the (first) DMARC record in published order, with lower-case
    names and values stripped of surrounding spaces but otherwise as published. With several
    records it is the first one, and ``errors`` says that receivers use none. The helpers give
    the policy receivers apply from the published tags, lower-case ("" when absent or invalid).
    """

    record: dict[str, str] = field(default_factory=dict)
    texts: list[str] = field(default_factory=list)  # the DMARC records found, as published
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def found(self) -> bool:
        """Whether there is at least one DMARC record (valid or not)."""
        return bool(self.texts)

    @property
    def valid(self) -> bool:
        """Whether there is exactly one record and nothing in it is an error."""
        return len(self.texts) == 1 and not self.errors

    @property
    def policy(self) -> str:
        """``p``: none, quarantine or reject."""
        return _keyword(self.record.get("p"), POLICIES)

    @property
    def subdomain_policy(self) -> str:
        """``sp``, falling back to ``p``."""
        return _keyword(self.record.get("sp"), POLICIES) or self.policy

    @property
    def nonexistent_policy(self) -> str:
        """``np`` (subdomains that do not exist), falling back to ``sp``, then ``p``."""
        return _keyword(self.record.get("np"), POLICIES) or self.subdomain_policy

    @property
    def testing(self) -> bool:
        """``t=y``: receivers apply the next lower policy."""
        return _keyword(self.record.get("t"), ("y", "n")) == "y"

    @property
    def rua_uris(self) -> list[str]:
        """The ``rua`` URIs as published (``mailto:dmarc@example.com!10m``)."""
        return _uris(self.record.get("rua", ""))

    @property
    def rua_addresses(self) -> list[str]:
        """The addresses of the valid ``mailto:`` URIs in ``rua``, without scheme or size limit."""
        return [address for address in (mailto_address(uri) for uri in self.rua_uris) if address]


def parse_dmarc(texts: list[str]) -> DmarcResult:
    """Parse and check the TXT strings found at ``_dmarc.<domain>`` (each joined from its character-strings).

    A DMARC record is a text whose first tag is ``v=DMARC1`` (any case, any spaces: a sloppy one is
    an error, not ignored). Other texts are skipped, unless no text starts that way, in which case
    a text carrying ``v=DMARC1`` later on is taken as the record (with the error that receivers
    ignore it). Never raises.
    """
    result = DmarcResult()
    candidates = [text for text in texts if _VERSION.match(text)]
    if not candidates:
        candidates = [text for text in texts if any(_is_version(name, value) for name, value in _pairs(text))][:1]
    if not candidates:
        others = f" (no TXT record here starts with v=DMARC1: {_count(len(texts), 'other record')})" if texts else ""
        result.errors.append(f"no DMARC record{others}")
        return result
    result.texts = list(candidates)
    if len(candidates) > 1:
        result.errors.append(SEVERAL_RECORDS)
    _parse_record(candidates[0], result)
    return result


def format_dmarc(tags: Mapping[str, str | None]) -> str:
    """The record text for ``tags``: ``v=DMARC1`` first, then ``TAG_ORDER``, then other tags in their order.

    Tag names are lower-cased; tags whose value is None or "" are left out. Raises ValueError for a
    tag name or value that would break the record (``;``, quotes, control characters).
    """
    ordered = _canonical(tags)
    for name, value in ordered.items():
        if not _TAG_NAME.fullmatch(name):
            raise ValueError(f"not a DMARC tag name: {name!r}")
        if any(char in value for char in ';"\\') or not value.isprintable():
            raise ValueError(f"{name}= value cannot go into a DMARC record: {value!r}")
    return "; ".join(f"{name}={value}" for name, value in ordered.items())


def record_for_stage(
    current: Mapping[str, str] | None, stage_tags: Mapping[str, str | None], *, rua: list[str] | None = None
) -> dict[str, str]:
    """The tags of the record to publish for a stage, in ``format_dmarc`` order with ``v=DMARC1`` first.

    1. Start from the published tags ``current`` (None or {} when there is no record): ``rua``,
       ``ruf``, ``adkim``, ``aspf``, ``sp``, ``np``, ``fo``, ``psd`` and unknown tags stay as they are.
    2. Apply ``stage_tags`` (``{"p": "quarantine", "t": "y", "pct": "0"}``); a None value removes a tag.
    3. A stage that does not set ``t`` drops ``t``, and one that does not set ``pct`` drops ``pct``,
       so leaving a testing stage or a ramp step leaves neither behind.
    4. A testing stage (``t=y``) that sets no ``pct`` gets ``pct=0``: RFC 7489 receivers do not know
       ``t`` and would otherwise apply the policy to all mail, while ``pct=0`` asks them, as ``t=y``
       asks RFC 9989 receivers, for the next lower policy.
    5. Without a published ``rua``, the ``rua`` argument is used (addresses or ``mailto:`` URIs).

    Ramp steps set ``pct`` (``{"p": "quarantine", "pct": "25"}``). Only RFC 7489 receivers sample by
    ``pct``: RFC 9989 removed it and its receivers ignore it, so they apply the step's ``p`` to all
    failing mail from the first ramp step on. The UI must say so.
    """
    tags = {name.lower(): value for name, value in (current or {}).items() if name.lower() != "v"}
    for name in ("t", "pct"):
        if name not in {key.lower() for key in stage_tags}:
            tags.pop(name, None)
    for name, value in stage_tags.items():
        if value is None:
            tags.pop(name.lower(), None)
        else:
            tags[name.lower()] = str(value)
    if _keyword(tags.get("t"), ("y", "n")) == "y" and "pct" not in tags:
        tags["pct"] = "0"
    if not tags.get("rua") and rua:
        tags["rua"] = ",".join(uri if ":" in uri else f"mailto:{uri}" for uri in (item.strip() for item in rua) if uri)
    return _canonical({"v": "DMARC1", **tags})


def external_verification(policy_domain: str, rua_uris: list[str]) -> list[tuple[str, str]]:
    """The TXT records that report destinations outside the policy domain's organization must publish.

    For each ``mailto:`` URI (or bare address) whose domain is in another organizational domain than
    ``policy_domain``: ``(f"{policy_domain}._report._dmarc.{rua_domain}", "v=DMARC1")``, once per host,
    in the order of ``rua_uris``. Receivers look that record up before sending reports there; without
    it, no reports arrive. The destination may publish ``*._report._dmarc.<rua_domain>`` instead to
    accept reports for every domain. Invalid URIs are skipped (``parse_dmarc`` reports them).

    Organizational domains come from the Public Suffix List shipped with ``publicsuffixlist``, as
    elsewhere in the project, not from RFC 9989's DNS tree walk: this is advice shown to the owner,
    and for ordinary domains the offline list gives the same answer without any network.
    """
    policy_domain = normalize_domain(policy_domain)
    policy_org = organizational_domain(policy_domain)
    found: list[tuple[str, str]] = []
    for uri in rua_uris:
        address = mailto_address(uri if ":" in uri else f"mailto:{uri}")
        if not address or not policy_domain:
            continue
        rua_domain = address.rpartition("@")[2]
        if policy_org and organizational_domain(rua_domain) == policy_org:
            continue
        host = f"{policy_domain}._report._dmarc.{rua_domain}"
        if all(host != seen for seen, _ in found):
            found.append((host, VERIFICATION_RECORD))
    return found


def mailto_address(uri: str) -> str:
    """The address of a ``mailto:`` report URI (``mailto:dmarc@example.com!10m``), domain lower-case,
    or "" when ``uri`` is no valid ``mailto:`` URI with a size limit of the form ``!<digits>[kmgt]``."""
    scheme, colon, rest = uri.strip().partition(":")
    if not colon or scheme.lower() != "mailto":
        return ""
    address, bang, size = rest.partition("!")
    if bang and not _SIZE.fullmatch(size):
        return ""
    address = address.split("?", 1)[0]
    local, at, domain = address.rpartition("@")
    domain = normalize_domain(domain)
    if not at or not domain or "." not in domain or not _LOCAL_PART.fullmatch(local):
        return ""
    return f"{local}@{domain}"


# --- internals ---------------------------------------------------------------------------


def _parse_record(text: str, result: DmarcResult) -> None:
    """Fill ``result`` from one DMARC record: tags, then the checks of each value, then the whole."""
    errors, warnings, notes = result.errors, result.warnings, result.notes
    if text[:1].isspace():
        errors.append("the record starts with a space: receivers look for v=DMARC1 at the very start")
    parts = text.split(";")
    if len(parts) > 1 and not parts[-1].strip():
        parts.pop()  # a trailing ";" is allowed
    upper_names: list[str] = []
    upper_values: list[str] = []
    unknown: list[str] = []
    spaced = False
    for index, part in enumerate(parts):
        if not part.strip():
            errors.append("an empty tag (two ; in a row)")
            continue
        if "=" not in part:
            errors.append(f"{shown(part.strip())!r} is not a tag: it has no =")
            continue
        raw_name, _, raw_value = part.partition("=")
        name, value = raw_name.strip(), raw_value.strip()
        spaced = spaced or raw_name != raw_name.rstrip() or raw_value != raw_value.lstrip()
        spaced = spaced or (index < len(parts) - 1 and raw_value != raw_value.rstrip())
        if not name:
            errors.append(f"a tag without a name: ={shown(value)}")
            continue
        if not _TAG_NAME.fullmatch(name):
            errors.append(f"{shown(name)!r} is not a valid tag name")
            continue
        key = name.lower()
        if name != key:
            upper_names.append(name)
        if index == 0 and key != "v":
            errors.append("v=DMARC1 is not the first tag: receivers ignore the record")
        if key in result.record:
            errors.append(f"{key}= appears more than once: receivers may ignore the record or take either value")
            continue
        result.record[key] = value
        if key not in KNOWN_TAGS:
            unknown.append(key)
            continue
        if key == "v":
            if value != "DMARC1":
                errors.append(f"v={shown(value)} must be exactly v=DMARC1: receivers ignore the record")
            continue
        if not value:
            errors.append(f"{key}= has no value")
            continue
        problem = _check_value(key, value)
        if problem:
            errors.append(problem)
        elif key in _KEYWORDS and value != value.lower():
            upper_values.append(f"{key}={value}")

    record = result.record
    if upper_names:
        warnings.append(
            f"tag names in upper case ({', '.join(upper_names)}): many receivers accept them, "
            "but some do not; write them in lower case"
        )
    if upper_values:
        warnings.append(f"values in upper case ({', '.join(upper_values)}): write them in lower case")
    if spaced:
        notes.append("spaces around = or before ; are allowed, but some receivers' parsers trip on them")
    if "p" not in record:
        errors.append(
            "no p= tag: RFC 9989 receivers apply p=none, RFC 7489 receivers ignore the record unless rua is valid"
        )
    elif list(record)[0] == "v" and list(record)[1] != "p":
        warnings.append("p= does not come right after v=DMARC1, where RFC 7489 puts it and some receivers expect it")
    if unknown:
        warnings.append(f"unknown tags, ignored by receivers: {', '.join(shown(name) for name in unknown)}")
    # pct is explained together with t (and p) by _check_testing, when they give it a meaning.
    explained = _check_testing(result)
    removed = [name for name in REMOVED_TAGS if name in record and not (name == "pct" and explained)]
    if removed:
        them = "them" if len(removed) > 1 else "it"
        notes.append(
            f"{', '.join(removed)}: removed by RFC 9989, whose receivers ignore {them}; RFC 7489 receivers still "
            f"read {them}"
        )
    if not record.get("rua"):
        warnings.append("no rua: no aggregate reports will arrive")


_KEYWORDS = {
    "p": POLICIES,
    "sp": POLICIES,
    "np": POLICIES,
    "adkim": ("r", "s"),
    "aspf": ("r", "s"),
    "t": ("y", "n"),
    "psd": ("y", "n", "u"),
}
_FO = ("0", "1", "d", "s")


def _check_value(name: str, value: str) -> str:
    """Why the value of the known tag ``name`` is invalid, or ""."""
    if name in _KEYWORDS:
        allowed = _KEYWORDS[name]
        if value.lower() not in allowed:
            return f"{name}={shown(value)} is not one of {'|'.join(allowed)}: receivers ignore it"
        return ""
    if name == "pct":
        if not value.isdigit() or not 0 <= int(value) <= 100:
            return f"pct={shown(value)} is not a whole number from 0 to 100"
        return ""
    if name == "fo":
        if any(option.strip().lower() not in _FO for option in value.split(":")):
            return f"fo={shown(value)} is not a :-separated list of 0, 1, d and s"
        return ""
    if name in ("rua", "ruf"):
        return _check_uris(name, value)
    if name == "ri" and not value.isdigit():
        return f"ri={shown(value)} is not a number of seconds"
    return ""


def _check_uris(name: str, value: str) -> str:
    uris = _uris(value)
    if len(uris) != len(value.split(",")):
        return f"{name}= has an empty entry (two commas in a row, or a trailing comma)"
    for uri in uris:
        if not uri.lower().startswith("mailto:"):
            return f"{name}: {shown(uri)!r} is not a mailto: URI, the only kind receivers send reports to"
        if not mailto_address(uri):
            return f"{name}: {shown(uri)!r} is not a valid mailto:address[!size] (a size is digits and k, m, g or t)"
    return ""


def _check_testing(result: DmarcResult) -> bool:
    """Say what ``t`` and ``pct`` together mean to both generations of receivers; whether pct was explained."""
    record = result.record
    pct = record.get("pct", "")
    enforcing = result.policy in ("quarantine", "reject")
    if not pct.isdigit() or int(pct) > 100:
        pct = ""
    if result.testing and "pct" in record:
        if pct == "0":
            result.notes.append(
                "pct=0 with t=y is the recommended combination for a testing stage: RFC 9989 receivers read t=y, "
                "RFC 7489 receivers read pct=0, and both apply the next lower policy"
            )
        elif pct:
            result.warnings.append(
                f"t=y with pct={pct}: RFC 9989 receivers apply the next lower policy to all mail, "
                f"RFC 7489 receivers apply p={result.policy or 'none'} to {pct}% of it; use pct=0 with t=y"
            )
        return bool(pct)
    if result.testing and enforcing:
        result.warnings.append(
            f"t=y without pct=0: RFC 7489 receivers do not know t and apply p={result.policy} to all failing mail; "
            "add pct=0"
        )
    elif pct and int(pct) < 100 and enforcing:
        result.notes.append(
            f"pct={pct}: RFC 7489 receivers apply p={result.policy} to {pct}% of failing mail, "
            "RFC 9989 receivers ignore pct and apply it to all"
        )
        return True
    return False


def _pairs(text: str) -> list[tuple[str, str]]:
    return [
        (name.strip(), value.strip()) for name, eq, value in (part.partition("=") for part in text.split(";")) if eq
    ]


def _is_version(name: str, value: str) -> bool:
    return name.lower() == "v" and value.lower() == "dmarc1"


def _uris(value: str) -> list[str]:
    return [uri for uri in (item.strip() for item in value.split(",")) if uri]


def _keyword(value: str | None, allowed: tuple[str, ...]) -> str:
    value = (value or "").strip().lower()
    return value if value in allowed else ""


def _canonical(tags: Mapping[str, str | None]) -> dict[str, str]:
    """``tags`` without empty ones, lower-case names, ``v=DMARC1`` first and then ``TAG_ORDER``."""
    present = {name.strip().lower(): str(value).strip() for name, value in tags.items() if value is not None}
    present = {name: value for name, value in present.items() if value}
    present["v"] = "DMARC1"
    ordered = {name: present[name] for name in TAG_ORDER if name in present}
    ordered.update((name, value) for name, value in present.items() if name not in ordered)
    return ordered


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
