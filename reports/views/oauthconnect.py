""" "Connect with Microsoft" / "Connect with Google": the OAuth2 authorization-code flow that gives a mailbox
with delegated access its refresh token.

The mailbox page links to ``connect`` (owners and admins; 404 for anyone else), which sends the browser to
the provider's authorization endpoint with PKCE (S256) and a ``state`` signed with SECRET_KEY that names the
mailbox and a nonce kept in the user's session with the PKCE verifier. The provider sends the browser back
to ``callback`` at SITE_URL + /oauth/callback/ (the one redirect URI to register), which checks the state
against the session, exchanges the code (authlib's core, as reports/intake/oauth.py does for every token
request), stores the refresh token encrypted, clears a recorded refusal and audits it. Denied consent, a
state that does not match and a refused exchange come back to the mailbox page with what to do. Codes and
tokens are never logged nor shown.
"""

import logging
import secrets
import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.http import HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.views.decorators.cache import never_cache

from reports.intake import oauth
from reports.models import Mailbox, Membership
from reports.tenancy import audit
from reports.tenancy.access import organization_for

log = logging.getLogger(__name__)

ADMIN = Membership.Role.ADMIN
SALT = "reports.oauthconnect.state"
SESSION_KEY = "oauth-connect"  # nonce -> {"mailbox": id, "verifier": ..., "at": seconds}
MAX_AGE = 15 * 60  # seconds a person has to consent
MAX_PENDING = 5  # flows kept per session (older ones go)

# What the provider's error means, and what to do about it.
PROVIDER_ERRORS = {
    "access_denied": "consent was denied (Deny was chosen, or an administrator must consent for the "
    "organization). Click Connect again and choose Allow, or ask your administrator to grant consent",
    "consent_required": "an administrator must consent to the application for the organization first; "
    "then click Connect again",
    "interaction_required": "the provider needs you to sign in again; click Connect again",
    "invalid_scope": "the provider refused the scope; check the application's API permissions and the scope",
    "unauthorized_client": "the application may not use this flow; check its registration (a Web platform "
    "with this install's redirect URI)",
    "invalid_request": "the provider refused the request; check the client id, the tenant and the redirect "
    "URI registered with the application",
}


def redirect_uri() -> str:
    """The callback on this install, as registered with the application at the provider."""
    return settings.SITE_URL.rstrip("/") + reverse("oauth-callback")


def _label(mailbox: Mailbox) -> str:
    return "Google" if mailbox.oauth_provider == Mailbox.OAuthProvider.GOOGLE else "Microsoft"


@never_cache
@login_required
def connect(request, slug: str, mailbox_id: int):
    organization = organization_for(request, slug, ADMIN)
    mailbox = get_object_or_404(Mailbox, organization=organization, pk=mailbox_id)
    back = redirect("org-mailbox", slug=organization.slug, mailbox_id=mailbox.pk)
    if mailbox.auth != Mailbox.Auth.REFRESH_TOKEN:
        messages.error(request, f"{mailbox.name} does not use delegated access: choose it under Sign-in first.")
        return back
    if not mailbox.oauth_client_id:
        messages.error(request, f"{mailbox.name} has no client id: enter the application's client id first.")
        return back
    nonce = secrets.token_urlsafe(16)
    verifier = secrets.token_urlsafe(48)  # RFC 7636: 43 to 128 characters
    state = signing.dumps({"m": mailbox.pk, "n": nonce}, salt=SALT, compress=True)
    try:
        url = oauth.authorization_request(mailbox, redirect_uri(), state, verifier)
    except oauth.OAuthError as exc:
        messages.error(request, f"Cannot connect {mailbox.name}: {exc}")
        return back
    pending = {
        key: flow
        for key, flow in request.session.get(SESSION_KEY, {}).items()
        if flow.get("at", 0) > time.time() - MAX_AGE
    }
    pending = dict(sorted(pending.items(), key=lambda item: item[1]["at"])[-(MAX_PENDING - 1) :])
    pending[nonce] = {"mailbox": mailbox.pk, "verifier": verifier, "at": time.time()}
    request.session[SESSION_KEY] = pending
    return redirect(url)


def _flow_from_state(request, state: str) -> tuple[int | None, dict | None, str]:
    """(mailbox id, the session's pending flow, why it does not match) for the state the provider returned."""
    pending = request.session.get(SESSION_KEY, {})
    try:
        signed = signing.loads(state, salt=SALT, max_age=MAX_AGE)
        mailbox_id, nonce = int(signed["m"]), str(signed["n"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        # Unreadable or too old: the flow this session started last, if any, is where to say so.
        latest = max(pending.values(), key=lambda flow: flow["at"], default=None)
        return (latest["mailbox"] if latest else None), None, "the sign-in took too long or its state is not ours"
    flow = pending.get(nonce)
    if flow is None or flow.get("mailbox") != mailbox_id:
        return mailbox_id, None, "it was not started in this browser session"
    del pending[nonce]
    request.session[SESSION_KEY] = pending  # a state is used once
    return mailbox_id, flow, ""


@never_cache
@login_required
def callback(request):
    params = request.GET
    mailbox_id, flow, mismatch = _flow_from_state(request, params.get("state", ""))
    if mailbox_id is None:
        return HttpResponseBadRequest(
            "This sign-in was not started here (or it took too long). Open the mailbox page and click Connect again.",
            content_type="text/plain; charset=utf-8",
        )
    mailbox = get_object_or_404(Mailbox.objects.select_related("organization"), pk=mailbox_id)
    organization = organization_for(request, mailbox.organization.slug, ADMIN)
    back = redirect("org-mailbox", slug=organization.slug, mailbox_id=mailbox.pk)
    label = _label(mailbox)
    if mismatch:
        messages.error(request, f"Connecting {mailbox.name} failed: {mismatch}. Click Connect with {label} again.")
        return back
    if error := params.get("error", ""):
        error = error[:100]
        what = PROVIDER_ERRORS.get(error, "the provider refused; click Connect again, or check the application")
        described = " ".join(params.get("error_description", "").split())[:300]
        messages.error(
            request,
            f"Connecting {mailbox.name} failed: {what} ({label} said {error}{': ' + described if described else ''}).",
        )
        return back
    code = params.get("code", "")
    if not code:
        messages.error(request, f"Connecting {mailbox.name} failed: {label} sent no code. Click Connect again.")
        return back
    if mailbox.auth != Mailbox.Auth.REFRESH_TOKEN:
        messages.error(request, f"{mailbox.name} no longer uses delegated access; nothing was saved.")
        return back
    try:
        oauth.exchange_code(mailbox, code, redirect_uri(), flow["verifier"])
    except oauth.OAuthError as exc:
        messages.error(
            request,
            f"Connecting {mailbox.name} failed: the code could not be exchanged for a token: {exc}. "
            f"Check the client id and secret, then click Connect with {label} again.",
        )
        return back
    audit.record(
        request, organization, "mailbox.connected", mailbox.name, after={"refresh token set": True, "via": label}
    )
    messages.success(request, f"{mailbox.name} is connected to {label}: the refresh token is stored encrypted.")
    return back


urlpatterns = [
    path("orgs/<slug:slug>/mailboxes/<int:mailbox_id>/connect/", connect, name="org-mailbox-oauth-connect"),
    path("oauth/callback/", callback, name="oauth-callback"),
]
