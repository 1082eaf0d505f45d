"""The Django admin: the operators' tool for every organization, for superusers.

Raw data (reports, records, the intake ledger, the audit log, alert emails) is read-only
here: it is what the dashboard, the rollups and the audit trail are computed from, and an
edit in a form would silently make them disagree. The daily rollups and per-source windows
are not registered at all: they are derived, and the Domain action "rebuild rollups"
recomputes them from the reports.

Every change made here to an organization's data (a form saved, an object deleted, an
action run) is written to the audit log as ``admin.<what>``, so members see it in their
organization's log. Secrets (mailbox passwords, token digests, TOTP secrets) are never shown.
"""

import ipaddress

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename
from django.forms.models import BaseInlineFormSet
from django.urls import reverse
from django.utils.html import format_html

from reports.alerts import triage
from reports.enrichment import ip_lookup
from reports.intake import claims, oauth, pipeline, rollups
from reports.intake.imap import plain_refusal, poll
from reports.models import (
    AlertEmail,
    AlertEvent,
    AlertMute,
    AlertSubscription,
    ApiToken,
    AuditEntry,
    Domain,
    DomainSender,
    Intake,
    Invitation,
    Mailbox,
    Membership,
    Organization,
    PolicyEvent,
    PolicyPlan,
    Profile,
    Record,
    Report,
    Sender,
    SourceIP,
    TotpDevice,
)
from reports.tasks import schedule_window_refresh
from reports.tenancy import audit, members, tokens
from reports.tenancy.secrets import encrypt

RECORDS_SHOWN = 50  # a report can hold a million records: the admin shows the first ones, the report page all


def organization_of(obj) -> Organization | None:
    """The organization whose audit log should show a change to ``obj`` (None: no tenant's)."""
    if isinstance(obj, Organization):
        return obj
    if getattr(obj, "organization_id", None):
        return obj.organization
    domain = getattr(obj, "domain", None)
    if isinstance(domain, Domain):
        return domain.organization
    return None


def describe(obj) -> str:
    return f"{obj._meta.verbose_name} {obj}"


class AuditedAdmin(admin.ModelAdmin):
    """Forms saved and objects deleted here are logged to the organization's audit log too:
    Django's own LogEntry is visible to operators only, members must see what was done to them."""

    audit_deleted = "admin.deleted"

    def has_operate_permission(self, request) -> bool:
        """For actions on read-only models: the model's change permission as granted, not as the
        admin withholds it from the forms."""
        codename = get_permission_codename("change", self.opts)
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    def log_addition(self, request, obj, message):
        audit.record(request, organization_of(obj), "admin.added", describe(obj))
        return super().log_addition(request, obj, message)

    def log_change(self, request, obj, message):
        audit.record(request, organization_of(obj), "admin.changed", describe(obj), after={"changes": message})
        return super().log_change(request, obj, message)

    def log_deletions(self, request, queryset):
        for obj in queryset:
            audit.record(request, organization_of(obj), self.audit_deleted, describe(obj))
        return super().log_deletions(request, queryset)


