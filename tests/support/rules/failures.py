"""Failure samples (RFC 9991 failure reports): the Failures tab, one sample, its raw report, the CSV export
and the API. The tab (counts and chart) is for every member; the samples hold personal data, so a
viewer gets 404 for them unless the organization opened samples to viewers (off by default, as in the
isolation world): their least role is admin."""

from tests.support.rules import Rule

RULES = {
    "domain-failures": Rule("404"),
    "failure-sample": Rule("404", role="admin"),
    "failure-raw": Rule("404", role="admin"),
    "export-failures": Rule("404", role="admin"),
    "api-failures": Rule("404", role="admin"),
}
