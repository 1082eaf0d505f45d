"""Logging: every line written while an input is processed names that input, plain or as JSON.

``LOG_FORMAT=json`` writes one JSON object per line (for a log shipper); the default is plain text.
Either way a line logged inside ``input_context(id)`` carries ``input=<id>``, so an operator can
follow one report email from the ledger through every component that touched it.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import json
import logging
from collections.abc import Iterator

_input: contextvars.ContextVar[int | None] = contextvars.ContextVar("dmarcdash_input", default=None)


@contextlib.contextmanager
def input_context(input_id: int | None) -> Iterator[None]:
    token = _input.set(input_id)
    try:
        yield
    finally:
        _input.reset(token)


class InputFilter(logging.Filter):
    """Adds ``input`` (the ledger id being processed, or None) and ``input_tag`` (" input=N" or "")."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = _input.get()
        record.input = current
        record.input_tag = f" input={current}" if current is not None else ""
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if getattr(record, "input", None) is not None:
            entry["input"] = record.input
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)