class ReadOnlyAdmin(AuditedAdmin):
    """Shown, never added, edited or deleted here."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# Organizations and members


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0
    fields = ["name", "alert_min_messages", "alerts_since"]
    show_change_link = True


class InvitationInline(ReadOnlyInline):
    """Invitations are sent (with their signed link) from the members page; here they are seen and revoked."""

    model = Invitation
    fields = ["email", "role", "invited_by", "created_at", "accepted_at", "revoked_at"]
    readonly_fields = fields


@admin.register(Organization)
class OrganizationAdmin(AuditedAdmin):
    list_display = [
        "name", "slug", "unverified_reports", "raw_retention_days", "record_retention_days", "rollup_daily_days",
        "rollup_monthly_days", "created_at",
    ]  # fmt: skip
    list_filter = ["unverified_reports"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    date_hierarchy = "created_at"
    inlines = [DomainInline, MembershipInline, InvitationInline]

    def save_formset(self, request, form, formset, change):
        super().save_formset(request, form, formset, change)
        # A domain added here must pick up its earlier reports as one added on its own page does.
        if formset.model is Domain:
            for domain in formset.new_objects:
                if claimed := claims.claim_reports(domain):
                    self.message_user(request, f"{claimed} earlier reports for {domain.name} are now attached to it.")


@admin.register(Membership)
class MembershipAdmin(AuditedAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", "organization"]
    search_fields = ["user__username", "user__email", "organization__name"]
    list_select_related = ["user", "organization"]
    autocomplete_fields = ["user", "organization"]


@admin.register(Invitation)
class InvitationAdmin(AuditedAdmin):
    """Invitations are created on the members page, which emails the signed link; an
    invitation made here would have no link, so the admin only shows and revokes them."""

    list_display = ["email", "organization", "role", "invited_by", "created_at", "accepted_at", "revoked_at"]
    list_filter = ["role", "organization"]
    search_fields = ["email", "organization__name"]
    list_select_related = ["organization", "invited_by"]
    date_hierarchy = "created_at"
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Revoke the selected invitations", permissions=["operate"])
    def revoke(self, request, queryset):
        revoked = sum(
            members.revoke_invitation(invitation, request, "admin.revoke-invitation")
            for invitation in queryset.filter(accepted_at=None, revoked_at=None).select_related("organization")
        )
        self.message_user(request, f"{revoked} invitations revoked (accepted or already revoked ones are left)")


@admin.register(TotpDevice)
class TotpDeviceAdmin(AuditedAdmin):
    """Only whose it is and whether it is confirmed: the secret stays out of every page. Deleting
    a device resets a lost second factor; the user enrols a new one at the next login."""

    fields = ["user", "confirmed_at", "created_at"]
    readonly_fields = fields
    list_display = ["user", "confirmed_at", "created_at"]
    search_fields = ["user__username", "user__email"]
    list_select_related = ["user"]
    audit_deleted = "admin.reset-totp"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Profile)
class ProfileAdmin(AuditedAdmin):
    list_display = ["user", "time_zone"]
    search_fields = ["user__username", "time_zone"]
    list_select_related = ["user"]
    autocomplete_fields = ["user"]


# Domains, senders and policy


@admin.register(Domain)
class DomainAdmin(AuditedAdmin):
    list_display = ["name", "organization", "alert_min_messages", "alerts_since", "created_at"]
    search_fields = ["name", "organization__name"]
    list_filter = ["organization"]
    list_select_related = ["organization"]
    date_hierarchy = "created_at"
    actions = ["claim_earlier_reports", "rebuild_rollups"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        claimed = claims.claim_reports(obj)
        if claimed:
            self.message_user(request, f"{claimed} earlier reports for {obj.name} are now attached to it.")

    @admin.action(description="Claim earlier reports for the selected domains", permissions=["change"])
    def claim_earlier_reports(self, request, queryset):
        for domain in queryset.select_related("organization"):
            claimed = claims.claim_reports(domain, request, "admin.claim-reports")
            self.message_user(request, f"{domain.name}: {claimed} earlier reports attached")

    @admin.action(description="Rebuild the daily rollups of the selected domains", permissions=["change"])
    def rebuild_rollups(self, request, queryset):
        for domain in queryset.select_related("organization"):
            count = rollups.rebuild(domain, request, "admin.rebuild-rollups")
            self.message_user(request, f"{domain.name}: rollups rebuilt from {count} reports")
        # The rebuild dropped the per-source windows: pages read the daily rows until they are refreshed.
        schedule_window_refresh()


class SenderForm(forms.ModelForm):
    class Meta:
        model = Sender
        fields = [
            "organization", "slug", "name", "category", "ptr_domains", "dkim_domains", "spf_includes", "asns",
            "networks",
        ]  # fmt: skip

    def clean(self):
        cleaned = super().clean()
        for network in cleaned.get("networks") or []:
            try:
                ipaddress.ip_network(str(network), strict=False)
            except ValueError:
                raise forms.ValidationError(f"{network!r} is not a network such as 203.0.113.0/24") from None
        return cleaned


@admin.register(Sender)
class SenderAdmin(AuditedAdmin):
    """Catalog senders (no organization) come from reports/enrichment/senders.toml; organizations add their own."""

    form = SenderForm
    list_display = ["name", "slug", "category", "organization"]
    list_filter = ["category", ("organization", admin.EmptyFieldListFilter)]
    search_fields = ["name", "slug"]
    list_select_related = ["organization"]


@admin.register(DomainSender)
class DomainSenderAdmin(AuditedAdmin):
    list_display = ["domain", "sender", "authorised", "note", "updated_at"]
    list_filter = ["authorised", "domain"]
    search_fields = ["domain__name", "sender__name", "note"]
    list_select_related = ["domain", "sender"]
    autocomplete_fields = ["domain", "sender"]


@admin.register(SourceIP)
class SourceIPAdmin(AuditedAdmin):
    list_display = ["ip", "ptr", "forward_confirmed", "sender", "asn", "as_name", "country", "looked_up_at"]
    list_filter = ["rdns_status", "forward_confirmed", "country"]
    search_fields = ["ip", "ptr", "as_name"]
    list_select_related = ["sender"]
    show_full_result_count = False
    actions = ["look_up_again"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Look the selected IPs up again", permissions=["operate"])
    def look_up_again(self, request, queryset):
        # The selected rows themselves: the enrichment queue would take whichever rows are due first.
        result = ip_lookup.look_up(list(queryset[:500]), seconds=60.0)
        self.message_user(request, result.summary())


@admin.register(PolicyPlan)
class PolicyPlanAdmin(AuditedAdmin):
    """Stages move on the policy page, which checks readiness and records the event; here only
    the plan's settings are corrected."""

    list_display = ["domain", "stage", "stage_started_at", "parked", "mailing_lists", "computed_at", "dns_checked_at"]
    list_filter = ["stage", "parked"]
    search_fields = ["domain__name"]
    list_select_related = ["domain"]
    readonly_fields = [
        "domain", "stage", "stage_started_at", "rollback", "readiness", "computed_at", "dns_record", "dns_checked_at",
        "health",
    ]  # fmt: skip

    def has_add_permission(self, request):
        return False


