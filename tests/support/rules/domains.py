"""Domain onboarding: the organization's domain list, adding, setup, check, claim and deletion."""

from tests.support.rules import Rule

RULES = {
    "org-domains": Rule("404"),
    "org-domain-add": Rule("404", "POST", "admin"),
    "domain-setup": Rule("404"),
    "domain-setup-check": Rule("404", "POST", "admin"),
    "domain-claim": Rule("404", "POST", "admin"),
    "domain-delete": Rule("404", "POST", "owner"),
    "domain-report-address": Rule("404", "POST", "admin"),
    "inventory-mark": Rule("404", "POST", "admin"),
}
