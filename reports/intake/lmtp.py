"""Direct mail intake: an LMTP (or SMTP) server an MTA delivers rua mail to, with no mailbox between.

Postfix hands each message for a report address to this server (a ``transport_maps`` entry, see
the README); the message goes through the same ledger and pipeline as a polled one. The replies
are what make the MTA's queue the safety net:

- ``250`` once the message is in the ledger and processed. A message that is not a usable report
  is accepted too: its reason is recorded in the ledger, where the operator looks, and a bounce
  would only reach the reporter's robot.
- ``451 4.3.0`` when something on this side failed (the database, the disk): the MTA keeps the
  message and tries again later. The retry finds the same input's unfinished ledger row and
  finishes it, so a message is neither lost nor recorded twice.
- ``550 5.1.1`` at RCPT for an address not in ``INTAKE_ADDRESSES``; ``552`` for a message larger
  than ``DMARC_MAX_MESSAGE_BYTES`` (aiosmtpd refuses it while it is still being sent).

The server never relays: it delivers to dmarcdash only, for the configured addresses only.
Each message is processed in a worker thread (the ORM is synchronous), one Django database
connection per thread, checked before each message so a connection lost to a database restart
is replaced instead of failing every message after it.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session
from django.conf import settings
from django.db import close_old_connections

from reports.intake import rawstore
from reports.intake.pipeline import message_subject, process_intake
from reports.models import Intake, Organization

log = logging.getLogger(__name__)

TEMPORARY = "451 4.3.0 dmarcdash could not store the message now; try again later"
UNFINISHED = (Intake.Status.RECEIVED, Intake.Status.FAILED)


class AddressError(ValueError):
    """INTAKE_ADDRESSES names something that is not an address, or an organization that does not exist."""


@dataclass(frozen=True)
class Route:
    """Where mail to one address goes: an organization, or (None) whichever organization claims
    the report's domain, as for reports an operator imports."""

    address: str
    organization_id: int | None


def routes(entries: list[str]) -> dict[str, Route]:
    """``address`` or ``address=organization-slug`` entries, by lower-cased address."""
    found: dict[str, Route] = {}
    for entry in entries:
        address, _, slug = (part.strip() for part in entry.partition("="))
        if address.count("@") != 1 or not all(address.split("@")) or any(c.isspace() for c in address):
            raise AddressError(f"INTAKE_ADDRESSES: {address!r} is not an email address")
        organization_id = None
        if slug:
            organization_id = Organization.objects.filter(slug=slug).values_list("pk", flat=True).first()
            if organization_id is None:
                raise AddressError(f"INTAKE_ADDRESSES: no organization with the slug {slug!r} (for {address})")
        found[address.lower()] = Route(address.lower(), organization_id)
    return found


def deliver(raw: bytes, organization_id: int | None) -> str:
    """Record and process one delivered message for one organization; the reply for its recipients."""
    close_old_connections()  # a connection broken since the last message is replaced, not reused
    try:
        sha256, size = rawstore.save_bytes(raw)
        # An earlier attempt that failed part-way left its row: finish that one instead of adding another.
        intake = (
            Intake.objects.filter(
                source=Intake.Channel.LMTP, sha256=sha256, organization_id=organization_id, status__in=UNFINISHED
            )
            .order_by("pk")
            .first()
        )
        if intake is None:
            intake = Intake.objects.create(
                source=Intake.Channel.LMTP,
                name=message_subject(raw)[:1000],
                sha256=sha256,
                size=size,
                organization_id=organization_id,
            )
        result = process_intake(intake)
    except Exception:
        log.exception("direct delivery of a %d-byte message failed; the sender will retry", len(raw))
        return TEMPORARY
    if result.intake.status == Intake.Status.FAILED:
        log.error("input %s failed (%s); the sender will retry", result.intake.pk, result.intake.error)
        return TEMPORARY
    return f"250 2.0.0 input {result.intake.pk} {result.intake.status}"


class IntakeHandler:
    """aiosmtpd handler: accepts the configured recipients and processes each message off the event loop."""

    def __init__(self, addresses: dict[str, Route], *, threads: int = 2, lmtp: bool = True) -> None:
        self.addresses = addresses
        self.lmtp = lmtp
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="intake")

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options):
        if address.lower() not in self.addresses:
            return f"550 5.1.1 <{address}>: no such report address here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        targets = [self.addresses[rcpt.lower()].organization_id for rcpt in envelope.rcpt_tos]
        loop = asyncio.get_running_loop()
        replies: dict[int | None, str] = {}
        for organization_id in dict.fromkeys(targets):  # once per organization, in order
            replies[organization_id] = await loop.run_in_executor(self.executor, deliver, raw, organization_id)
        if self.lmtp:
            # RFC 2033 §4.2: one reply per accepted recipient, in RCPT order.
            return "\r\n".join(replies[organization_id] for organization_id in targets)
        failed = [reply for reply in replies.values() if not reply.startswith("250")]
        return failed[0] if failed else next(iter(replies.values()))

    def close(self) -> None:
        self.executor.shutdown(wait=True)


class _Controller(Controller):
    def __init__(self, handler: IntakeHandler, *, lmtp: bool, **kwargs) -> None:
        self._protocol = LMTP if lmtp else SMTP
        super().__init__(handler, **kwargs)

    def factory(self):
        return self._protocol(self.handler, **self.SMTP_kwargs)


def serve(host: str, port: int, addresses: dict[str, Route], *, lmtp: bool = True, threads: int = 2) -> _Controller:
    """Start listening in a background thread; ``stop()`` the result to end."""
    handler = IntakeHandler(addresses, threads=threads, lmtp=lmtp)
    controller = _Controller(
        handler,
        lmtp=lmtp,
        hostname=host,
        port=port,
        server_hostname=settings.INTAKE_HOSTNAME,
        data_size_limit=settings.DMARC_LIMITS["max_message_bytes"],
        decode_data=False,  # the bytes as sent are what is stored and DKIM-checked
        enable_SMTPUTF8=True,
    )
    controller.start()
    return controller
