"""Every page and endpoint: each views module keeps its own URL patterns beside its views."""

from reports.views import (
    account,
    alerts,
    api,
    dashboard,
    domains,
    exports,
    intake,
    inventory,
    members,
    ops,
    organizations,
    orgsettings,
    reports,
    rollout,
    security,
)

urlpatterns = [
    *dashboard.urlpatterns,
    *inventory.urlpatterns,
    *rollout.urlpatterns,
    *exports.urlpatterns,
    *reports.urlpatterns,
    *account.urlpatterns,
    *alerts.urlpatterns,
    *intake.urlpatterns,
    *api.urlpatterns,
    *ops.urlpatterns,
    *organizations.urlpatterns,
    *members.urlpatterns,
    *domains.urlpatterns,
    *orgsettings.urlpatterns,
    *security.urlpatterns,
]
