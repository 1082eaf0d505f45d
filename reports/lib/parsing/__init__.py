"""Pure parsing of DMARC aggregate, DMARC failure and SMTP TLS reports: bytes in, dataclasses out. No Django here."""

from reports.lib.parsing.aggregate import Policy, Record, Report, parse_aggregate
from reports.lib.parsing.archive import Document, Refusal
from reports.lib.parsing.errors import NotAggregateReport, ReportError
from reports.lib.parsing.extract import find_documents
from reports.lib.parsing.failure import FailureReport, looks_like_failure, parse_failure
from reports.lib.parsing.limits import Limits
from reports.lib.parsing.tlsrpt import TlsFailure, TlsPolicy, TlsReport, parse_tlsrpt

__all__ = [
    "Document",
    "FailureReport",
    "Limits",
    "NotAggregateReport",
    "Policy",
    "Record",
    "Refusal",
    "Report",
    "ReportError",
    "TlsFailure",
    "TlsPolicy",
    "TlsReport",
    "find_documents",
    "looks_like_failure",
    "parse_failure",
    "parse_aggregate",
    "parse_tlsrpt",
]
