"""Accounts: password reset and change, two-factor setup and the code step of logging in."""

from tests.support.rules import Rule

OPEN = Rule("open")
OWN = Rule("list")

RULES = {
    "password-reset": OPEN,
    "password-reset-done": OPEN,
    "password-reset-confirm": OPEN,  # the signed token is the credential
    "password-reset-complete": OPEN,
    "password-change": OWN,
    "password-change-done": OWN,
    "two-factor": OWN,
    # GET shows the form asking for a code; the POST that turns it off needs one: tests/test_accounts.py.
    "two-factor-disable": OWN,
    "login-two-factor": OPEN,  # works only with a pending login (a right password) in the session
}
