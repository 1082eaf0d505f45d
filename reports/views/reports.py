from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render

from ..models import Domain, Intake, Report


@login_required
def home(request):
    """The list of ingested reports the user may see (the dashboard replaces it later)."""
    reports = Report.objects.for_user(request.user).select_related("domain")
    context = {
        "domains": Domain.objects.for_user(request.user).order_by("name"),
        "page": Paginator(reports, 50).get_page(request.GET.get("page")),
    }
    if request.user.is_superuser:
        context["unclaimed"] = Paginator(Report.objects.unclaimed(), 50).get_page(request.GET.get("unclaimed_page"))
        context["refused"] = Intake.objects.filter(status__in=["refused", "partial", "failed"])[:20]
    return render(request, "reports/home.html", context)
