"""OAuth2 access tokens for mailboxes that log in with SASL XOAUTH2 (Microsoft 365, Google Workspace).

Three grants, each the way its provider documents it:

- client credentials: Microsoft 365 app-only access (scope ``https://outlook.office365.com/.default``);
- refresh token: delegated access (Microsoft or Google), the token a one-time consent gave;
- JWT bearer (RFC 7523): a Google service account with domain-wide delegation, an RS256 assertion
  signed with its private key, ``sub`` = the mailbox.

The token requests are built and the assertion is signed by authlib (its transport-free core: request
parameters, token expiry, RFC 7523 assertion); the one POST is made with the standard library, so no HTTP
client joins the dependencies. The token endpoint passes the same SSRF guard as the IMAP host.

An access token is cached encrypted on the mailbox and refreshed REFRESH_BEFORE its expiry; the mailbox
row is locked while it is refreshed, so two pollers never refresh one mailbox at once (a rotated refresh
token would otherwise be lost). A refusal that needs a person (revoked consent, an expired secret) is
recorded in ``oauth_error`` and the token endpoint is not asked again until someone fixes the mailbox
(``set_secrets``): each poll then fails at once with that sentence, which the Ingestion page and the
mailbox alert show. Secrets and tokens are never logged and never part of an error message.
"""

import ipaddress
import json
import logging
import ssl
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc6749.wrappers import OAuth2Token
from authlib.oauth2.rfc7523.assertion import sign_jwt_bearer_assertion
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from reports.models import Mailbox
from reports.tenancy import netguard
from reports.tenancy.secrets import SecretError, decrypt, encrypt

log = logging.getLogger(__name__)

REFRESH_BEFORE = timedelta(minutes=5)
TIMEOUT = 30
DEFAULT_EXPIRES_IN = 3600  # when a token response leaves expires_in out
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
RECONNECT = "reconnect the mailbox"

Auth = Mailbox.Auth
Provider = Mailbox.OAuthProvider

# The IMAP scope each provider documents for each kind of access.
MICROSOFT_APP_SCOPE = "https://outlook.office365.com/.default"
MICROSOFT_DELEGATED_SCOPE = "https://outlook.office.com/IMAP.AccessAsUser.All offline_access"
GOOGLE_SCOPE = "https://mail.google.com/"

# What the token endpoint's refusal means for an operator, and whether it stops the mailbox.
FIXES = {
    "invalid_client": "the client secret expired or is wrong (or the client id is); enter a new client secret",
    "unauthorized_client": "the application may not use this grant; check its registration at the provider",
    "invalid_scope": "the provider refused the scope; check the scope and the application's API permissions",
    "access_denied": f"access was denied; grant the application access to the mailbox again or {RECONNECT}",
}


