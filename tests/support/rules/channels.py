"""An organization's alert channels (Slack, Teams, webhooks): owners and admins only."""

from tests.support.rules import Rule

RULES = {
    "org-channels": Rule("404", "GET", "admin"),
    "org-channel-add": Rule("404", "POST", "admin"),
    "org-channel-delete": Rule("404", "POST", "admin"),
    "org-channel-enable": Rule("404", "POST", "admin"),
    "org-channel-test": Rule("404", "POST", "admin"),
}
