"""The list of reports and one report's page, with its raw XML."""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseGone, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import path

from reports.dashboard.stats import PAGE_SIZE
from reports.intake import rawxml
from reports.models import Domain, Intake, Record, Report


@login_required
def report_list(request):
    """Every ingested report the user may see, newest first; superusers also see the unclaimed."""
    reports = Report.objects.for_user(request.user).select_related("domain")
    context = {
        "domains": Domain.objects.for_user(request.user).order_by("name"),
        "page": Paginator(reports, PAGE_SIZE).get_page(request.GET.get("page")),
    }
    if request.user.is_superuser:
        context["unclaimed"] = Paginator(Report.objects.unclaimed(), PAGE_SIZE).get_page(
            request.GET.get("unclaimed_page")
        )
        context["refused"] = Intake.objects.filter(status__in=["refused", "partial", "failed"])[:20]
    return render(request, "reports/report_list.html", context)


def visible_report(request, report_id: int) -> Report:
    # Unclaimed reports belong to no organization: only an operator (superuser) may open them.
    reports = Report.objects.all() if request.user.is_superuser else Report.objects.for_user(request.user)
    return get_object_or_404(reports.select_related("domain", "intake"), pk=report_id)


@login_required
def report_detail(request, report_id: int):
    report = visible_report(request, report_id)
    records = Record.objects.of_report(report).order_by("-count", "id")
    return render(
        request,
        "reports/report.html",
        {"report": report, "page": Paginator(records, PAGE_SIZE).get_page(request.GET.get("page"))},
    )


@login_required
def report_raw(request, report_id: int):
    """The report's XML as the reporter sent it, as a download (never rendered by the browser)."""
    report = visible_report(request, report_id)
    # Gone even while another organization's input keeps the same bytes: retention removed them for this one.
    purged = report.intake.raw_purged_at if report.intake else None
    if purged is not None:
        return HttpResponseGone(
            f"The XML of this report was removed on {purged:%Y-%m-%d} by the organization's retention of raw "
            "inputs. The report's counts are kept.\n",
            content_type="text/plain; charset=utf-8",
        )
    chunks = rawxml.report_xml(report)
    if chunks is None:
        raise Http404("the raw input of this report is no longer kept")
    response = StreamingHttpResponse(chunks, content_type="application/octet-stream")
    response["Content-Disposition"] = f'attachment; filename="report-{report.pk}.xml"'
    return response


urlpatterns = [
    path("reports/", report_list, name="report-list"),
    path("reports/<int:report_id>/", report_detail, name="report"),
    path("reports/<int:report_id>/report.xml", report_raw, name="report-raw"),
]
