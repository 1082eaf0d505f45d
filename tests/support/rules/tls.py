"""SMTP TLS reports: the domain's TLS tab, one report, its CSV export and its API."""

from tests.support.rules import Rule

RULES = {
    "domain-tls": Rule("404"),
    "tls-report": Rule("404"),
    "export-tls": Rule("404"),
    "api-tls": Rule("404"),
}
