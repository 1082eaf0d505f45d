"""Domain names: normalized, checked as a name a person may add, and their organizational domain.

The organizational domain is the public suffix plus one label, from the Public Suffix List that
``publicsuffixlist`` ships inside the package (no network). Everything here is pure Python: no
Django, no DNS.
"""

import re
from functools import cache

from publicsuffixlist import PublicSuffixList

MAX_NAME = 253
MAX_LABEL = 63
_HOSTNAME = re.compile(r"(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


class InvalidName(ValueError):
    """Why a name typed into the "Add a domain" form cannot be a domain; the message is shown as is."""


def report_email_domain(email: str) -> str:
    """The domain of a report's ``<email>``, lower-case ASCII (IDNA), or "" when there is none.

    Copes with ``<noreply@google.com>``, ``Name <a@b>``, ``mailto:`` prefixes and ``?``
    queries, rua size suffixes (``!10m``), lists, whitespace, case and a trailing dot.
    """
    if not email:
        return ""
    text = email.strip()
    bracketed = re.search(r"<([^<>]*@[^<>]*)>", text)
    if bracketed:
        text = bracketed.group(1)
    for token in re.split(r"[\s,;<>]+", text):
        if token.lower().startswith("mailto:"):
            token = token[len("mailto:") :]
        token = token.split("?", 1)[0].split("!", 1)[0]
        if "@" in token:
            return normalize_domain(token.rpartition("@")[2])
    return ""


def normalize_domain(domain: str) -> str:
    """``domain`` as lower-case ASCII (IDNA A-labels) without a trailing dot, or "" if it is no host name."""
    domain = domain.strip().rstrip(".").lower()
    if not domain:
        return ""
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            return ""
    if len(domain) > 253 or not _HOSTNAME.fullmatch(domain):
        return ""
    return domain


def organizational_domain(domain: str) -> str:
    """The organizational domain (public suffix + one label) of ``domain``, or "" for a public suffix."""
    domain = normalize_domain(domain)
    if not domain:
        return ""
    return _psl().privatesuffix(domain) or ""


@cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()  # the list shipped inside the package: no network


def clean_name(raw: str) -> str:
    """The domain name as stored: lower case, no trailing dot, IDNA A-labels (punycode).

    Raises InvalidName for what is no host name, or is a public suffix (``co.uk``): nobody owns
    those, and claiming one would collect every registrant's reports below it.
    """
    name = (raw or "").strip().lower().rstrip(".")
    if not name:
        raise InvalidName("Enter a domain name.")
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidName("That is not a valid internationalised domain name.") from None
    if len(name) > MAX_NAME:
        raise InvalidName(f"A domain name has at most {MAX_NAME} characters.")
    labels = name.split(".")
    if len(labels) < 2:
        raise InvalidName("Enter the full domain name, such as example.com.")
    for label in labels:
        if not label or len(label) > MAX_LABEL:
            raise InvalidName(f"Each part between dots must have 1 to {MAX_LABEL} characters.")
        if not all(char.isalnum() or char == "-" for char in label) or label[0] == "-" or label[-1] == "-":
            raise InvalidName("A domain name has only letters, digits and hyphens (not at the start or end of a part).")
        if label.startswith("xn--"):
            try:
                label.encode("ascii").decode("idna")
            except UnicodeError:
                raise InvalidName("A part starting with xn-- is not valid punycode.") from None
    if labels[-1].isdigit():
        raise InvalidName("That looks like an IP address, not a domain name.")
    if not organizational_domain(name):  # the Public Suffix List names it a suffix
        raise InvalidName(f"{name} is a public suffix: add a domain registered under it, such as example.{name}.")
    return name


def candidates(policy_domain: str) -> list[str]:
    """The names that may own reports for ``policy_domain``, most specific first: itself, then its
    parents down to its organizational domain (just itself when it has none)."""
    name = policy_domain.strip().lower().rstrip(".")
    found = [name]
    base = organizational_domain(name)
    if not base or not name.endswith("." + base):
        return found
    while name != base:
        name = name.partition(".")[2]
        found.append(name)
    return found
