"""Pure parsing of DMARC aggregate reports: bytes in, dataclasses out. No Django here."""

from reports.lib.parsing.aggregate import Policy, Record, Report, parse_aggregate
from reports.lib.parsing.archive import Document, Refusal
from reports.lib.parsing.errors import NotAggregateReport, ReportError
from reports.lib.parsing.extract import find_documents
from reports.lib.parsing.limits import Limits

__all__ = [
    "Document",
    "Limits",
    "NotAggregateReport",
    "Policy",
    "Record",
    "Refusal",
    "Report",
    "ReportError",
    "find_documents",
    "parse_aggregate",
]
