"""Every page and endpoint: each views module keeps its own URL patterns beside its views."""

from reports.views import (
    account,
    alerts,
    api,
    dashboard,
    domains,
    exports,
    intake,
    members,
    ops,
    orgsettings,
    reports,
    rollout,
    security,
)

urlpatterns = [
    *dashboard.urlpatterns,
    *rollout.urlpatterns,
    *exports.urlpatterns,
    *reports.urlpatterns,
    *account.urlpatterns,
    *alerts.urlpatterns,
    *intake.urlpatterns,
    *api.urlpatterns,
    *ops.urlpatterns,
    *members.urlpatterns,
    *domains.urlpatterns,
    *orgsettings.urlpatterns,
    *security.urlpatterns,
]
