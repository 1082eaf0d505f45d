"""Connecting a mailbox with OAuth2 (the authorization-code flow): owners and admins start it; the
provider sends the browser back to the callback, which acts only for the session that started it."""

from tests.support.rules import Rule

RULES = {
    "org-mailbox-oauth-connect": Rule("404", "GET", "admin"),
    "oauth-callback": Rule("open"),
}
