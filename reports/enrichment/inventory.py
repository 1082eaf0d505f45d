"""A domain's sender inventory: which sender an IP belongs to as one organization sees it, and
whether the domain authorises it.

The organization's own senders (by network, then by name) come first, then the catalog match
that enrichment found. Readiness, alerts and the dashboard group IPs the same way: by named
sender, else by /24 (IPv4) or /64 (IPv6) network.
"""

import hashlib
import ipaddress
from collections.abc import Iterable

from django.db import transaction
from django.db.models import Q

from reports.enrichment import ip_lookup
from reports.enrichment.catalog import Catalog
from reports.enrichment.catalog import Sender as CatalogSender
from reports.lib.names import normalize_domain, organizational_domain
from reports.models import Domain, DomainSender, Sender, SourceIP
from reports.tenancy import audit


def organization_catalog(senders: Iterable[Sender]) -> Catalog:
    """An organization's own senders, matched the same way as the shipped catalog."""
    return Catalog(
        CatalogSender(
            slug=s.slug,
            name=s.name,
            category=s.category,
            ptr_domains=tuple(s.ptr_domains),
            dkim_domains=tuple(s.dkim_domains),
            spf_includes=tuple(s.spf_includes),
            asns=tuple(s.asns),
        )
        for s in senders
    )


def sender_for(
    row: SourceIP, organization_senders: list[Sender], dkim_domains: Iterable[str] = ()
) -> tuple[Sender | None, str]:
    """The sender of an IP as one organization sees it: its own senders (networks, then names: the
    confirmed PTR, the DKIM signing domains its mail carried, the ASN) first, then the catalog match
    found by enrichment. Returns the sender and the evidence."""
    address = ipaddress.ip_address(row.ip)
    for sender in organization_senders:
        for network in sender.networks:
            try:
                if address in ipaddress.ip_network(network, strict=False):
                    return sender, f"in {sender.name}'s network {network}"
            except ValueError:
                continue
    own = organization_catalog(organization_senders).match(
        ptr=row.ptr if row.forward_confirmed else "", dkim_domains=dkim_domains, asn=row.asn
    )
    if own is not None:
        by_slug = {sender.slug: sender for sender in organization_senders}
        return by_slug[own.sender.slug], own.evidence
    return row.sender, row.sender_evidence


def network_of(ip: str) -> str:
    address = ipaddress.ip_address(ip)
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


class Inventory:
    """A domain's inventory applied to IPs: names each IP's source (sender and network) and says
    whether the domain authorises it. Looked-up IPs are kept, so one per job serves many rows."""

    def __init__(self, domain: Domain):
        self.own = list(Sender.objects.filter(organization=domain.organization_id))
        self.entries = dict(DomainSender.objects.filter(domain=domain).values_list("sender_id", "authorised"))
        self.authorised = {sender for sender, authorised in self.entries.items() if authorised}
        self.info: dict[str, SourceIP] = {}
        # The organization's senders named by DKIM signing domain need each IP's: read only then.
        self.by_dkim = any(sender.dkim_domains for sender in self.own)
        self.dkim: dict[str, list[str]] = {}

    def load(self, ips: list[str]) -> None:
        missing = [ip for ip in ips if ip not in self.info]
        for start in range(0, len(missing), 5000):
            chunk = missing[start : start + 5000]
            self.info.update(SourceIP.objects.select_related("sender").in_bulk(chunk, field_name="ip"))
            if self.by_dkim:
                self.dkim.update({ip: domains[0] for ip, domains in ip_lookup.record_domains(chunk).items()})

    def sender(self, ip: str) -> tuple[Sender | None, str]:
        """The sender of one IP and the evidence ("" when it has none)."""
        # An IP not looked up yet can still be in one of the organization's own networks.
        info = self.info.get(ip) or SourceIP(ip=ip)
        return sender_for(info, self.own, self.dkim.get(ip, ()))

    def source(self, ip: str) -> tuple[str, str, bool]:
        """(group key, label, authorised) of one IP."""
        sender = self.sender(ip)[0]
        network = network_of(ip)
        if sender is not None:
            label = sender.name if network in sender.name else f"{sender.name} {network}"
            return f"sender:{sender.pk}:{network}", label, sender.pk in self.authorised
        return f"net:{network}", network, False

    def status(self, ip: str) -> str:
        """How the domain's inventory sees an IP's sender: "authorised", "not authorised" (marked so),
        or "unknown" (never marked, or no sender)."""
        sender = self.sender(ip)[0]
        return STANDING[self.entries.get(sender.pk) if sender is not None else None]


