"""An organization's settings: mailboxes, API tokens, alert defaults, retention, unverified reports; the audit log.

Members read the settings and the mailboxes' state; admins change them and manage tokens; only
owners rename the organization. Anyone else gets 404, as for another organization's page.
Passwords and token secrets never reach a page after they are typed or shown once, nor the audit log.
"""

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from reports.dashboard.stats import PAGE_SIZE
from reports.intake import mailboxes
from reports.models import ApiToken, AuditEntry, Mailbox, Membership
from reports.tenancy import organizations, tokens
from reports.tenancy.access import has_role, organization_for
from reports.views.forms import MailboxForm, OrganizationSettingsForm, TokenForm

ADMIN = Membership.Role.ADMIN
OWNER = Membership.Role.OWNER

AUDIT_AREAS = [
    ("domain", "Domains"),
    ("member", "Members"),
    ("mailbox", "Mailboxes"),
    ("token", "API tokens"),
    ("policy", "Policy"),
    ("alerts", "Alerts"),
    ("organization", "Organization settings"),
]


@login_required
def settings_view(request, slug: str):
    organization = organization_for(request, slug)
    can_manage = has_role(request.user, organization, ADMIN)
    can_rename = has_role(request.user, organization, OWNER)
    form = None
    if request.method == "POST":
        organization = organization_for(request, slug, ADMIN)
        form = OrganizationSettingsForm(request.POST, instance=organization, can_rename=can_rename)
        if form.is_valid():
            changed = organizations.change_settings(organization, form.save, request)
            messages.success(request, "Settings saved." if changed else "Nothing changed.")
            return redirect("org-settings", slug=organization.slug)
        # The form changed the instance while validating: show the stored name in the header.
        organization.refresh_from_db()
    elif can_manage:
        form = OrganizationSettingsForm(instance=organization, can_rename=can_rename)
    context = {"organization": organization, "form": form, "can_manage": can_manage}
    return render(request, "org/settings.html", context)


@login_required
def mailbox_list(request, slug: str):
    organization = organization_for(request, slug)
    context = {
        "organization": organization,
        "mailboxes": Mailbox.objects.filter(organization=organization).order_by("name"),
        "can_manage": has_role(request.user, organization, ADMIN),
    }
    return render(request, "org/mailboxes.html", context)


@login_required
def mailbox_add(request, slug: str):
    organization = organization_for(request, slug, ADMIN)
    form = MailboxForm(request.POST or None, organization=organization)
    if request.method == "POST" and form.is_valid():
        mailbox = mailboxes.add(form.save, request)
        if form.needs_connect:
            messages.success(request, f"Mailbox {mailbox.name} added: now {_connect_label(mailbox)} to grant access.")
        else:
            messages.success(request, f"Mailbox {mailbox.name} added: test the connection before its first poll.")
        return redirect("org-mailbox", slug=organization.slug, mailbox_id=mailbox.pk)
    return render(request, "org/mailbox_form.html", {"organization": organization, "form": form, "mailbox": None})


def _connect_label(mailbox: Mailbox) -> str:
    return "Connect with Google" if mailbox.oauth_provider == Mailbox.OAuthProvider.GOOGLE else "Connect with Microsoft"


def _connect_url(organization, mailbox: Mailbox) -> str:
    """Where "Connect with ..." starts the authorization-code flow ('' for a mailbox without delegated access)."""
    if mailbox.auth != Mailbox.Auth.REFRESH_TOKEN:
        return ""
    return reverse("org-mailbox-oauth-connect", kwargs={"slug": organization.slug, "mailbox_id": mailbox.pk})


def _mailbox(request, slug: str, mailbox_id: int):
    organization = organization_for(request, slug, ADMIN)
    return organization, get_object_or_404(Mailbox, organization=organization, pk=mailbox_id)


@login_required
def mailbox_edit(request, slug: str, mailbox_id: int):
    organization, mailbox = _mailbox(request, slug, mailbox_id)
    form = MailboxForm(request.POST or None, instance=mailbox, organization=organization)
    if request.method == "POST" and form.is_valid():
        secrets_typed = any(form.cleaned_data.get(name) for name in ("password", "client_secret", "private_key"))
        changed = mailboxes.change(mailbox, form.save, request, password_changed=secrets_typed)
        messages.success(request, f"Mailbox {mailbox.name} saved." if changed else "Nothing changed.")
        if form.needs_connect:
            label = _connect_label(mailbox)
            messages.warning(request, f"{mailbox.name} has no refresh token: {label} to grant access.")
        return redirect("org-mailbox", slug=organization.slug, mailbox_id=mailbox.pk)
    if request.method == "POST":
        mailbox.refresh_from_db()  # validation changed the instance: show what is stored
    context = {
        "organization": organization,
        "form": form,
        "mailbox": mailbox,
        "connect_url": _connect_url(organization, mailbox),
        "connect_label": _connect_label(mailbox),
    }
    return render(request, "org/mailbox_form.html", context)


