"""Polling an IMAP mailbox for reports, crash-safe.

1. Claim the mailbox with a lease (a conditional UPDATE), so one poller runs per mailbox.
2. Select the folder; UIDVALIDITY scopes every UID in the ledger.
3. For each message not yet finished in the ledger: check its size, fetch it with
   BODY.PEEK[] (it stays unseen), record it in the ledger, store its reports, each
   in its own transaction.
4. Only after that commit, move it to the processed or invalid folder.

A crash anywhere leaves the message in the folder: before the ledger row, it is
processed afresh; after it, the row is resumed (reports already stored are
duplicates by their fingerprint); after the commit, it is only moved. Nothing is
lost and nothing is stored twice. (paperless-ngx moved mail before its work was
committed and had no unique key, and imported mail twice: issues #13336, #4471.)
"""

import ipaddress
import logging
import multiprocessing
import ssl
import time
import uuid
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import repeat

import imapclient
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from imapclient.exceptions import IMAPClientError, LoginError

from reports.intake import oauth
from reports.intake.pipeline import ingest_message, limits, record_messages, remembered_domains
from reports.intake.prepare import Preparer
from reports.lib.parsing.limits import human_bytes
from reports.models import Intake, Mailbox
from reports.tenancy import netguard
from reports.tenancy.secrets import SecretError, decrypt, password_from_env

log = logging.getLogger(__name__)

FETCH_BATCH = 50  # messages fetched, stored and committed together
BATCH_BYTES = 16 * 1024 * 1024  # and at most this much mail held in memory at once
SIZE_BATCH = 1000  # UIDs whose sizes are asked in one FETCH
TIMEOUT = 60
# A poll renews its lease after every batch; a crashed poller's lease lapses this soon.
LEASE = timedelta(minutes=5)
BACKOFF_MAX = timedelta(hours=1)
# A poll of at least this many messages parses them in a child process, ahead of storing
# them (reports/intake/prepare.py), on PostgreSQL; 0 parses every message in this process.
PREPARE_FROM = 4


class MailboxError(Exception):
    """The mailbox could not be polled: connection, login, TLS or configuration."""


@dataclass
class PollResult:
    mailbox: str
    stored: int = 0
    duplicate: int = 0
    refused: int = 0
    kept: int = 0
    moved: int = 0
    failed: int = 0
    skipped: bool = False
    highest_uid: int = 0
    error: str = ""
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.skipped:
            return f"{self.mailbox}: skipped ({self.error or 'another poller holds it'})"
        text = (
            f"{self.mailbox}: {self.stored} reports stored, {self.duplicate} duplicates, "
            f"{self.refused} messages refused, {self.kept} other reports kept, {self.moved} moved"
        )
        if self.failed:
            text += f", {self.failed} left for retry"
        if self.error:
            text += f"; error: {self.error}"
        return text


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plain_refusal(security: str, host: str) -> str:
    """Why plain IMAP is refused for ``host`` (an empty string when the setting is allowed)."""
    if security == Mailbox.Security.PLAIN and not is_loopback(host):
        return f"plain IMAP is only allowed to a loopback address, not {host}"
    return ""


def password(mailbox: Mailbox) -> str:
    try:
        if mailbox.password_env:
            return password_from_env(mailbox.password_env)
        if mailbox.password_encrypted:
            return decrypt(mailbox.password_encrypted)
    except SecretError as exc:
        raise MailboxError(str(exc)) from exc
    raise MailboxError("no password configured (set password_env or a password)")


