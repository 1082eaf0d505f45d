"""Enrichment of report data: network, country, reverse DNS and forwarding of source IPs."""
