class ReportError(Exception):
    """An input was refused. ``reason`` is written for the operator who reads the ledger.

    ``salvageable`` marks XML syntax errors that a second, repairing pass may fix.
    """

    def __init__(self, reason: str, salvageable: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.salvageable = salvageable


class NotAggregateReport(ReportError):
    """The input is a report of another kind (failure, SMTP TLS): kept, not refused."""

    def __init__(self, reason: str, kind: str):
        super().__init__(reason)
        self.kind = kind
