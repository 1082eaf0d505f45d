"""Members: the list, invitations, role changes, removal, invitation links and switching organizations."""

from tests.support.rules import Rule

OWNER_ACTION = Rule("404", "POST", "owner")

RULES = {
    "org-members": Rule("404"),
    "org-invite": OWNER_ACTION,
    "org-member-role": OWNER_ACTION,
    "org-member-remove": OWNER_ACTION,  # below owner only oneself (leaving): tests/test_members.py
    "org-invitation-revoke": OWNER_ACTION,
    "invitation": Rule("open"),  # the signed link is the credential
    "org-switch": Rule("list", "POST"),
    "org-new": Rule("list", "GET", "operator"),  # anyone too with ORGANIZATION_SELF_SERVICE: test_organizations
    "org-get-started": Rule("404", "POST", "admin"),
}
