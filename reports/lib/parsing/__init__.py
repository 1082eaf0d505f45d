"""Pure parsing of DMARC aggregate and SMTP TLS reports: bytes in, dataclasses out. No Django here."""

from reports.lib.parsing.aggregate import Policy, Record, Report, parse_aggregate
from reports.lib.parsing.archive import Document, Refusal
from reports.lib.parsing.errors import NotAggregateReport, ReportError
from reports.lib.parsing.extract import find_documents
from reports.lib.parsing.limits import Limits
from reports.lib.parsing.tlsrpt import TlsFailure, TlsPolicy, TlsReport, parse_tlsrpt

__all__ = [
    "Document",
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
    "parse_aggregate",
    "parse_tlsrpt",
]
