"""A real SMTP server on 127.0.0.1 for tests (aiosmtpd), plus the ``smtp_server`` and ``smtp_settings`` fixtures.

The server keeps every message it accepts, parsed with ``email.policy.default``, together with its envelope.
It listens on one port for its whole life: ``stop()`` closes the listener and drops open sessions (clients
get "connection refused" while it is down) and ``start()`` listens again on the same port, which models the
mail server being down, then up. ``fail_next(n)`` makes it answer the next ``n`` DATA commands with a
temporary failure (``451 4.3.0 try again later``): a real SMTP reply from a real server, for testing retries.

tests/conftest.py loads the fixtures as a plugin::

    def test_something(smtp_settings):
        send_mail("Subject", "body", "from@example.com", ["to@example.com"])
        (received,) = smtp_settings.wait_for(1)
        assert received.message["Subject"] == "Subject"

PYTEST_DONT_REWRITE: a helper, not a test module.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

HOST = "127.0.0.1"
HOSTNAME = "mail.test"  # the server's name in its greeting; also spares aiosmtpd a getfqdn() per session


@dataclass(frozen=True)
class Received:
    """One message as the server got it: the envelope (MAIL FROM, RCPT TO) and the content, parsed with
    ``email.policy.default`` after turning the wire's CRLF line ends into LF."""

    mail_from: str
    rcpt_tos: list[str]
    message: email.message.EmailMessage


class SmtpServer:
    """An aiosmtpd server on 127.0.0.1 that records what it receives; ``port`` is fixed at construction."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._messages: list[Received] = []
        self._rejected: list[Received] = []
        self._failures = 0
        self._failure_reply = ""
        # Bound now, so the port is ours from the start; start() hands this socket to the first listener.
        self._socket: socket.socket | None = _bind(0)
        self.port: int = self._socket.getsockname()[1]
        self._controller: _Controller | None = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> SmtpServer:
        """Listen on ``port`` (again, after a stop); returns the server once it answers connections."""
        if self._controller is not None:
            raise RuntimeError(f"the SMTP server on port {self.port} is already running")
        sock, self._socket = self._socket or _bind(self.port), None
        controller = _Controller(_Handler(self), sock, hostname=HOST, port=self.port, server_hostname=HOSTNAME)
        try:
            controller.start()
        except BaseException:
            sock.close()
            raise
        self._controller = controller
        return self

    def stop(self) -> None:
        """Close the listener and drop open sessions; the port is then refused until ``start()``.
        Stopping a stopped server does nothing."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def messages(self) -> list[Received]:
        """The messages accepted so far, oldest first (a copy)."""
        with self._condition:
            return list(self._messages)

    @property
    def rejected(self) -> list[Received]:
        """The messages answered with a ``fail_next`` failure, oldest first (a copy)."""
        with self._condition:
            return list(self._rejected)

    def wait_for(self, count: int, timeout: float = 5) -> list[Received]:
        """Wait until at least ``count`` messages were accepted and return them all; fail the test after
        ``timeout`` seconds."""
        with self._condition:
            if not self._condition.wait_for(lambda: len(self._messages) >= count, timeout):
                raise AssertionError(
                    f"the SMTP server got {len(self._messages)} message(s) in {timeout} s, expected {count}"
                )
            return list(self._messages)

    def clear(self) -> None:
        """Forget the accepted and rejected messages (pending ``fail_next`` failures stay)."""
        with self._condition:
            self._messages.clear()
            self._rejected.clear()

    def fail_next(self, n: int = 1, code: int = 451, text: str = "try again later") -> None:
        """Answer the next ``n`` DATA commands with ``code`` (e.g. ``451 4.3.0 try again later``) instead of
        accepting the message."""
        if not 400 <= code < 600:
            raise ValueError(f"{code} is not a failure reply code")
        with self._condition:
            self._failures = n
            self._failure_reply = f"{code} {code // 100}.3.0 {text}"

    def _receive(self, envelope: Envelope) -> str:
        received = Received(
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            message=email.message_from_bytes(_unix_lines(envelope.original_content), policy=email.policy.default),
        )
        with self._condition:
            if self._failures:
                self._failures -= 1
                self._rejected.append(received)
                return self._failure_reply
            self._messages.append(received)
            self._condition.notify_all()
        return "250 2.0.0 OK"


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self._server = server

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return self._server._receive(envelope)


class _Controller(Controller):
    """aiosmtpd's threaded controller listening on a socket bound beforehand (its loop closes on stop, so
    each start needs a new controller)."""

    def __init__(self, handler: _Handler, sock: socket.socket, **kwargs) -> None:
        super().__init__(handler, **kwargs)
        self._sock = sock

    def _create_server(self):
        return self.loop.create_server(self._factory_invoker, sock=self._sock)


def _unix_lines(data: bytes | None) -> bytes:
    # SMTP carries CRLF line ends; the parser keeps them in bodies, while Python strings end lines in "\n".
    return (data or b"").replace(b"\r\n", b"\n")


def _bind(port: int) -> socket.socket:
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets that say so, and without it each
    # multi-line reply (EHLO) waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    # Connections closed by the previous listener linger in TIME_WAIT; without this, restarting would fail.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError:
        sock.close()
        raise
    return sock


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A running SMTP server for this test, stopped afterwards."""
    server = SmtpServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp_settings(settings, smtp_server: SmtpServer) -> SmtpServer:
    """Django sends mail over SMTP to this test's ``smtp_server`` (no TLS, no login); returns the server."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = HOST
    settings.EMAIL_PORT = smtp_server.port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5
    return smtp_server
