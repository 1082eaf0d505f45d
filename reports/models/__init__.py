"""The data model, one module per concern; ``reports.models`` re-exports every model.

Times are stored in UTC. Every count of mail is a count of messages (the sum of
``row/count``), never of records.
"""

from .alerts import AlertEmail, AlertEvent, AlertMute, AlertSubscription
from .channels import AlertChannel, ChannelDelivery
from .failures import FailureSample
from .intake import Intake, Mailbox, Record, Report
from .mtasts import MtaStsEvent, MtaStsPlan
from .rawblobs import RawBlob, RawChunk
from .rollout import PolicyEvent, PolicyPlan
from .rollups import SOURCE_DIMENSIONS, TOTAL_DIMENSIONS, DailyDkim, DailySource, DailyTotal, SourceWindow, WindowState
from .senders import DomainSender, Sender, SourceIP
from .tenancy import ApiToken, AuditEntry, Domain, Invitation, Membership, Organization, Profile, TotpDevice
from .tls import TlsFailure, TlsPolicy, TlsReport
from .verdicts import DKIM_ALIGNED, FAILING, PASSING, SPF_ALIGNED, failing_messages, passing_messages

__all__ = [
    "DKIM_ALIGNED",
    "FAILING",
    "PASSING",
    "SPF_ALIGNED",
    "SOURCE_DIMENSIONS",
    "TOTAL_DIMENSIONS",
    "AlertChannel",
    "AlertEmail",
    "AlertEvent",
    "AlertMute",
    "AlertSubscription",
    "ApiToken",
    "AuditEntry",
    "ChannelDelivery",
    "DailyDkim",
    "DailySource",
    "DailyTotal",
    "Domain",
    "DomainSender",
    "FailureSample",
    "Intake",
    "RawBlob",
    "RawChunk",
    "Invitation",
    "Mailbox",
    "MtaStsEvent",
    "MtaStsPlan",
    "Membership",
    "Organization",
    "PolicyEvent",
    "PolicyPlan",
    "Profile",
    "Record",
    "Report",
    "Sender",
    "SourceIP",
    "SourceWindow",
    "TlsFailure",
    "TlsPolicy",
    "TlsReport",
    "TotpDevice",
    "WindowState",
    "failing_messages",
    "passing_messages",
]
