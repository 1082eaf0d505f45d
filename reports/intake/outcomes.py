"""What became of each report document of an input: the answer every intake path gives."""

from dataclasses import asdict, dataclass, field

from reports.models import Intake


@dataclass
class Outcome:
    """One report document (or one unreadable part) of an input.

    ``kind`` is aggregate or tlsrpt; an aggregate report counts records and messages, a TLS
    report the sessions it covers (RFC 8460 counts TLS sessions, not messages)."""

    status: str
    name: str
    reason: str = ""
    domain: str = ""
    org_name: str = ""
    report_id: str = ""
    records: int = 0
    messages: int = 0
    report: int | None = None
    repairs: dict = field(default_factory=dict)
    kind: str = "aggregate"
    sessions: int = 0
    failed_sessions: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class IngestResult:
    intake: Intake
    outcomes: list[Outcome]
