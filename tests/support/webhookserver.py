"""A plain HTTP receiver on 127.0.0.1 for the alert-channel tests, and the ``webhook_server`` fixture.

It records every request (path, headers, body) and answers 200 "ok", or what the test asks
for next: ``answer(500)``, ``answer(410, b"channel_is_archived")``, ``answer(429, retry_after="120")``
(each queued answer is used once, then 200 again). ``stop()`` and ``start()`` take it down and up
on the same port, as a receiver that is down for a while. ``settings.MAILBOX_ALLOWED_NETWORKS``
lets the SSRF guard allow 127.0.0.0/8 for the test (the fixture sets it)::

    def test_something(webhook_server):
        webhook_server.answer(500)
        ... post to webhook_server.url("/hook") ...
        assert webhook_server.requests[0].json()["schema"] == "dmarcdash.alert.v1"

PYTEST_DONT_REWRITE: a helper, not a test module.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b"ok"
    retry_after: str | None = None


class WebhookServer:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.answers: list[Answer] = []
        self.lock = threading.Lock()
        with socket.socket() as probe:  # a free port, kept across stop() and start()
            probe.bind((HOST, 0))
            self.port = probe.getsockname()[1]
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    def url(self, path: str = "/hook") -> str:
        return f"http://{HOST}:{self.port}{path}"

    def answer(self, status: int, body: bytes = b"", retry_after: str | None = None, times: int = 1) -> None:
        with self.lock:
            self.answers += [Answer(status, body, retry_after)] * times

    def _next(self) -> Answer:
        with self.lock:
            return self.answers.pop(0) if self.answers else Answer()

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server name)
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with owner.lock:
                    owner.requests.append(Received(self.path, dict(self.headers.items()), body))
                answer = owner._next()
                self.send_response(answer.status)
                if answer.retry_after is not None:
                    self.send_header("Retry-After", answer.retry_after)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, *args) -> None:
                pass

        for _ in range(50):  # the port was just ours: rebinding may take a moment after stop()
            try:
                self.server = ThreadingHTTPServer((HOST, self.port), Handler)
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"port {self.port} stays busy")
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
def webhook_server(settings):
    """A receiver on 127.0.0.1, with 127.0.0.0/8 allowed by the SSRF guard for the test."""
    settings.MAILBOX_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    server = WebhookServer()
    server.start()
    yield server
    server.stop()
