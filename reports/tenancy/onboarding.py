"""The records a domain's owner publishes so that its reports come here: the DMARC record with this
install's rua address (or the published one with the address added), and the verification
record when that address is in another organization's domain (RFC 7489 section 7.1)."""

from django.conf import settings

from reports.lib.dnsrecords import dmarc


def report_address(organization=None) -> str:
    """Where receivers send the reports of ``organization``'s domains: its own report address, else
    the install's DMARC_RUA; "" when neither is a valid address (then no record is offered)."""
    for raw in (getattr(organization, "report_address", ""), settings.DMARC_RUA):
        raw = (raw or "").strip()
        address = dmarc.mailto_address(raw if raw.lower().startswith("mailto:") else f"mailto:{raw}") if raw else ""
        if address:
            return address
    return ""


def suggested_address(organization) -> str:
    """A likely report address to offer when none is set: the user name of a mailbox the
    organization polls, when it is an email address (reports are delivered to that mailbox)."""
    for username in organization.mailboxes.order_by("pk").values_list("username", flat=True):
        address = dmarc.mailto_address(f"mailto:{username.strip()}") if "@" in username else ""
        if address:
            return address
    return ""


def new_record(address: str, ruf: str = "", fo: str = "") -> str:
    """The record for a domain without one: monitoring only, reports to ``address`` (if any), and
    failure reports to ``ruf`` with ``fo`` when asked."""
    return dmarc.format_dmarc(
        {
            "p": "none",
            "rua": f"mailto:{address}" if address else None,
            "ruf": f"mailto:{ruf}" if ruf else None,
            "fo": fo or None,
        }
    )


def sends_here(found: dmarc.DmarcResult, address: str) -> bool:
    return bool(address) and address.lower() in (item.lower() for item in found.rua_addresses)


def merged_record(found: dmarc.DmarcResult, address: str) -> str:
    """The published record with ``address`` added to its rua=, everything else (its p= above all)
    kept; "" when there is nothing to add or the record cannot be rewritten safely."""
    if not found.record or not address or sends_here(found, address):
        return ""
    tags = dict(found.record)
    tags["rua"] = ",".join([*found.rua_uris, f"mailto:{address}"])
    tags.setdefault("p", "none")
    try:
        return dmarc.format_dmarc(tags)
    except ValueError:  # a published value the record syntax cannot hold: the owner edits by hand
        return ""


def verification_records(domain_name: str, address: str) -> list[tuple[str, str]]:
    """The record the report address's domain must publish when it is outside the domain's
    organizational domain (RFC 7489 §7.1), else none."""
    return dmarc.external_verification(domain_name, [f"mailto:{address}"]) if address else []