@login_required
@require_POST
def mailbox_delete(request, slug: str, mailbox_id: int):
    organization, mailbox = _mailbox(request, slug, mailbox_id)
    mailboxes.delete(mailbox, request)
    messages.success(request, f"Mailbox {mailbox.name} deleted; the reports it brought in are kept.")
    return redirect("org-mailboxes", slug=organization.slug)


@login_required
@require_POST
def mailbox_test(request, slug: str, mailbox_id: int):
    organization, mailbox = _mailbox(request, slug, mailbox_id)
    ok, text = mailboxes.check_connection(mailbox)
    if ok:
        messages.success(request, text)
    else:
        messages.error(request, f"Connection test of {mailbox.name} failed: {text}")
    return redirect("org-mailbox", slug=organization.slug, mailbox_id=mailbox.pk)


def _tokens_page(request, organization, form, secret: str = "", created: ApiToken | None = None):
    context = {
        "organization": organization,
        "tokens": ApiToken.objects.filter(organization=organization).order_by("revoked_at", "-created_at"),
        "form": form,
        "secret": secret,
        "created": created,
    }
    response = render(request, "org/tokens.html", context)
    if secret:
        response["Cache-Control"] = "no-store"  # the one page with the secret must not be kept anywhere
    return response


@login_required
def token_list(request, slug: str):
    organization = organization_for(request, slug, ADMIN)
    return _tokens_page(request, organization, TokenForm())


@login_required
@require_POST
def token_create(request, slug: str):
    organization = organization_for(request, slug, ADMIN)
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _tokens_page(request, organization, form)
    token, secret = tokens.create(organization, form.cleaned_data["name"], request)
    # Rendered, not redirected: the secret exists only in this response.
    return _tokens_page(request, organization, TokenForm(), secret=secret, created=token)


@login_required
@require_POST
def token_revoke(request, slug: str, token_id: int):
    organization = organization_for(request, slug, ADMIN)
    token = get_object_or_404(ApiToken, organization=organization, pk=token_id)
    if tokens.revoke(token, request):
        messages.success(request, f"Token {token.name} revoked: it no longer works.")
    else:
        messages.error(request, f"Token {token.name} was already revoked.")
    return redirect("org-tokens", slug=organization.slug)


def _shown(value) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


MISSING = object()


def changes(entry: AuditEntry) -> list[dict]:
    """The entry's values as key: before -> after rows, each side empty where it has no such key."""
    before = entry.before if isinstance(entry.before, dict) else {"value": entry.before}
    after = entry.after if isinstance(entry.after, dict) else {"value": entry.after}
    rows = []
    for key in dict.fromkeys([*before, *after]):
        old, new = before.get(key, MISSING), after.get(key, MISSING)
        rows.append(
            {
                "key": key,
                "before": None if old is MISSING else _shown(old),
                "after": None if new is MISSING else _shown(new),
            }
        )
    return rows


@login_required
def audit_log(request, slug: str):
    organization = organization_for(request, slug, ADMIN)
    entries = AuditEntry.objects.filter(organization=organization)
    area = request.GET.get("area", "")
    if area in dict(AUDIT_AREAS):
        entries = entries.filter(action__startswith=f"{area}.")
    else:
        area = ""
    page = Paginator(entries, PAGE_SIZE).get_page(request.GET.get("page"))
    for entry in page.object_list:
        entry.changes = changes(entry)
    context = {"organization": organization, "page": page, "areas": AUDIT_AREAS, "area": area}
    return render(request, "org/audit.html", context)


urlpatterns = [
    path("orgs/<slug:slug>/settings/", settings_view, name="org-settings"),
    path("orgs/<slug:slug>/mailboxes/", mailbox_list, name="org-mailboxes"),
    path("orgs/<slug:slug>/mailboxes/add/", mailbox_add, name="org-mailbox-add"),
    path("orgs/<slug:slug>/mailboxes/<int:mailbox_id>/", mailbox_edit, name="org-mailbox"),
    path("orgs/<slug:slug>/mailboxes/<int:mailbox_id>/delete/", mailbox_delete, name="org-mailbox-delete"),
    path("orgs/<slug:slug>/mailboxes/<int:mailbox_id>/test/", mailbox_test, name="org-mailbox-test"),
    path("orgs/<slug:slug>/tokens/", token_list, name="org-tokens"),
    path("orgs/<slug:slug>/tokens/create/", token_create, name="org-token-create"),
    path("orgs/<slug:slug>/tokens/<int:token_id>/revoke/", token_revoke, name="org-token-revoke"),
    path("orgs/<slug:slug>/audit/", audit_log, name="org-audit"),
]
