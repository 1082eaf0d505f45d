"""A domain's sender inventory: which sender an IP belongs to as one organization sees it, and
whether the domain authorises it.

The organization's own senders (by network, then by name) come first, then the catalog match
that enrichment found. Readiness, alerts and the dashboard group IPs the same way: by named
sender, else by /24 (IPv4) or /64 (IPv6) network.
"""

import ipaddress
from collections.abc import Iterable

from reports.enrichment.catalog import Catalog
from reports.enrichment.catalog import Sender as CatalogSender
from reports.models import Domain, DomainSender, Sender, SourceIP


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


def sender_for(row: SourceIP, organization_senders: list[Sender]) -> tuple[Sender | None, str]:
    """The sender of an IP as one organization sees it: its own senders (networks, then names) first,
    then the catalog match found by enrichment. Returns the sender and the evidence."""
    address = ipaddress.ip_address(row.ip)
    for sender in organization_senders:
        for network in sender.networks:
            try:
                if address in ipaddress.ip_network(network, strict=False):
                    return sender, f"in {sender.name}'s network {network}"
            except ValueError:
                continue
    own = organization_catalog(organization_senders).match(ptr=row.ptr if row.forward_confirmed else "", asn=row.asn)
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
        self.authorised = set(
            DomainSender.objects.filter(domain=domain, authorised=True).values_list("sender_id", flat=True)
        )
        self.info: dict[str, SourceIP] = {}

    def load(self, ips: list[str]) -> None:
        missing = [ip for ip in ips if ip not in self.info]
        for start in range(0, len(missing), 5000):
            chunk = missing[start : start + 5000]
            self.info.update(SourceIP.objects.select_related("sender").in_bulk(chunk, field_name="ip"))

    def source(self, ip: str) -> tuple[str, str, bool]:
        """(group key, label, authorised) of one IP."""
        # An IP not looked up yet can still be in one of the organization's own networks.
        info = self.info.get(ip) or SourceIP(ip=ip)
        sender = sender_for(info, self.own)[0]
        network = network_of(ip)
        if sender is not None:
            return f"sender:{sender.pk}:{network}", f"{sender.name} {network}", sender.pk in self.authorised
        return f"net:{network}", network, False
