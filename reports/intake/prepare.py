"""Parsing an input ahead of storing it, in a process of its own: pure, no Django here.

Storing a report is mostly waiting for PostgreSQL (COPY, rollups, commit) and parsing it is
all Python, so on two cores a poll parses the next messages in a child process while the
parent stores the current one (reports.intake.imap). ``prepare`` does in the child what
``pipeline._process_intake`` would do before touching the database: find the documents of
the raw input, parse each aggregate report and build its COPY lines; every outcome it
cannot decide alone (a duplicate, a DKIM check, the other report kinds) is left to the parent.

What the parent receives is plain data; an input too large to hold in memory comes back as
``Prepared(parse_here=True)`` and is parsed by the parent as before, and so does every input
when no child can be started.
"""

import io
import logging
import multiprocessing
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

from reports.intake.copytext import record_lines
from reports.lib.parsing import Document, NotAggregateReport, ReportError, find_documents, parse_aggregate
from reports.lib.parsing.aggregate import Report as ParsedReport
from reports.lib.parsing.limits import Limits

log = logging.getLogger(__name__)
# Records held per input: about 250 bytes of COPY text each, so a few MB in flight per input.
MAX_RECORDS = 20_000
# Inputs prepared ahead of the one being stored: enough to keep the child busy while the parent
# waits for the database, few enough that memory stays bounded (AHEAD x MAX_RECORDS lines).
AHEAD = 2
# The report kinds the parent stores from their bytes (pipeline.OTHER_KINDS).
OTHER_KINDS = ("tlsrpt", "failure")
DIED = (
    "the parsing process stopped while reading this input ({}); nothing of it was stored and it is "
    "left for the next poll to retry"
)


class TooLarge(Exception):
    """The input has more records than are prepared ahead; the parent parses it itself."""


@dataclass
class Attempt:
    """One parse of an aggregate document: its header when that was read, then either its COPY
    lines and totals or the error that ended it (``crash``: not a ReportError but a bug)."""

    header: ParsedReport | None = None
    lines: list[str] = field(default_factory=list)
    totals: tuple[int, int, int] = (0, 0, 0)
    error: str = ""
    salvageable: bool = False
    crash: str = ""


@dataclass
class Aggregate:
    """An aggregate document: the strict attempt, and the salvaging one when strict failed salvageably."""

    name: str
    attempts: list[Attempt]


@dataclass
class Other:
    """A document of another kind (SMTP TLS, failure report), its bytes for the parent's store."""

    name: str
    data: bytes
    notes: list[str]
    kind: str
    hints: dict

    def document(self) -> Document:
        data = self.data
        return Document(self.name, lambda: io.BytesIO(data), list(self.notes), self.kind, dict(self.hints))


@dataclass
class Prepared:
    """The documents of one input in order (Aggregate, Other or Refusal), then how the input
    ended: ``kept``/``refused`` with a reason, as the ReportError the parent would have caught,
    or ``failed`` with an internal error's text."""

    items: list = field(default_factory=list)
    end: str = ""
    reason: str = ""
    kind: str = ""
    parse_here: bool = False  # not prepared: the parent parses it itself
    cpu: float = 0.0  # CPU seconds the child spent on it


def prepare(raw: bytes, label: str, caps: Limits) -> Prepared:
    """Find and parse every document of ``raw`` (the whole input, as the raw store keeps it)."""
    started = time.process_time()
    prepared = _prepare(raw, label, caps)
    prepared.cpu = time.process_time() - started
    return prepared