AUTHORISED, NOT_AUTHORISED, UNKNOWN = "authorised", "not authorised", "unknown"
STANDING = {True: AUTHORISED, False: NOT_AUTHORISED, None: UNKNOWN}  # a DomainSender's authorised, or none
KINDS = ("sender", "network", "ptr", "dkim")


class InventoryError(ValueError):
    """Why a mark was refused; the message is shown as is."""


def _own(kind: str, value: str) -> tuple[str, dict]:
    """The slug and fields of the organization's own sender for a network, reverse DNS domain or
    DKIM signing domain; raises InventoryError for a value that is none of these."""
    if kind == "network":
        try:
            network = ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            raise InventoryError(f"{value[:60]!r} is not a network such as 203.0.113.0/24") from None
        if network.prefixlen < (16 if network.version == 4 else 32):
            raise InventoryError(f"{network} is wider than a /16 (IPv4) or /32 (IPv6): mark a smaller network")
        text = str(network)
        # One character for another, so no two networks share a slug (2001:db8::1:0 and 2001:db8:1::).
        slug = "net-" + text.translate(str.maketrans({".": "-", ":": "_", "/": "x"}))
        return slug, {"name": text, "category": "network", "networks": [text]}
    if kind in ("ptr", "dkim"):
        name = normalize_domain(value)
        if not name or not organizational_domain(name):
            raise InventoryError(f"{value[:60]!r} is not a domain name")
        what = "reverse DNS" if kind == "ptr" else "DKIM"
        field = "ptr_domains" if kind == "ptr" else "dkim_domains"
        # Readable, and unique by the hash: "a-b.c" and "a.b-c" must not share a slug.
        slug = f"{kind}-{name.replace('.', '-')[:80]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
        return slug, {"name": f"{name} ({what})", "category": kind, field: [name]}
    raise InventoryError("choose a sender, a network, a reverse DNS or a DKIM domain")


def sender_to_mark(domain: Domain, kind: str, value: str) -> Sender:
    """The sender a mark applies to: a named sender the organization may see, or one of its own
    made for a network (``203.0.113.0/24``), a reverse DNS domain or a DKIM signing domain."""
    organization = domain.organization
    if kind == "sender":
        if not value.isdigit() or len(value) > 12:
            raise InventoryError("no such sender")
        found = Sender.objects.filter(Q(organization=None) | Q(organization=organization), pk=int(value)).first()
        if found is None:
            raise InventoryError("no such sender")
        return found
    slug, defaults = _own(kind, value)
    sender, _ = Sender.objects.get_or_create(organization=organization, slug=slug, defaults=defaults)
    return sender


def standing(domain: Domain, kind: str, value) -> str:
    """How the domain's inventory marks a sender, network or domain now (without creating anything)."""
    if kind == "sender":
        entry = DomainSender.objects.filter(domain=domain, sender_id=value).values_list("authorised", flat=True).first()
    else:
        try:
            slug, _ = _own(kind, str(value))
        except InventoryError:
            return UNKNOWN
        entry = (
            DomainSender.objects.filter(domain=domain, sender__organization=domain.organization_id, sender__slug=slug)
            .values_list("authorised", flat=True)
            .first()
        )
    return STANDING[entry]


def mark(domain: Domain, sender: Sender, authorised: bool | None, actor) -> bool | None:
    """Mark ``sender`` authorised (True) or not (False) for the domain, or forget the mark (None);
    audited. Returns the mark it had before (None: none), which undoes this one."""
    with transaction.atomic():
        before = DomainSender.objects.select_for_update().filter(domain=domain, sender=sender).first()
        previous = before.authorised if before else None
        if authorised is None:
            DomainSender.objects.filter(domain=domain, sender=sender).delete()
        else:
            DomainSender.objects.update_or_create(domain=domain, sender=sender, defaults={"authorised": authorised})
        shown = STANDING
        if previous != authorised:
            audit.record(
                actor,
                domain.organization,
                "domain.sender-marked",
                f"{sender.name} for {domain.name}",
                {"sender": sender.name, "mark": shown[previous]},
                {"sender": sender.name, "mark": shown[authorised]},
            )
    return previous