def tls_context(mailbox: Mailbox) -> ssl.SSLContext:
    """Certificates are verified; a mailbox may name its own CA file to trust instead of the system's."""
    try:
        return ssl.create_default_context(cafile=mailbox.ca_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise MailboxError(f"cannot load CA file {mailbox.ca_file!r}: {exc}") from exc


def _open(mailbox: Mailbox) -> imapclient.IMAPClient:
    if mailbox.security == Mailbox.Security.TLS:
        return imapclient.IMAPClient(
            mailbox.host, port=mailbox.port, ssl=True, ssl_context=tls_context(mailbox), timeout=TIMEOUT
        )
    client = imapclient.IMAPClient(mailbox.host, port=mailbox.port, ssl=False, timeout=TIMEOUT)
    if mailbox.security == Mailbox.Security.STARTTLS:
        client.starttls(tls_context(mailbox))
    return client


def _token(mailbox: Mailbox, rejected: str = "") -> str:
    try:
        return oauth.access_token(mailbox, rejected)
    except oauth.OAuthError as exc:
        raise MailboxError(f"OAuth: {exc}") from exc


def _shut(client: imapclient.IMAPClient) -> None:
    try:
        client.shutdown()
    except (IMAPClientError, OSError):
        pass


def _dial(mailbox: Mailbox):
    """Connect and log in (password or XOAUTH2); errors are raised as they come."""
    if not mailbox.uses_oauth:
        client = _open(mailbox)
        client.login(mailbox.username, password(mailbox))
        return client
    token = _token(mailbox)  # before dialling: a mailbox whose grant is gone does not touch the server
    client = _open(mailbox)
    try:
        client.oauth2_login(mailbox.username, token)
        return client
    except LoginError:
        _shut(client)
    except BaseException:
        _shut(client)
        raise
    # The server refused a token we thought valid (revoked early, or clocks differ): one new token,
    # one more try, on a new connection.
    token = _token(mailbox, rejected=token)
    client = _open(mailbox)
    try:
        client.oauth2_login(mailbox.username, token)
    except LoginError as exc:
        _shut(client)
        raise MailboxError(
            f"{mailbox.host} refused the XOAUTH2 login for {mailbox.username} with a new access token ({exc}); "
            "check that the application has access to this mailbox and that IMAP is enabled for it"
        ) from exc
    except BaseException:
        _shut(client)
        raise
    return client


def connect(mailbox: Mailbox) -> imapclient.IMAPClient:
    if refusal := plain_refusal(mailbox.security, mailbox.host) or netguard.refusal(mailbox.host, mailbox.port):
        raise MailboxError(refusal)
    try:
        client = _dial(mailbox)
    except MailboxError:
        raise
    except ssl.SSLError as exc:
        raise MailboxError(f"TLS failed with {mailbox.host}:{mailbox.port}: {exc}") from exc
    except (TimeoutError, OSError) as exc:
        raise MailboxError(f"cannot connect to {mailbox.host}:{mailbox.port}: {exc}") from exc
    except IMAPClientError as exc:
        raise MailboxError(f"{mailbox.host} refused the login for {mailbox.username}: {exc}") from exc
    return client


def claim(mailbox: Mailbox, token: str = "") -> str | None:
    """Take the mailbox's lease, or None when another poller holds it.

    A ``token`` names the poll (a Celery task passes its id): the same poll run again, a task
    retried after a database outage or delivered again after its worker died, takes back the
    lease its first run left behind instead of waiting LEASE for it to lapse.
    """
    token = token or uuid.uuid4().hex
    now = timezone.now()
    taken = (
        Mailbox.objects.filter(pk=mailbox.pk)
        .filter(Q(leased_until__isnull=True) | Q(leased_until__lt=now) | Q(lease_token=token))
        .update(lease_token=token, leased_until=now + LEASE)
    )
    return token if taken else None


def renew(mailbox: Mailbox, token: str) -> bool:
    """Extend our lease; False when it lapsed and another poller took the mailbox."""
    return bool(Mailbox.objects.filter(pk=mailbox.pk, lease_token=token).update(leased_until=timezone.now() + LEASE))


def release(mailbox: Mailbox, token: str) -> None:
    Mailbox.objects.filter(pk=mailbox.pk, lease_token=token).update(lease_token="", leased_until=None)


def poll(mailbox: Mailbox, limit: int | None = None, token: str = "") -> PollResult:
    """One pass over a mailbox: every unprocessed message is stored and moved. A database
    error is raised: nothing can be recorded then, and the messages not yet committed stay
    in the folder for the next poll (``token``: see ``claim``)."""
    result = PollResult(str(mailbox))
    token = claim(mailbox, token)
    if token is None:
        result.skipped = True
        return result
    started = timezone.now()
    try:
        client = connect(mailbox)
        try:
            _drain(client, mailbox, result, limit, token)
        finally:
            try:
                client.logout()
            except (IMAPClientError, OSError):
                pass
    except MailboxError as exc:
        result.error = str(exc)
    except (IMAPClientError, OSError) as exc:
        result.error = f"connection lost during the poll: {exc}"
    _record_poll(mailbox, result, started)
    release(mailbox, token)
    return result


def _record_poll(mailbox: Mailbox, result: PollResult, started) -> None:
    now = timezone.now()
    update = {"last_poll_at": started}
    if result.error:
        failures = mailbox.failures + 1
        # Back off: a broken mailbox is retried ever less often, up to an hour.
        delay = min(timedelta(seconds=mailbox.poll_interval) * 2 ** min(failures, 10), BACKOFF_MAX)
        update.update(last_error=result.error[:2000], last_error_at=now, failures=failures, next_poll_at=now + delay)
        if mailbox.failing_since is None:
            update["failing_since"] = started
        log.warning("mailbox %s: %s", mailbox.pk, result.error)
    else:
        update.update(
            last_success_at=now,
            failures=0,
            failing_since=None,
            last_error="",
            next_poll_at=now + timedelta(seconds=mailbox.poll_interval),
        )
    Mailbox.objects.filter(pk=mailbox.pk).update(**update)
    for name, value in update.items():
        setattr(mailbox, name, value)


def ensure_folder(client: imapclient.IMAPClient, folder: str) -> None:
    if not client.folder_exists(folder):
        client.create_folder(folder)


def _drain(client: imapclient.IMAPClient, mailbox: Mailbox, result: PollResult, limit: int | None, token: str) -> None:
    for folder in (mailbox.processed_folder, mailbox.invalid_folder):
        ensure_folder(client, folder)
    selected = client.select_folder(mailbox.folder)
    uidvalidity = int(selected[b"UIDVALIDITY"])
    if mailbox.uidvalidity != uidvalidity:
        if mailbox.uidvalidity is not None:
            result.notes.append(f"UIDVALIDITY changed from {mailbox.uidvalidity} to {uidvalidity}")
        Mailbox.objects.filter(pk=mailbox.pk).update(uidvalidity=uidvalidity)
        mailbox.uidvalidity = uidvalidity
    can_move = client.has_capability("MOVE")
    uids = sorted(client.search("ALL"))
    if limit is not None:
        uids = uids[:limit]
    result.highest_uid = max(uids, default=0)
    known = {i.uid: i for i in Intake.objects.filter(mailbox=mailbox, uidvalidity=uidvalidity, uid__in=uids)}
    finished = {uid: intake for uid, intake in known.items() if intake.finished}
    # A message finished before a crash is only moved; the rest are fetched in batches.
    if finished:
        _move(client, list(finished.items()), mailbox, can_move, result)
    pending = [uid for uid in uids if uid not in finished]
    # The child is started for a poll with enough messages to pay for it, and only where the
    # records are COPYed (the lines it builds are COPY text). A Celery prefork worker's process is
    # daemonic and may not start children: there Celery's own pool runs polls side by side instead.
    ahead = (
        PREPARE_FROM
        and len(pending) >= PREPARE_FROM
        and connection.vendor == "postgresql"
        and not multiprocessing.current_process().daemon
    )
    with Preparer(limits()) if ahead else nullcontext() as preparer:
        _store_batches(client, mailbox, result, token, uidvalidity, can_move, known, pending, preparer)


def _store_batches(
    client: imapclient.IMAPClient,
    mailbox: Mailbox,
    result: PollResult,
    token: str,
    uidvalidity: int,
    can_move: bool,
    known: dict[int, Intake],
    pending: list[int],
    preparer: Preparer | None,
) -> None:
    cap = settings.DMARC_LIMITS["max_message_bytes"]
    for batch in _batches(client, pending):
        if not renew(mailbox, token):
            result.error = "lease lost to another poller; stopped"
            return
        done: list[tuple[int, Intake]] = []
        wanted = [uid for uid, size in batch if size <= cap]
        for uid, size in batch:
            if size > cap:
                refusal = f"message is {human_bytes(size)}, more than the {human_bytes(cap)} cap; not downloaded"
                intake = ingest_message(
                    b"", mailbox=mailbox, uidvalidity=uidvalidity, uid=uid, resume=known.get(uid), refuse=refusal
                ).intake
                _count(intake, result)
                done.append((uid, intake))
        bodies = client.fetch(wanted, ["BODY.PEEK[]"]) if wanted else {}
        # One commit per batch, not three per message: the messages stay in the folder until
        # it is committed, so a crash only means the batch is processed again.
        with transaction.atomic(), remembered_domains():
            fetched = [(uid, bodies[uid][b"BODY[]"]) for uid in wanted if b"BODY[]" in bodies.get(uid, {})]
            known.update(
                record_messages(mailbox, uidvalidity, [(uid, raw) for uid, raw in fetched if uid not in known])
            )
            # The child parses the next messages while this process stores one.
            ready = preparer.map((raw, f"uid {uid}") for uid, raw in fetched) if preparer else repeat(None)
            for (uid, raw), prepared in zip(fetched, ready, strict=False):
                with transaction.atomic():
                    intake = ingest_message(
                        raw, mailbox=mailbox, uidvalidity=uidvalidity, uid=uid, resume=known[uid], prepared=prepared
                    ).intake
                _count(intake, result)
                if intake.finished:
                    done.append((uid, intake))
        # Only now, with every message of the batch committed, do the messages leave the folder.
        if done:
            _move(client, done, mailbox, can_move, result)


def _batches(client: imapclient.IMAPClient, uids: list[int]):
    """Yield [(uid, size)] batches of at most FETCH_BATCH messages and BATCH_BYTES of mail, so
    memory stays bounded however large the messages (an oversized one is never fetched)."""
    for start in range(0, len(uids), SIZE_BATCH):
        chunk = uids[start : start + SIZE_BATCH]
        sizes = client.fetch(chunk, ["RFC822.SIZE"])
        batch: list[tuple[int, int]] = []
        total = 0
        for uid in chunk:
            if uid not in sizes:
                continue  # expunged by someone else meanwhile
            size = int(sizes[uid].get(b"RFC822.SIZE", 0))
            fetched = size if size <= settings.DMARC_LIMITS["max_message_bytes"] else 0
            if batch and (len(batch) >= FETCH_BATCH or total + fetched > BATCH_BYTES):
                yield batch
                batch, total = [], 0
            batch.append((uid, size))
            total += fetched
        if batch:
            yield batch


def _count(intake: Intake, result: PollResult) -> None:
    result.stored += intake.reports_stored
    result.duplicate += intake.reports_duplicate
    if intake.status == Intake.Status.REFUSED:
        result.refused += 1
    elif intake.status == Intake.Status.KEPT:
        result.kept += 1
    elif intake.status == Intake.Status.FAILED:
        result.failed += 1


def _move(client, done: list[tuple[int, Intake]], mailbox: Mailbox, can_move: bool, result: PollResult) -> None:
    """Move finished messages out of the source folder, one command per target folder."""
    targets: dict[str, list[tuple[int, Intake]]] = {}
    for uid, intake in done:
        target = mailbox.invalid_folder if intake.status == Intake.Status.REFUSED else mailbox.processed_folder
        targets.setdefault(target, []).append((uid, intake))
    for target, items in targets.items():
        uids = [uid for uid, _ in items]
        if can_move:
            client.move(uids, target)
        else:
            client.copy(uids, target)
            client.delete_messages(uids)
            if client.has_capability("UIDPLUS"):
                client.uid_expunge(uids)
            else:
                client.expunge()
        Intake.objects.filter(pk__in=[intake.pk for _, intake in items]).update(moved_to=target)
        result.moved += len(uids)


def due_mailboxes():
    now = timezone.now()
    return Mailbox.objects.filter(enabled=True).filter(Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=now))


