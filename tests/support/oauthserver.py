"""A local OAuth2 authorization server on 127.0.0.1 for tests: a token endpoint and an RFC 7662
introspection endpoint (which the suite's ``dovecot_oauth`` asks to validate XOAUTH2 logins).

Token endpoint (``/token``, form POST): ``client_credentials`` (a registered client, for one mailbox, as
Microsoft's app-only access grants an application its mailboxes), ``refresh_token`` (a refresh token
issued by ``refresh_token_for``; ``revoke`` withdraws it) and ``urn:ietf:params:oauth:grant-type:jwt-bearer``
(an RS256 assertion of a registered service account, its signature checked with the account's public key;
``sub`` is the mailbox). Access tokens are opaque and expire after ``expires_in`` seconds; ``expire`` ends
one early, as a provider revoking a token would.

Authorization endpoint (``/authorize``, RFC 6749 section 4.1 with PKCE, RFC 7636): a GET with the request
shows a consent page (an "Allow" and a "Deny" button); Allow redirects to the registered ``redirect_uri``
with ``code`` and ``state``, Deny with ``error=access_denied``. Only clients added with
``add_client(..., redirect_uri=...)`` may ask, only for that redirect URI, and only with an S256 challenge.
The token endpoint's ``authorization_code`` grant checks the client, the redirect URI and the verifier and
gives a refresh token for the mailbox named by ``consent_user`` (the user who "signs in"), once per code.

PYTEST_DONT_REWRITE: a helper, not a test module.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def rsa_key_pem() -> tuple[str, str]:
    """A new RSA key pair, as a service account's (private PEM, public PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@dataclass