def _prepare(raw: bytes, label: str, caps: Limits) -> Prepared:
    prepared = Prepared()
    budget = [MAX_RECORDS]
    try:
        for found in find_documents(io.BytesIO(raw), label, caps):
            if not isinstance(found, Document):
                prepared.items.append(found)
            elif found.kind in OTHER_KINDS:
                with found.open() as stream:
                    data = stream.read()
                prepared.items.append(Other(found.name, data, list(found.notes), found.kind, dict(found.hints)))
            else:
                aggregate = Aggregate(found.name, [_attempt(found, caps, False, budget)])
                strict = aggregate.attempts[0]
                if strict.error and strict.salvageable:
                    aggregate.attempts.append(_attempt(found, caps, True, budget))
                prepared.items.append(aggregate)
                if aggregate.attempts[-1].crash:
                    return prepared  # the parent stops at a crash, as it does when parsing itself
    except TooLarge:
        return Prepared(parse_here=True)
    except NotAggregateReport as exc:
        prepared.end, prepared.reason, prepared.kind = "kept", exc.reason, exc.kind
    except ReportError as exc:
        prepared.end, prepared.reason = "refused", exc.reason
    except Exception as exc:
        prepared.end, prepared.reason = "failed", f"internal error: {type(exc).__name__}: {exc}"
    return prepared


def _attempt(document: Document, caps: Limits, salvage: bool, budget: list[int]) -> Attempt:
    attempt = Attempt()
    try:
        with document.open() as stream:
            parsed = parse_aggregate(stream, caps, document.notes, salvage=salvage)
            records, parsed.records = parsed.records, ()
            attempt.header = parsed
            totals = [0, 0, 0]
            lines = attempt.lines
            for line in record_lines(records, totals):
                lines.append(line)
                if len(lines) > budget[0]:
                    raise TooLarge
            budget[0] -= len(lines)
            attempt.totals = (totals[0], totals[1], totals[2])
    except ReportError as exc:
        attempt.lines = []
        attempt.error, attempt.salvageable = exc.reason, exc.salvageable
    except TooLarge:
        raise
    except Exception as exc:
        attempt.lines = []
        attempt.crash = f"internal error: {type(exc).__name__}: {exc}"
    return attempt


# CPU seconds spent in children preparing inputs, for benches: a forkserver's children are not
# this process's, so resource.getrusage(RUSAGE_CHILDREN) does not count them.
child_cpu = [0.0]


class Preparer:
    """Prepares inputs in one child process, AHEAD of the caller, and hands them back in order.

    A child that dies (killed, out of memory, a crash in a C library) fails only the input it
    was preparing: that input comes back ``failed`` with the reason, and a new child takes the rest.
    """

    def __init__(self, caps: Limits, ahead: int = AHEAD):
        self.caps = caps
        self.ahead = ahead
        self.pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> "Preparer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    def _restart(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None

    def _submit(self, raw: bytes, label: str) -> Future:
        if self.pool is None:
            # forkserver: the child is forked from a small server process, not from this one,
            # so it inherits no database connection, thread or lock of the parent's.
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["reports.intake.prepare"])
            self.pool = ProcessPoolExecutor(max_workers=1, mp_context=context)
        try:
            return self.pool.submit(prepare, raw, label, self.caps)
        except BrokenProcessPool:
            raise
        except Exception:  # no child could be started (no forkserver, too many processes)
            log.exception("cannot start a process to parse messages in; parsing them here")
            future = Future()
            future.set_result(Prepared(parse_here=True))
            return future

    def map(self, inputs: Iterable[tuple[bytes, str]]) -> Iterator[Prepared]:
        """Yield the Prepared of each (raw, label) in order."""
        waiting = deque(inputs)
        running: deque[tuple[bytes, str, Future]] = deque()
        while waiting or running:
            while waiting and len(running) <= self.ahead:
                raw, label = waiting[0]
                try:
                    future = self._submit(raw, label)
                except BrokenProcessPool:
                    if running:
                        break  # the input being prepared when the child died is told below
                    self._restart()
                    future = self._submit(raw, label)
                waiting.popleft()
                running.append((raw, label, future))
            raw, label, future = running.popleft()
            try:
                prepared = future.result()
            except BrokenProcessPool as exc:
                # The others in flight were lost with the child: prepared again by a new one.
                self._restart()
                lost = [(raw_, label_) for raw_, label_, _ in running]
                running.clear()
                waiting.extendleft(reversed(lost))
                prepared = Prepared(end="failed", reason=DIED.format(exc))
            child_cpu[0] += prepared.cpu
            yield prepared
