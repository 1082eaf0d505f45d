"""A minimal SMTP server on 127.0.0.1 that offers STARTTLS (or does not), plus the ``starttls_server`` fixture.

It only talks: greeting, EHLO/HELO, STARTTLS, NOOP, RSET and QUIT, enough for a client to see what
a receiving MTA offers and to make a TLS session with it. It accepts no mail. ``starttls_server(cert)``
starts one presenting ``cert`` (a ``tests.support.testca.Cert``) after STARTTLS;
``starttls_server(None)`` starts one whose EHLO does not offer STARTTLS; ``starttls_reply="454 4.7.0
TLS not available"`` makes it offer STARTTLS but answer the command with that instead. Each session
is logged (the EHLO name, the TLS version agreed or the handshake's error)::

    def test_something(starttls_server, tls_ca):
        server = starttls_server(tls_ca.issue(["mx.example.com"]))
        probe("mx.example.com", ip="127.0.0.1", port=server.port, ca_file=tls_ca.ca_file)

PYTEST_DONT_REWRITE: a helper, not a test module.
"""

from __future__ import annotations

import socket
import socketserver
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.support.testca import Cert

HOST = "127.0.0.1"
POLL = 0.05  # seconds between checks for a stop: the default half second would slow every test
HOSTNAME = "mx.test"
SOCKET_TIMEOUT = 5.0  # a session never waits longer on its client, so stopping never hangs
MAX_LINE = 1000  # RFC 5321 §4.5.3.1.6: a command line is at most 512 octets; allow slack


@dataclass
class Session:
    helo: str = ""
    tls_version: str = ""  # agreed after STARTTLS, "" when there was none
    tls_error: str = ""  # why the handshake failed (the client refused the certificate...)
    quit: bool = False


class StarttlsServer:
    """An SMTP server on 127.0.0.1 at ``port``; ``context`` None means it does not offer STARTTLS."""

    def __init__(self, cert: Cert | None, starttls_reply: str | None = None) -> None:
        self.context: ssl.SSLContext | None = None
        if cert is not None:
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.load_cert_chain(cert.cert_file, cert.key_file)
        self.starttls_reply = starttls_reply
        self._lock = threading.Lock()
        self._sessions: list[Session] = []
        self._open: set[socket.socket] = set()
        self._server = _Server(self)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(POLL,), name=f"smtp-tls-{self.port}", daemon=True
        )

    def start(self) -> StarttlsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening, cut open sessions and join every thread."""
        self._server.shutdown()
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            try:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain one: ends a blocked read, TLS or not
            except OSError:
                pass
        self._server.server_close()
        self._thread.join(timeout=10)

    @property
    def sessions(self) -> list[Session]:
        """The sessions so far, oldest first."""
        with self._lock:
            return list(self._sessions)

    def _begin(self) -> Session:
        session = Session()
        with self._lock:
            self._sessions.append(session)
        return session

    def _track(self, old: socket.socket | None, new: socket.socket | None) -> None:
        with self._lock:
            self._open.discard(old)
            if new is not None:
                self._open.add(new)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = False  # server_close() joins the sessions: no thread outlives the test
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, owner: StarttlsServer) -> None:
        self.owner = owner
        super().__init__((HOST, 0), _Session)

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients hang up on purpose


class _Session(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        owner = self.server.owner
        session = owner._begin()
        self.sock: socket.socket = self.request
        self.sock.settimeout(SOCKET_TIMEOUT)
        owner._track(None, self.sock)
        try:
            self._converse(owner, session)
        except OSError:
            pass  # the client went away
        finally:
            owner._track(self.sock, None)
            self.sock.close()

    def _converse(self, owner: StarttlsServer, session: Session) -> None:
        reader = self.sock.makefile("rb")
        self._send(f"220 {HOSTNAME} ESMTP test server")
        while line := reader.readline(MAX_LINE):
            verb, _, argument = line.decode("ascii", "replace").strip().partition(" ")
            verb = verb.upper()
            if verb == "EHLO":
                session.helo = argument
                self._ehlo(owner, session, argument)
            elif verb == "HELO":
                session.helo = argument
                self._send(f"250 {HOSTNAME}")
            elif verb == "STARTTLS" and owner.context is not None and not session.tls_version:
                reader.close()
                if not self._starttls(owner, session):
                    return
                reader = self.sock.makefile("rb")
            elif verb == "QUIT":
                session.quit = True
                self._send("221 2.0.0 bye")
                return
            elif verb in ("NOOP", "RSET"):
                self._send("250 2.0.0 OK")
            else:
                self._send("502 5.5.1 command not implemented")

    def _ehlo(self, owner: StarttlsServer, session: Session, name: str) -> None:
        extensions = ["PIPELINING", "8BITMIME"]
        if owner.context is not None and not session.tls_version:
            extensions.append("STARTTLS")
        lines = [f"{HOSTNAME} greets {name or 'you'}", *extensions]
        self._send("\r\n".join(f"250-{line}" for line in lines[:-1]) + f"\r\n250 {lines[-1]}")

    def _starttls(self, owner: StarttlsServer, session: Session) -> bool:
        """Answer STARTTLS and make the TLS session; False when there is none to go on with."""
        if owner.starttls_reply:
            self._send(owner.starttls_reply)
            return True
        assert owner.context is not None
        self._send("220 2.0.0 ready to start TLS")
        plain = self.sock
        try:
            self.sock = owner.context.wrap_socket(plain, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            session.tls_error = str(exc)
            return False
        finally:
            owner._track(plain, self.sock)
        session.tls_version = self.sock.version() or ""
        return True

    def _send(self, reply: str) -> None:
        self.sock.sendall(reply.encode("ascii") + b"\r\n")


@pytest.fixture
def starttls_server() -> Iterator[Callable[..., StarttlsServer]]:
    """Start SMTP servers for this test: ``starttls_server(cert=None, starttls_reply=None)``; all are
    stopped afterwards."""
    started: list[StarttlsServer] = []

    def start(cert: Cert | None = None, starttls_reply: str | None = None) -> StarttlsServer:
        server = StarttlsServer(cert, starttls_reply).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
