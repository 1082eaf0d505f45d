from django.urls import path

from .views import account, api, dashboard, exports, intake, reports

urlpatterns = [
    path("", dashboard.home, name="home"),
    path("domains/<str:name>/", dashboard.domain_overview, name="domain"),
    path("domains/<str:name>/sources/", dashboard.domain_sources, name="domain-sources"),
    path("domains/<str:name>/sources/<str:ip>/", dashboard.source, name="source"),
    path("domains/<str:name>/senders/", dashboard.domain_senders, name="domain-senders"),
    path("domains/<str:name>/senders/<int:sender_id>/", dashboard.sender, name="sender"),
    path("domains/<str:name>/reporters/", dashboard.domain_reporters, name="domain-reporters"),
    path("domains/<str:name>/dkim/", dashboard.domain_dkim, name="domain-dkim"),
    path("domains/<str:name>/sources.csv", exports.sources_csv, name="export-sources"),
    path("domains/<str:name>/senders.csv", exports.senders_csv, name="export-senders"),
    path("domains/<str:name>/reporters.csv", exports.reporters_csv, name="export-reporters"),
    path("domains/<str:name>/dkim.csv", exports.dkim_csv, name="export-dkim"),
    path("reports/", reports.report_list, name="report-list"),
    path("reports/<int:report_id>/", reports.report_detail, name="report"),
    path("reports/<int:report_id>/report.xml", reports.report_raw, name="report-raw"),
    path("reports/<int:report_id>/records.csv", exports.report_records_csv, name="export-report-records"),
    path("account/", account.account, name="account"),
    path("upload/", intake.upload, name="upload"),
    path("ingestion/", intake.ingestion, name="ingestion"),
    path("ingestion/<int:intake_id>/replay/", intake.replay, name="replay"),
    path("api/v1/intake", intake.api_intake, name="api-intake"),
    path("api/v1/domains", api.domains, name="api-domains"),
    path("api/v1/domains/<str:name>/daily", api.daily, name="api-daily"),
    path("api/v1/domains/<str:name>/sources", api.sources, name="api-sources"),
    path("api/v1/domains/<str:name>/senders", api.senders, name="api-senders"),
    path("api/v1/domains/<str:name>/reporters", api.reporters, name="api-reporters"),
    path("api/v1/reports/<int:report_id>", api.report, name="api-report"),
]
