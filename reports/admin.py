from django import forms
from django.contrib import admin, messages
from django.utils import timezone

from .ingest import process_intake
from .models import ApiToken, Domain, DomainSender, Intake, Mailbox, Membership, Organization, Report, Sender, SourceIP
from .secrets import encrypt


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [DomainInline, MembershipInline]


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):
    list_display = ["name", "organization", "created_at"]
    search_fields = ["name"]
    list_filter = ["organization"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        claimed = obj.claim_reports()
        if claimed:
            self.message_user(request, f"{claimed} earlier reports for {obj.name} are now attached to it.")


@admin.register(Intake)
class IntakeAdmin(admin.ModelAdmin):
    """The ledger: read-only, with a replay action for inputs refused before a fix."""

    list_display = ["received_at", "source", "name", "status", "reports_stored", "reports_duplicate", "parts_refused"]
    list_filter = ["status", "source"]
    search_fields = ["name", "sha256", "error"]
    actions = ["replay"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Replay the selected inputs")
    def replay(self, request, queryset):
        for intake in queryset:
            result = process_intake(intake)
            level = messages.SUCCESS if intake.status in ("stored", "duplicate") else messages.WARNING
            summary = ", ".join(f"{o.status}" + (f": {o.reason}" if o.reason else "") for o in result.outcomes)
            self.message_user(request, f"{intake.name}: {summary}", level)


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ["policy_domain", "org_name", "report_id", "begin", "record_count", "message_count", "domain"]
    list_filter = ["format", "domain"]
    search_fields = ["policy_domain", "org_name", "report_id", "email"]
    date_hierarchy = "begin"
    list_select_related = ["domain"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class MailboxForm(forms.ModelForm):
    """The password is write-only: typed here, stored encrypted, never shown back."""

    password = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="leave empty to keep the stored password; or use an environment variable below",
    )

    class Meta:
        model = Mailbox
        fields = [
            "organization", "name", "host", "port", "security", "username", "password", "password_env", "ca_file",
            "folder", "processed_folder", "invalid_folder", "poll_interval", "enabled", "use_idle",
        ]  # fmt: skip

    def clean(self):
        cleaned = super().clean()
        from .mailbox import plain_refusal

        if refusal := plain_refusal(cleaned.get("security", ""), cleaned.get("host", "")):
            raise forms.ValidationError(f"{refusal}; use TLS or STARTTLS")
        has_secret = cleaned.get("password") or cleaned.get("password_env") or self.instance.password_encrypted
        if not has_secret:
            raise forms.ValidationError("give a password or the environment variable that holds it")
        return cleaned

    def save(self, commit=True):
        mailbox = super().save(commit=False)
        if self.cleaned_data.get("password"):
            mailbox.password_encrypted = encrypt(self.cleaned_data["password"])
        if commit:
            mailbox.save()
        return mailbox


@admin.register(Mailbox)
class MailboxAdmin(admin.ModelAdmin):
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
    readonly_fields = ["uidvalidity", "last_poll_at", "last_success_at", "last_error", "last_error_at", "failures"]
    actions = ["poll_now"]

    @admin.action(description="Poll the selected mailboxes now")
    def poll_now(self, request, queryset):
        from .mailbox import poll

        for mailbox in queryset:
            result = poll(mailbox)
            self.message_user(request, result.summary(), messages.WARNING if result.error else messages.SUCCESS)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are created with manage.py api_token (the secret is shown once); here they are revoked."""

    list_display = ["name", "organization", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["organization"]
    readonly_fields = ["organization", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    exclude = ["digest"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        revoked = queryset.filter(revoked_at=None).update(revoked_at=timezone.now())
        self.message_user(request, f"{revoked} tokens revoked")


class SenderForm(forms.ModelForm):
    class Meta:
        model = Sender
        fields = [
            "organization", "slug", "name", "category", "ptr_domains", "dkim_domains", "spf_includes", "asns",
            "networks",
        ]  # fmt: skip

    def clean(self):
        cleaned = super().clean()
        import ipaddress

        for network in cleaned.get("networks") or []:
            try:
                ipaddress.ip_network(str(network), strict=False)
            except ValueError:
                raise forms.ValidationError(f"{network!r} is not a network such as 203.0.113.0/24") from None
        return cleaned


@admin.register(Sender)
class SenderAdmin(admin.ModelAdmin):
    """Catalog senders (no organization) come from reports/enrich/senders.toml; organizations add their own."""

    form = SenderForm
    list_display = ["name", "slug", "category", "organization"]
    list_filter = ["category", ("organization", admin.EmptyFieldListFilter)]
    search_fields = ["name", "slug"]


@admin.register(DomainSender)
class DomainSenderAdmin(admin.ModelAdmin):
    list_display = ["domain", "sender", "authorised", "note", "updated_at"]
    list_filter = ["authorised", "domain"]
    autocomplete_fields = ["sender"]


@admin.register(SourceIP)
class SourceIPAdmin(admin.ModelAdmin):
    list_display = ["ip", "ptr", "forward_confirmed", "sender", "asn", "as_name", "country", "looked_up_at"]
    list_filter = ["rdns_status", "forward_confirmed", "country"]
    search_fields = ["ip", "ptr", "as_name"]
    list_select_related = ["sender"]
    actions = ["look_up_again"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Look the selected IPs up again")
    def look_up_again(self, request, queryset):
        from .sources import enrich_due

        queryset.update(expires_at=None)
        self.message_user(request, enrich_due(limit=queryset.count()).summary())