class OAuthServer:
    host: str
    port: int
    expires_in: int = 3600
    clients: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (secret, mailbox)
    service_accounts: dict[str, str] = field(default_factory=dict)  # email -> public PEM
    refresh_tokens: dict[str, tuple[str, str]] = field(default_factory=dict)  # token -> (client id, user)
    access_tokens: dict[str, tuple[str, float]] = field(default_factory=dict)  # token -> (user, expires)
    grants: list[str] = field(default_factory=list)  # grant types asked, in order
    redirect_uris: dict[str, str] = field(default_factory=dict)  # client id -> its registered redirect URI
    codes: dict[str, dict] = field(default_factory=dict)  # code -> the request it answers
    consent_user: str = ""  # who signs in at the consent page
    authorizations: list[dict] = field(default_factory=list)  # the authorization requests, as received
    introspections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    @property
    def introspection_url(self) -> str:
        return f"{self.url}/introspect"

    @property
    def authorize_url(self) -> str:
        return f"{self.url}/authorize"

    def add_client(self, mailbox: str, redirect_uri: str = "") -> tuple[str, str]:
        """A confidential client that may read ``mailbox`` (app-only); with ``redirect_uri`` it may also run the
        authorization-code flow back to that URI. Returns (client id, secret)."""
        client_id, secret = f"client-{secrets.token_hex(6)}", secrets.token_urlsafe(24)
        self.clients[client_id] = (secret, mailbox)
        if redirect_uri:
            self.redirect_uris[client_id] = redirect_uri
        return client_id, secret

    def authorization_problem(self, query: dict[str, str]) -> str:
        """Why an authorization request is refused outright ('' when the consent page may be shown)."""
        client_id = query.get("client_id", "")
        if client_id not in self.redirect_uris:
            return "unknown client"
        if query.get("redirect_uri") != self.redirect_uris[client_id]:
            return "redirect_uri does not match the registered one"
        if query.get("response_type") != "code":
            return "response_type must be code"
        if query.get("code_challenge_method") != "S256" or len(query.get("code_challenge", "")) < 43:
            return "PKCE with S256 is required"
        return ""

    def decide(self, query: dict[str, str], allow: bool) -> str:
        """Where the consent page sends the browser: back to the client with a code, or with access_denied."""
        if not allow:
            answer = {"error": "access_denied", "error_description": "The user denied consent."}
        else:
            code = f"code-{secrets.token_urlsafe(24)}"
            with self.lock:
                self.codes[code] = {**query, "user": self.consent_user, "at": time.time()}
            answer = {"code": code}
        if "state" in query:
            answer["state"] = query["state"]
        return f"{query['redirect_uri']}?{urlencode(answer)}"

    def _authorization_code(self, form: dict[str, str]) -> tuple[int, dict]:
        invalid = (400, {"error": "invalid_grant", "error_description": "The code is invalid or was used."})
        with self.lock:
            request = self.codes.pop(form.get("code", ""), None)  # a code is used once
        client = self.clients.get(form.get("client_id", ""))
        if client is None or not secrets.compare_digest(client[0], form.get("client_secret", "")):
            return 401, {"error": "invalid_client", "error_description": "Invalid client secret."}
        if request is None or request["client_id"] != form.get("client_id") or time.time() - request["at"] > 600:
            return invalid
        if request["redirect_uri"] != form.get("redirect_uri"):
            return invalid
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if not verifier or not secrets.compare_digest(challenge, request["code_challenge"]):
            return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed."}
        answer = self.issue(request["user"])
        answer["refresh_token"] = self.refresh_token_for(request["client_id"], request["user"])
        answer["scope"] = request.get("scope", "")
        return 200, answer

    def refresh_token_for(self, client_id: str, user: str) -> str:
        """A refresh token, as the user's consent in the authorization-code flow would give."""
        token = f"rt-{secrets.token_urlsafe(24)}"
        self.refresh_tokens[token] = (client_id, user)
        return token

    def revoke(self, refresh_token: str) -> None:
        self.refresh_tokens.pop(refresh_token, None)

    def add_service_account(self) -> tuple[str, str]:
        """A service account with domain-wide delegation; returns (its e-mail, its private key PEM)."""
        email = f"sa-{secrets.token_hex(4)}@project.iam.gserviceaccount.example"
        private, public = rsa_key_pem()
        self.service_accounts[email] = public
        return email, private

    def expire(self, access_token: str) -> None:
        with self.lock:
            user, _ = self.access_tokens[access_token]
            self.access_tokens[access_token] = (user, 0.0)

    def issue(self, user: str) -> dict:
        token = f"at-{secrets.token_urlsafe(24)}"
        with self.lock:
            self.access_tokens[token] = (user, time.time() + self.expires_in)
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in}

    def introspect(self, token: str) -> dict:
        with self.lock:
            self.introspections += 1
            user, expires = self.access_tokens.get(token, ("", 0.0))
        if not user or expires < time.time():
            return {"active": False}
        return {"active": True, "username": user, "exp": int(expires), "token_type": "Bearer"}

    def grant(self, form: dict[str, str]) -> tuple[int, dict]:
        grant_type = form.get("grant_type", "")
        self.grants.append(grant_type)
        if grant_type == "client_credentials":
            client = self.clients.get(form.get("client_id", ""))
            if client is None or not secrets.compare_digest(client[0], form.get("client_secret", "")):
                return 401, {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret."}
            return 200, self.issue(client[1])
        if grant_type == "refresh_token":
            held = self.refresh_tokens.get(form.get("refresh_token", ""))
            if held is None or held[0] != form.get("client_id"):
                return 400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
            return 200, self.issue(held[1])
        if grant_type == JWT_BEARER:
            return self._jwt_bearer(form.get("assertion", ""))
        if grant_type == "authorization_code":
            return self._authorization_code(form)
        return 400, {"error": "unsupported_grant_type"}

    def _jwt_bearer(self, assertion: str) -> tuple[int, dict]:
        invalid = (400, {"error": "invalid_grant", "error_description": "Invalid JWT signature."})
        try:
            # The issuer names the key; only then is the signature checked with it.
            payload = assertion.split(".")[1]
            issuer = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["iss"]
            verified = jwt.decode(assertion, RSAKey.import_key(self.service_accounts[issuer]), algorithms=["RS256"])
        except (JoseError, KeyError, ValueError, IndexError, TypeError):
            return invalid
        claims = verified.claims
        if verified.header.get("alg") != "RS256" or claims.get("aud") != self.token_url:
            return invalid
        if not claims.get("sub") or not (claims.get("iat", 0) - 60 <= time.time() < claims.get("exp", 0)):
            return invalid
        return 200, self.issue(claims["sub"])


CONSENT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in: test authorization server</title></head>
<body><main><h1>Allow access to your mailbox?</h1>
<p>The application <strong>{client}</strong> asks to read the mailbox of <strong>{user}</strong>
(scope: <code>{scope}</code>).</p>
<form method="post" action="/authorize">{hidden}
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form></main></body></html>
"""


class _Handler(BaseHTTPRequestHandler):
    server_version = "dmarcdash-test-oauth/1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        state: OAuthServer = self.server.state  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        if parts.path != "/authorize":
            self._send(404, b"not found", "text/plain")
            return
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        state.authorizations.append(query)
        if problem := state.authorization_problem(query):
            # As providers do: a bad client or redirect URI is never redirected to.
            self._send(400, f"invalid request: {problem}".encode(), "text/plain")
            return
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(key)}" value="{html.escape(value)}">'
            for key, value in query.items()
        )
        page = CONSENT_PAGE.format(
            client=html.escape(query["client_id"]),
            user=html.escape(state.consent_user),
            scope=html.escape(query.get("scope", "")),
            hidden=hidden,
        )
        self._send(200, page.encode(), "text/html; charset=utf-8")

    def _send(self, status: int, body: bytes, content_type: str, location: str = "") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if location:
            self.send_header("Location", location)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        state: OAuthServer = self.server.state  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        if self.path == "/authorize":
            decision = form.pop("decision", "")
            if problem := state.authorization_problem(form):
                self._send(400, f"invalid request: {problem}".encode(), "text/plain")
            else:
                self._send(302, b"", "text/plain", location=state.decide(form, allow=decision == "allow"))
            return
        if self.path == "/token":
            status, body = state.grant(form)
        elif self.path == "/introspect":
            status, body = 200, state.introspect(form.get("token", ""))
        else:
            status, body = 404, {"error": "not_found"}
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format, *args) -> None:  # noqa: A002
        pass  # quiet; tests assert on the state instead


def start_oauth_server() -> tuple[OAuthServer, ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    state = OAuthServer(host="127.0.0.1", port=httpd.server_address[1])
    httpd.state = state  # type: ignore[attr-defined]
    threading.Thread(target=httpd.serve_forever, name="oauth-server", daemon=True).start()
    return state, httpd


@pytest.fixture(scope="session")
def oauth_server() -> Iterator[OAuthServer]:
    """The session's OAuth server (Dovecot's introspection endpoint is fixed when it starts)."""
    state, httpd = start_oauth_server()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def token_server(oauth_server: OAuthServer) -> Iterator[OAuthServer]:
    """``oauth_server`` with a short default expiry restored and the grant log emptied after each test."""
    oauth_server.grants.clear()
    yield oauth_server
    oauth_server.expires_in = 3600
    oauth_server.grants.clear()
    oauth_server.consent_user = ""
    oauth_server.authorizations.clear()
