"""Alert channels (Slack, Teams, webhooks): an organization's, owners and admins only; a member's
personal ones, that member only (any role; the actions name the channel in the form, not the URL)."""

from tests.support.rules import Rule

RULES = {
    "org-channels": Rule("404", "GET", "admin"),
    "org-channel-add": Rule("404", "POST", "admin"),
    "org-channel-delete": Rule("404", "POST", "admin"),
    "org-channel-enable": Rule("404", "POST", "admin"),
    "org-channel-test": Rule("404", "POST", "admin"),
    "org-my-channels": Rule("404", "GET", "viewer"),
    "org-my-channel-add": Rule("404", "POST", "viewer"),
    "org-my-channel-delete": Rule("404", "POST", "viewer"),
    "org-my-channel-enable": Rule("404", "POST", "viewer"),
    "org-my-channel-test": Rule("404", "POST", "viewer"),
}
