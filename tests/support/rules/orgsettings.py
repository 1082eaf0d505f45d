"""An organization's settings, mailboxes, API tokens and audit log."""

from tests.support.rules import Rule

RULES = {
    "org-settings": Rule("404"),  # members read it; admins POST changes (owners also rename)
    "org-mailboxes": Rule("404"),
    "org-mailbox-add": Rule("404", "GET", "admin"),
    "org-mailbox": Rule("404", "GET", "admin"),
    "org-mailbox-delete": Rule("404", "POST", "admin"),
    "org-mailbox-test": Rule("404", "POST", "admin"),
    "org-tokens": Rule("404", "GET", "admin"),
    "org-token-create": Rule("404", "POST", "admin"),
    "org-token-revoke": Rule("404", "POST", "admin"),
    "org-audit": Rule("404", "GET", "admin"),
}
