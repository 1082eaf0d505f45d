"""The MTA-STS rollout: every member sees the plan; owners and admins check, move and change it.
And the endpoint reporters POST TLS reports to, which is open (reporters cannot authenticate) and
shows no tenant's data."""

from tests.support.rules import Rule

RULES = {
    "mta-sts": Rule("404"),
    "mta-sts-check": Rule("404", "POST", "admin"),
    "mta-sts-move": Rule("404", "POST", "admin"),
    "mta-sts-adopt": Rule("404", "POST", "admin"),
    "mta-sts-settings": Rule("404", "POST", "admin"),
    "tlsrpt-receive": Rule("open", "POST"),
}