def watch(mailbox: Mailbox, stop=None, idle_seconds: int = 300) -> None:
    """Near-real-time intake: poll, then wait in IMAP IDLE until the server reports new mail.

    ``stop`` is an optional threading.Event. Servers drop IDLE after 30 minutes, so
    the wait is renewed every ``idle_seconds``; a lost connection is retried after
    the mailbox's poll interval.
    """
    while stop is None or not stop.is_set():
        seen = poll(mailbox).highest_uid
        try:
            client = connect(mailbox)
            try:
                client.select_folder(mailbox.folder, readonly=True)
                # Mail that arrived between the poll and now would not wake IDLE: poll again at once.
                arrived = [uid for uid in client.search(["UID", f"{seen + 1}:*"]) if uid > seen]
                if not arrived:
                    client.idle()
                    deadline = idle_seconds
                    while deadline > 0 and (stop is None or not stop.is_set()):
                        if any(b"EXISTS" in response for response in client.idle_check(timeout=1)):
                            break
                        deadline -= 1
                    client.idle_done()
            finally:
                client.logout()
        except (MailboxError, IMAPClientError, OSError) as exc:
            log.warning("mailbox %s: IDLE failed: %s", mailbox.pk, exc)
            if stop is not None:
                stop.wait(mailbox.poll_interval)
            else:
                time.sleep(mailbox.poll_interval)