@admin.register(PolicyEvent)
class PolicyEventAdmin(AuditedAdmin):
    """The plan's history: read-only (deleted only with its domain)."""

    list_display = ["at", "domain", "kind", "from_stage", "to_stage", "user"]
    list_filter = ["kind"]
    search_fields = ["domain__name", "note"]
    list_select_related = ["domain", "user"]
    date_hierarchy = "at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


# Alerts


@admin.register(AlertEvent)
class AlertEventAdmin(AuditedAdmin):
    list_display = ["created_at", "title", "organization", "domain", "kind", "state"]
    list_filter = ["state", "kind"]
    search_fields = ["title", "key", "domain__name", "organization__name"]
    list_select_related = ["organization", "domain"]
    date_hierarchy = "created_at"
    actions = ["acknowledge"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Acknowledge the selected events", permissions=["operate"])
    def acknowledge(self, request, queryset):
        acknowledged = sum(
            triage.acknowledge(event, request, "admin.acknowledge")
            for event in queryset.filter(state=AlertEvent.State.OPEN).select_related("organization")
        )
        self.message_user(request, f"{acknowledged} events acknowledged (only open ones are)")


@admin.register(AlertEmail)
class AlertEmailAdmin(AuditedAdmin):
    """What was sent to whom: read-only (deleted only with its user)."""

    list_display = ["created_at", "user", "kind", "status", "attempts", "next_attempt_at", "sent_at"]
    list_filter = ["status", "kind"]
    search_fields = ["user__username", "user__email", "key"]
    list_select_related = ["user"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(AlertMute)
class AlertMuteAdmin(AuditedAdmin):
    list_display = ["domain", "key", "until", "user", "created_at"]
    search_fields = ["domain__name", "key"]
    list_select_related = ["domain", "user"]
    autocomplete_fields = ["domain", "user"]


@admin.register(AlertSubscription)
class AlertSubscriptionAdmin(AuditedAdmin):
    list_display = ["user", "organization", "mode"]
    list_filter = ["mode", "organization"]
    search_fields = ["user__username", "user__email", "organization__name"]
    list_select_related = ["user", "organization"]
    autocomplete_fields = ["user", "organization", "domains"]


# Intake: the ledger, mailboxes and tokens


@admin.register(Intake)
class IntakeAdmin(ReadOnlyAdmin):
    """The ledger: read-only, with a replay action for inputs refused before a fix. Not deleted
    here either: it is the record of what was received, and retention purges its raw bytes."""

    list_display = [
        "received_at", "source", "name", "organization", "status", "reports_stored", "reports_duplicate",
        "parts_refused",
    ]  # fmt: skip
    list_filter = ["status", "source", "kind"]
    # sha256 exactly: a substring search of every digest would read the whole ledger.
    search_fields = ["name", "sha256__exact"]
    list_select_related = ["organization", "mailbox"]
    date_hierarchy = "received_at"
    show_full_result_count = False
    readonly_fields = ["reports_link"]
    actions = ["replay"]

    @admin.display(description="reports")
    def reports_link(self, obj):
        url = reverse("admin:reports_report_changelist") + f"?intake={obj.pk}"
        return format_html('<a href="{}">{} stored, {} duplicate</a>', url, obj.reports_stored, obj.reports_duplicate)

    @admin.action(description="Replay the selected inputs", permissions=["operate"])
    def replay(self, request, queryset):
        for intake in queryset.select_related("organization"):
            # Stored inputs have nothing left to store (a replay would only recount them as duplicates),
            # and a purged one would be marked failed for want of its bytes.
            if intake.status in (Intake.Status.STORED, Intake.Status.DUPLICATE):
                self.message_user(request, f"{intake.name}: already stored, not replayed", messages.INFO)
                continue
            try:
                result = pipeline.replay(intake, request, "admin.replay")
            except pipeline.RawPurged:
                self.message_user(
                    request, f"{intake.name}: its raw bytes were purged, it cannot be replayed", messages.WARNING
                )
                continue
            level = messages.SUCCESS if intake.status in ("stored", "duplicate") else messages.WARNING
            summary = ", ".join(f"{o.status}" + (f": {o.reason}" if o.reason else "") for o in result.outcomes)
            self.message_user(request, f"{intake.name}: {summary}", level)


class MailboxForm(forms.ModelForm):
    """The password and the OAuth2 secrets are write-only: typed here, stored encrypted, never shown back.
    An OAuth2 mailbox (``auth``) needs no password; delegated access gets its refresh token from "Connect"
    on the organization's mailbox page (or ``manage.py mailbox``)."""

    password = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="leave empty to keep the stored password; or use an environment variable below",
    )
    client_secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="OAuth2 client secret; stored encrypted; leave empty to keep the stored one",
    )
    oauth_token_url = forms.URLField(
        required=False, max_length=500, assume_scheme="https", help_text="token endpoint; empty for the provider's"
    )
    private_key = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="OAuth2 service account private key (PEM); stored encrypted; leave empty to keep the stored one",
    )

    class Meta:
        model = Mailbox
        fields = [
            "organization", "name", "host", "port", "security", "username", "password", "password_env", "ca_file",
            "folder", "processed_folder", "invalid_folder", "poll_interval", "enabled", "use_idle", "auth",
            "oauth_provider", "oauth_tenant", "oauth_token_url", "oauth_client_id", "client_secret", "private_key",
            "oauth_scope",
        ]  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["auth"].required = False  # left out: a password, as before OAuth2

    def clean(self):
        cleaned = super().clean()
        if refusal := plain_refusal(cleaned.get("security", ""), cleaned.get("host", "")):
            raise forms.ValidationError(f"{refusal}; use TLS or STARTTLS")
        auth = cleaned["auth"] = cleaned.get("auth") or Mailbox.Auth.PASSWORD
        if auth == Mailbox.Auth.PASSWORD:
            has_secret = cleaned.get("password") or cleaned.get("password_env") or self.instance.password_encrypted
            if not has_secret:
                raise forms.ValidationError("give a password or the environment variable that holds it")
            return cleaned
        if not cleaned.get("oauth_client_id"):
            self.add_error("oauth_client_id", "an OAuth2 mailbox needs its client id (or service account e-mail)")
        if (url := cleaned.get("oauth_token_url")) and (refusal := oauth.url_refusal(url)):
            self.add_error("oauth_token_url", refusal)
        if not cleaned.get("oauth_provider"):
            self.add_error("oauth_provider", "choose the provider (Other needs a token URL)")
        elif cleaned["oauth_provider"] == Mailbox.OAuthProvider.CUSTOM and not cleaned.get("oauth_token_url"):
            self.add_error("oauth_token_url", "a mailbox of another provider needs its token URL")
        if auth == Mailbox.Auth.CLIENT_CREDENTIALS and not (
            cleaned.get("client_secret") or self.instance.oauth_client_secret_encrypted
        ):
            self.add_error("client_secret", "app-only access needs the client secret")
        if auth == Mailbox.Auth.JWT_BEARER and not (
            cleaned.get("private_key") or self.instance.oauth_private_key_encrypted
        ):
            self.add_error("private_key", "a service account needs its private key")
        return cleaned

    def save(self, commit=True):
        mailbox = super().save(commit=False)
        if self.cleaned_data.get("password"):
            mailbox.password_encrypted = encrypt(self.cleaned_data["password"])
        if mailbox.uses_oauth:
            oauth.set_secrets(
                mailbox,
                client_secret=self.cleaned_data.get("client_secret") or None,
                private_key=self.cleaned_data.get("private_key") or None,
            )
        if commit:
            mailbox.save()
        return mailbox