class OAuthError(Exception):
    """The token endpoint gave no access token. ``revoked``: the grant is gone (consent withdrawn, refresh
    token expired or revoked): only reconnecting the mailbox helps."""

    def __init__(self, reason: str, revoked: bool = False, stops: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.revoked = revoked
        # Needs a person: the endpoint is not asked again until the mailbox is fixed.
        self.stops = stops or revoked


def default_scope(mailbox: Mailbox) -> str:
    if mailbox.oauth_provider == Provider.GOOGLE:
        return GOOGLE_SCOPE
    if mailbox.oauth_provider == Provider.MICROSOFT:
        return MICROSOFT_APP_SCOPE if mailbox.auth == Auth.CLIENT_CREDENTIALS else MICROSOFT_DELEGATED_SCOPE
    return ""


def token_url(mailbox: Mailbox) -> str:
    """The mailbox's own token URL, else its provider's from the settings."""
    if mailbox.oauth_token_url:
        return mailbox.oauth_token_url
    if mailbox.oauth_provider == Provider.MICROSOFT:
        if not mailbox.oauth_tenant:
            raise OAuthError("a Microsoft 365 mailbox needs its tenant (id or domain) or a token URL", stops=True)
        return settings.OAUTH_MICROSOFT_TOKEN_URL.replace("{tenant}", mailbox.oauth_tenant)
    if mailbox.oauth_provider == Provider.GOOGLE:
        return settings.OAUTH_GOOGLE_TOKEN_URL
    raise OAuthError("no token URL configured for this mailbox", stops=True)


def set_secrets(mailbox: Mailbox, *, client_secret=None, private_key=None, refresh_token=None) -> None:
    """Store new secrets encrypted (None keeps one); the cached access token and a recorded refusal go,
    so the next poll asks the token endpoint afresh. The caller saves the mailbox."""
    for name, value in (
        ("oauth_client_secret_encrypted", client_secret),
        ("oauth_private_key_encrypted", private_key),
        ("oauth_refresh_token_encrypted", refresh_token),
    ):
        if value is not None:
            setattr(mailbox, name, encrypt(value) if value else "")
    mailbox.oauth_access_token_encrypted = ""
    mailbox.oauth_expires_at = None
    mailbox.oauth_error = ""


def access_token(mailbox: Mailbox, rejected: str = "") -> str:
    """A valid access token for ``mailbox``: the cached one, or a new one when it expires within
    REFRESH_BEFORE. ``rejected``: a token the server just refused, replaced even if not expired (unless
    another poller replaced it meanwhile). Raises OAuthError."""
    error = None
    with transaction.atomic():
        row = Mailbox.objects.select_for_update().get(pk=mailbox.pk)
        try:
            token = _cached(row, rejected)
            if not token:
                token = _refresh(row)
        except OAuthError as exc:
            error = exc
            if exc.stops and not row.oauth_error:
                row.oauth_error = exc.reason[:2000]
                row.oauth_access_token_encrypted = ""
                row.oauth_expires_at = None
                row.save(update_fields=["oauth_error", "oauth_access_token_encrypted", "oauth_expires_at"])
    for name in (
        "oauth_access_token_encrypted",
        "oauth_expires_at",
        "oauth_refresh_token_encrypted",
        "oauth_error",
    ):
        setattr(mailbox, name, getattr(row, name))
    if error is not None:
        raise error
    return token


def _cached(row: Mailbox, rejected: str) -> str:
    if row.oauth_error:
        raise OAuthError(row.oauth_error, revoked=RECONNECT in row.oauth_error, stops=True)
    if not row.oauth_access_token_encrypted or row.oauth_expires_at is None:
        return ""
    if row.oauth_expires_at - REFRESH_BEFORE <= timezone.now():
        return ""
    token = _secret(row.oauth_access_token_encrypted, "access token")
    return "" if token == rejected else token


def _refresh(row: Mailbox) -> str:
    url = token_url(row)
    body = _grant(row, url)
    response = _post(url, body)
    token = OAuth2Token(response)
    access = token.get("access_token")
    if not access or not isinstance(access, str):
        raise OAuthError(f"the token endpoint {_host(url)} answered without an access token")
    if not token.get("expires_at"):
        token["expires_at"] = int(timezone.now().timestamp()) + DEFAULT_EXPIRES_IN
    row.oauth_access_token_encrypted = encrypt(access)
    row.oauth_expires_at = datetime.fromtimestamp(int(token["expires_at"]), tz=UTC)
    fields = ["oauth_access_token_encrypted", "oauth_expires_at"]
    if row.auth == Auth.REFRESH_TOKEN and token.get("refresh_token"):
        row.oauth_refresh_token_encrypted = encrypt(token["refresh_token"])  # Microsoft rotates it
        fields.append("oauth_refresh_token_encrypted")
    row.save(update_fields=fields)
    log.info("mailbox %s: new OAuth access token from %s, valid until %s", row.pk, _host(url), row.oauth_expires_at)
    return access


def _grant(row: Mailbox, url: str) -> str:
    scope = row.oauth_scope or default_scope(row)
    if not row.oauth_client_id:
        raise OAuthError("no client id configured for this mailbox", stops=True)
    if row.auth == Auth.CLIENT_CREDENTIALS:
        secret = _secret(row.oauth_client_secret_encrypted, "client secret")
        return prepare_token_request(
            "client_credentials", client_id=row.oauth_client_id, client_secret=secret, scope=scope
        )
    if row.auth == Auth.REFRESH_TOKEN:
        refresh = _secret(row.oauth_refresh_token_encrypted, "refresh token")
        secret = (
            _secret(row.oauth_client_secret_encrypted, "client secret") if row.oauth_client_secret_encrypted else ""
        )
        return prepare_token_request(
            "refresh_token", refresh_token=refresh, client_id=row.oauth_client_id, client_secret=secret, scope=scope
        )
    if row.auth == Auth.JWT_BEARER:
        key = _secret(row.oauth_private_key_encrypted, "service account private key")
        try:
            assertion = sign_jwt_bearer_assertion(
                RSAKey.import_key(key),
                issuer=row.oauth_client_id,
                audience=url,
                subject=row.username,
                alg="RS256",
                claims={"scope": scope} if scope else None,
                expires_in=3600,
            )
        except (JoseError, ValueError, TypeError) as exc:
            raise OAuthError(
                f"the service account's private key cannot sign ({type(exc).__name__}); enter its PEM key again",
                stops=True,
            ) from None
        return prepare_token_request(JWT_BEARER, assertion=assertion)
    raise OAuthError(f"the mailbox logs in with {row.auth!r}, not OAuth2", stops=True)


def _secret(encrypted: str, what: str) -> str:
    if not encrypted:
        raise OAuthError(f"no {what} stored for this mailbox", stops=True)
    try:
        return decrypt(encrypted)
    except SecretError:
        raise OAuthError(
            f"the stored {what} cannot be decrypted (was SECRET_KEY changed?); enter it again", stops=True
        ) from None


def _host(url: str) -> str:
    return urlsplit(url).hostname or url


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a redirect could lead past the SSRF guard; a token endpoint has no need of one


def _post(url: str, body: str) -> dict:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme != "https" and not (parts.scheme == "http" and _loopback(host)):
        raise OAuthError(f"the token URL must be https:// (plain http only to a loopback address): {url}", stops=True)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise OAuthError(f"the token URL has an invalid port: {url}", stops=True) from None
    if refusal := netguard.refusal(host, port):
        raise OAuthError(f"token URL: {refusal}", stops=True)
    request = urllib.request.Request(  # noqa: S310 (the scheme is checked above: https, or http to loopback)
        url,
        data=body.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        method="POST",
    )
    opener = urllib.request.build_opener(_NoRedirect, urllib.request.HTTPSHandler(context=ssl.create_default_context()))
    try:
        with opener.open(request, timeout=TIMEOUT) as response:
            return _json(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            raise _refusal(exc.code, _json(exc.read()), host) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OAuthError(f"cannot reach the token endpoint {host}: {reason}") from None


def _json(raw: bytes) -> dict:
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _refusal(status: int, body: dict, host: str) -> OAuthError:
    """The refusal as a sentence that starts with what to do (alerts show only the start of it)."""
    error = str(body.get("error") or "")[:100]
    description = " ".join(str(body.get("error_description") or "").split())[:300]
    said = f"{host} answered {error or f'HTTP {status}'}{': ' + description if description else ''}"
    if error == "invalid_grant":
        return OAuthError(
            f"the grant was revoked or has expired, {RECONNECT} (consent withdrawn, password changed, refresh "
            f"token unused too long, or the service account's key or delegation removed; {said})",
            revoked=True,
        )
    if error in FIXES:
        return OAuthError(f"{FIXES[error]} ({said})", stops=True)
    if status in (400, 401, 403) and error:
        return OAuthError(f"the token request was refused; check the mailbox's OAuth settings ({said})", stops=True)
    return OAuthError(f"the token endpoint failed; it is tried again at the next poll ({said})")


# --- The authorization-code flow (delegated access: "Connect with Microsoft/Google") ---------------------

AUTHORIZE_EXTRA = {
    # Google gives a refresh token only for offline access, and again only when consent is asked for.
    Provider.GOOGLE: {"access_type": "offline", "prompt": "consent"},
    # Microsoft: let the operator pick the mailbox's account even when signed in to another.
    Provider.MICROSOFT: {"prompt": "select_account"},
}


def url_refusal(url: str) -> str:
    """Why an endpoint URL is not acceptable ('' when it is): https, or plain http to loopback only."""
    parts = urlsplit(url)
    if parts.scheme != "https" and not (parts.scheme == "http" and _loopback(parts.hostname or "")):
        return "use an https:// URL (plain http only to a loopback address)"
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return "the URL has an invalid port"
    return netguard.refusal(parts.hostname or "", port) or ""


def authorize_url(mailbox: Mailbox) -> str:
    """The provider's authorization endpoint. A mailbox with its own token URL (a sovereign cloud, a test
    server) uses the same URL with its last segment ``token`` read as ``authorize``, as Microsoft's
    endpoints are laid out; otherwise the provider's from the settings."""
    if mailbox.oauth_token_url:
        base, _, last = mailbox.oauth_token_url.rstrip("/").rpartition("/")
        if last != "token":
            raise OAuthError("the token URL does not end in /token, so its authorization URL cannot be derived")
        return f"{base}/authorize"
    if mailbox.oauth_provider == Provider.MICROSOFT:
        if not mailbox.oauth_tenant:
            raise OAuthError("a Microsoft 365 mailbox needs its tenant (id or domain, or 'organizations')")
        return settings.OAUTH_MICROSOFT_AUTHORIZE_URL.replace("{tenant}", mailbox.oauth_tenant)
    if mailbox.oauth_provider == Provider.GOOGLE:
        return settings.OAUTH_GOOGLE_AUTHORIZE_URL
    raise OAuthError("no authorization URL for this mailbox: give its token URL")


def authorization_request(mailbox: Mailbox, redirect_uri: str, state: str, verifier: str) -> str:
    """Where to send the person who consents: the authorization URL with the request (PKCE S256)."""
    url = authorize_url(mailbox)
    if refusal := url_refusal(url):
        raise OAuthError(f"authorization URL: {refusal}")
    return prepare_grant_uri(
        url,
        client_id=mailbox.oauth_client_id,
        response_type="code",
        redirect_uri=redirect_uri,
        scope=mailbox.oauth_scope or default_scope(mailbox),
        state=state,
        code_challenge=create_s256_code_challenge(verifier),
        code_challenge_method="S256",
        **AUTHORIZE_EXTRA.get(mailbox.oauth_provider, {}),
    )


def exchange_code(mailbox: Mailbox, code: str, redirect_uri: str, verifier: str) -> None:
    """Trade an authorization code for tokens and keep the refresh token (encrypted) on ``mailbox``,
    which is saved; a refusal recorded earlier goes. Raises OAuthError."""
    url = token_url(mailbox)
    secret = (
        _secret(mailbox.oauth_client_secret_encrypted, "client secret") if mailbox.oauth_client_secret_encrypted else ""
    )
    body = prepare_token_request(
        "authorization_code",
        code=code,
        redirect_uri=redirect_uri,
        client_id=mailbox.oauth_client_id,
        client_secret=secret,
        code_verifier=verifier,
    )
    token = OAuth2Token(_post(url, body))
    refresh = token.get("refresh_token")
    if not refresh or not isinstance(refresh, str):
        raise OAuthError(
            f"{_host(url)} gave no refresh token: Microsoft needs the offline_access scope, Google offline access; "
            "check the scope and connect again"
        )
    with transaction.atomic():
        row = Mailbox.objects.select_for_update().get(pk=mailbox.pk)
        set_secrets(row, refresh_token=refresh)
        access = token.get("access_token")
        if access and isinstance(access, str) and token.get("expires_at"):
            row.oauth_access_token_encrypted = encrypt(access)
            row.oauth_expires_at = datetime.fromtimestamp(int(token["expires_at"]), tz=UTC)
        row.save(
            update_fields=[
                "oauth_refresh_token_encrypted",
                "oauth_access_token_encrypted",
                "oauth_expires_at",
                "oauth_error",
            ]
        )
    for name in ("oauth_refresh_token_encrypted", "oauth_access_token_encrypted", "oauth_expires_at", "oauth_error"):
        setattr(mailbox, name, getattr(row, name))
    log.info("mailbox %s: connected at %s (refresh token stored)", mailbox.pk, _host(url))
