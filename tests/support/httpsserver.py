"""A real HTTPS server on 127.0.0.1 for tests, plus the ``https_server`` fixture.

It serves the bodies a test gives it per path, over TLS with a certificate from the test's
``tls_ca`` (by default for ``mta-sts.example.com``), answering 404 for other paths. A route can
answer late (``delay``), dribble its body byte by byte (``trickle``) or leave out Content-Length
(``send_length=False``: the body ends when the connection closes). ``use_certificate`` changes the
certificate presented to later connections (a wrong name, an expired one, one from another CA).
Each request is logged with its path, its Host header and the name the client asked for in SNI::

    def test_something(https_server, tls_ca):
        https_server.serve("/.well-known/mta-sts.txt", b"version: STSv1\\r\\n...")
        https_server.use_certificate(tls_ca.issue(["other.example.net"]))
        fetch_policy("example.com", port=https_server.port, ca_file=tls_ca.ca_file, ...)

PYTEST_DONT_REWRITE: a helper, not a test module.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support.testca import Cert, TestCA

HOST = "127.0.0.1"
POLL = 0.05  # seconds between checks for a stop: the default half second would slow every test
DEFAULT_NAMES = ["mta-sts.example.com"]
SOCKET_TIMEOUT = 5.0  # a handler never waits longer on a client, so stopping never hangs


@dataclass(frozen=True)
class Route:
    body: bytes
    status: int = 200
    content_type: str | None = "text/plain"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before the status line
    trickle: float = 0.0  # seconds between the body's bytes
    send_length: bool = True


@dataclass(frozen=True)
class Request:
    path: str
    host: str  # the Host header
    sni: str | None  # the server name the client sent in the TLS handshake


class HttpsServer:
    """An HTTPS server on 127.0.0.1 at ``port``, run by threads until ``stop()``."""

    def __init__(self, cert: Cert) -> None:
        self._lock = threading.Lock()
        self._routes: dict[str, Route] = {}
        self._requests: list[Request] = []
        self._sni: dict[int, str | None] = {}
        self._stopping = threading.Event()
        self._context = self._make_context(cert)
        self._server = _Server(self)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(POLL,), name=f"https-{self.port}", daemon=True
        )

    def start(self) -> HttpsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; delayed and dribbling answers are cut short, and every handler thread is joined."""
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def serve(
        self,
        path: str,
        body: bytes,
        status: int = 200,
        content_type: str | None = "text/plain",
        *,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        trickle: float = 0.0,
        send_length: bool = True,
    ) -> None:
        """Answer GET ``path`` with ``body`` (``content_type`` None sends no Content-Type)."""
        route = Route(body, status, content_type, dict(headers or {}), delay, trickle, send_length)
        with self._lock:
            self._routes[path] = route

    def use_certificate(self, cert: Cert) -> None:
        """Present ``cert`` to the connections made from now on."""
        self._context = self._make_context(cert)

    @property
    def requests(self) -> list[Request]:
        """The requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def _make_context(self, cert: Cert) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert.cert_file, cert.key_file)
        context.sni_callback = self._note_sni
        return context

    def _note_sni(self, sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, context: ssl.SSLContext) -> None:
        with self._lock:
            self._sni[id(sock)] = name

    def _route(self, path: str) -> Route | None:
        with self._lock:
            return self._routes.get(path)

    def _log(self, sock: object, path: str, host: str) -> None:
        with self._lock:
            self._requests.append(Request(path, host, self._sni.get(id(sock))))


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins the handlers: no thread outlives the test
    block_on_close = True

    def __init__(self, owner: HttpsServer) -> None:
        self.owner = owner
        super().__init__((HOST, 0), _Handler)

    def get_request(self) -> tuple[socket.socket, object]:
        sock, address = super().get_request()
        # The handshake happens in the handler's thread: a client that never finishes it blocks no one else.
        return self.owner._context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients hang up mid-handshake on purpose (a refused certificate, a timeout)


class _Handler(BaseHTTPRequestHandler):
    timeout = SOCKET_TIMEOUT
    server: _Server

    def setup(self) -> None:
        self.request.settimeout(self.timeout)
        self.request.do_handshake()
        super().setup()

    def do_GET(self) -> None:
        owner = self.server.owner
        owner._log(self.request, self.path, self.headers.get("Host", ""))
        route = owner._route(self.path) or Route(b"not found\n", 404)
        if route.delay and owner._stopping.wait(route.delay):
            return
        self.send_response(route.status)
        if route.content_type is not None:
            self.send_header("Content-Type", route.content_type)
        for name, value in route.headers.items():
            self.send_header(name, value)
        if route.send_length:
            self.send_header("Content-Length", str(len(route.body)))
        self.end_headers()
        self._write_body(route)

    def _write_body(self, route: Route) -> None:
        if not route.trickle:
            self.wfile.write(route.body)
            return
        for index in range(len(route.body)):
            self.wfile.write(route.body[index : index + 1])
            self.wfile.flush()
            if self.server.owner._stopping.wait(route.trickle):
                return

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the test asserts on ``requests``


@pytest.fixture
def https_server(tls_ca: TestCA) -> Iterator[HttpsServer]:
    """A running HTTPS server presenting a certificate for ``mta-sts.example.com`` from ``tls_ca``."""
    server = HttpsServer(tls_ca.issue(DEFAULT_NAMES)).start()
    try:
        yield server
    finally:
        server.stop()
