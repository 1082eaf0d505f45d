from django.contrib import admin, messages

from .ingest import process_intake
from .models import Domain, Intake, Membership, Organization, Report


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