@admin.register(Mailbox)
class MailboxAdmin(AuditedAdmin):
    form = MailboxForm
    list_display = [
        "name",
        "organization",
        "host",
        "username",
        "enabled",
        "last_poll_at",
        "last_success_at",
        "failures",
    ]
    list_filter = ["enabled", "organization"]
    search_fields = ["name", "host", "username"]
    list_select_related = ["organization"]
    readonly_fields = ["uidvalidity", "last_poll_at", "last_success_at", "last_error", "last_error_at", "failures"]
    actions = ["poll_now"]

    @admin.action(description="Poll the selected mailboxes now", permissions=["change"])
    def poll_now(self, request, queryset):
        for mailbox in queryset.select_related("organization"):
            result = poll(mailbox)
            audit.record(request, mailbox.organization, "admin.poll-now", str(mailbox), after={"error": result.error})
            self.message_user(request, result.summary(), messages.WARNING if result.error else messages.SUCCESS)


@admin.register(ApiToken)
class ApiTokenAdmin(AuditedAdmin):
    """Tokens are created with manage.py api_token (the secret is shown once); here they are revoked."""

    list_display = ["name", "organization", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["organization"]
    search_fields = ["name", "prefix", "organization__name"]
    list_select_related = ["organization"]
    readonly_fields = ["organization", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    exclude = ["digest"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke(self, request, queryset):
        revoked = sum(
            tokens.revoke(token, request, "admin.revoke-token")
            for token in queryset.filter(revoked_at=None).select_related("organization")
        )
        self.message_user(request, f"{revoked} tokens revoked")


# Reports and records: read-only and never deleted here


class FirstRecords(BaseInlineFormSet):
    def get_queryset(self):
        if not hasattr(self, "_first"):
            self._first = super().get_queryset()[:RECORDS_SHOWN]
        return self._first


class RecordInline(ReadOnlyInline):
    model = Record
    formset = FirstRecords
    fields = ["source_ip", "count", "disposition", "dkim", "spf", "header_from", "envelope_from", "reasons"]
    readonly_fields = fields
    verbose_name_plural = f"records (the first {RECORDS_SHOWN}; the report page has them all)"


@admin.register(Report)
class ReportAdmin(ReadOnlyAdmin):
    """Read-only, and not deleted here: a report's records are already summed into its domain's
    daily rollups (which outlive them), so deleting it would leave charts counting mail that no
    report explains. Retention removes records on its own schedule and says so on the report."""

    list_display = ["policy_domain", "org_name", "report_id", "begin", "record_count", "message_count", "domain"]
    list_filter = ["format", "authenticity", "quarantined", "domain"]
    search_fields = ["policy_domain", "org_name", "report_id", "email"]
    date_hierarchy = "begin"
    list_select_related = ["domain"]
    raw_id_fields = ["intake", "domain"]
    show_full_result_count = False
    readonly_fields = ["page_link", "raw_link"]
    fields = [
        "page_link", "raw_link", "domain", "intake", "policy_domain", "org_name", "email", "extra_contact_info",
        "report_id", "begin", "end", "format", "version", "generator", "errors", "repairs", "p", "sp", "np", "pct",
        "testing", "adkim", "aspf", "fo", "discovery_method", "authenticity", "authenticity_detail", "quarantined",
        "record_count", "message_count", "pass_count", "records_purged_at", "sources_registered", "fingerprint",
        "created_at",
    ]  # fmt: skip
    inlines = [RecordInline]

    @admin.display(description="report page")
    def page_link(self, obj):
        url = reverse("report", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, url)

    @admin.display(description="raw XML")
    def raw_link(self, obj):
        url = reverse("report-raw", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, url)


@admin.register(Record)
class RecordAdmin(ReadOnlyAdmin):
    """Read-only and not deleted here, for the reason the Report admin gives."""

    list_display = ["source_ip", "count", "disposition", "dkim", "spf", "header_from", "report"]
    list_select_related = ["report"]
    raw_id_fields = ["report"]
    show_full_result_count = False
    search_fields = ["source_ip"]
    search_help_text = "an IP address, exactly"

    def get_search_results(self, request, queryset, search_term):
        # Only an exact IP: it is what the record_by_source index answers; a substring of every
        # record's address would read all of them, and a word is no address at all.
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            ip = str(ipaddress.ip_address(term))
        except ValueError:
            return queryset.none(), False
        return queryset.filter(source_ip=ip), False


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    """The audit log is evidence: nobody adds, edits or deletes entries, operators included."""

    list_display = ["at", "actor", "organization_name", "action", "target", "ip"]
    # By organization, not by action: listing the distinct actions would read the whole log.
    list_filter = ["organization"]
    search_fields = ["actor", "action", "target", "organization_name"]
    date_hierarchy = "at"
    show_full_result_count = False
