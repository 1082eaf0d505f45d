"""The dashboard, reports, policy, alerts, intake and API."""

from tests.support.rules import Rule

PAGE = Rule("404")
OWN = Rule("list")
OPEN = Rule("open")
MANAGE = Rule("404", "POST", "admin")

RULES = {
    "home": OWN,
    "domain": PAGE,
    "domain-sources": PAGE,
    "source": PAGE,
    "domain-senders": PAGE,
    "sender": PAGE,
    "domain-reporters": PAGE,
    "domain-dkim": PAGE,
    "policy": PAGE,
    "policy-check": MANAGE,
    "policy-move": MANAGE,
    "policy-settings": MANAGE,
    "policy-recompute": MANAGE,
    "policy-health": MANAGE,
    "policy-adopt": MANAGE,
    "export-sources": PAGE,
    "export-senders": PAGE,
    "export-reporters": PAGE,
    "export-dkim": PAGE,
    "report-list": OWN,
    "report": PAGE,
    "report-raw": PAGE,
    "export-report-records": PAGE,
    "account": OWN,
    "alerts": OWN,
    "alert-acknowledge": MANAGE,
    "alert-mute": MANAGE,
    "upload": Rule("list", "GET", "admin"),  # uploading adds reports: managers only
    "ingestion": OWN,
    "replay": MANAGE,
    "api-intake": OPEN,  # its own token check: tests/test_ingest and the API tests
    "api-domains": OWN,
    "api-daily": PAGE,
    "api-sources": PAGE,
    "api-senders": PAGE,
    "api-reporters": PAGE,
    "api-report": PAGE,
    "login": OPEN,
    "logout": OPEN,
}
