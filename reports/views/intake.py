"""The other ways in (web upload, HTTP API) and the ingestion status page."""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import Http404, HttpResponse, HttpResponseGone, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from reports.enrichment.ip_lookup import open_asn_database
from reports.intake import pipeline
from reports.intake.pipeline import ingest_stream
from reports.lib.parsing import ReportError
from reports.lib.parsing.archive import CappedReader
from reports.models import ApiToken, Intake, Mailbox, Membership, Organization, SourceIP
from reports.tenancy import ratelimit
from reports.views.forms import UploadForm


@login_required
def upload(request):
    cap = settings.DMARC_LIMITS["max_message_bytes"]
    results = []
    if request.method == "POST":
        wait = ratelimit.hit("upload", f"user:{request.user.pk}", settings.UPLOAD_RATE_LIMIT, 60)
        if wait:
            return _too_many(wait, f"Too many uploads: try again in {wait} seconds.\n", json=False)
        form = UploadForm(request.POST, request.FILES, user=request.user, max_bytes=cap)
        if form.is_valid():
            for upload in form.cleaned_data["files"]:
                result = ingest_stream(
                    upload,
                    source=Intake.Channel.UPLOAD,
                    name=upload.name,
                    organization=form.cleaned_data["organization"],
                )
                results.append((upload.name, result))
    else:
        form = UploadForm(user=request.user, max_bytes=cap)
    if not form.fields["organization"].queryset.exists():
        raise Http404("no organization where you may upload")
    return render(request, "reports/upload.html", {"form": form, "results": results})


@csrf_exempt
def api_intake(request):
    """POST a raw report or report email with ``Authorization: Bearer <token>``."""
    if request.method != "POST":
        return JsonResponse({"error": "POST the report bytes"}, status=405)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    api_token = ApiToken.authenticate(token.strip()) if scheme.lower() == "bearer" and token else None
    # Counted per token, or per address for callers without a valid one (guessers included).
    caller = f"token:{api_token.pk}" if api_token else f"address:{ratelimit.client_address(request)}"
    if wait := ratelimit.hit("api", caller, settings.API_RATE_LIMIT, 60):
        return _too_many(wait, f"more than {settings.API_RATE_LIMIT} requests a minute; try again in {wait}s")
    if api_token is None:
        return JsonResponse({"error": "missing, unknown or revoked API token"}, status=401)
    cap = settings.DMARC_LIMITS["max_message_bytes"]
    if int(request.headers.get("Content-Length") or 0) > cap:
        return JsonResponse({"error": f"body is larger than the {cap} byte cap"}, status=413)
    name = request.GET.get("name", "")[:200] or "api upload"
    try:
        result = ingest_stream(
            CappedReader(request, cap, "request body"),
            source=Intake.Channel.API,
            name=name,
            organization=api_token.organization,
        )
    except ReportError as exc:
        return JsonResponse({"error": exc.reason}, status=413)
    body = {
        "intake": result.intake.pk,
        "status": result.intake.status,
        "reports": [outcome.as_dict() for outcome in result.outcomes],
    }
    return JsonResponse(body, status=422 if result.intake.status == Intake.Status.REFUSED else 201)


def _too_many(wait: int, message: str, json: bool = True):
    if json:
        response = JsonResponse({"error": message}, status=429)
    else:
        response = HttpResponse(message, status=429, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(wait)
    return response


@login_required
def ingestion(request):
    """Per mailbox: last poll and error; per status: counts; recent refusals with their reasons."""
    intakes = Intake.objects.for_user(request.user)
    since = timezone.now() - timedelta(days=7)
    counts = dict(intakes.filter(received_at__gte=since).values_list("status").annotate(n=Count("pk")))
    context = {
        "mailboxes": Mailbox.objects.for_user(request.user).select_related("organization").order_by("name"),
        "counts": [(label, counts.get(value, 0)) for value, label in Intake.Status.choices],
        "problems": intakes.filter(status__in=["refused", "partial", "failed"]).select_related("mailbox")[:50],
        "can_replay": Organization.objects.for_user(request.user, Membership.MANAGERS).exists(),
        "networks": networks_status(),
        "pending_ips": SourceIP.objects.filter(looked_up_at=None).count(),
    }
    return render(request, "reports/ingestion.html", context)


def networks_status() -> str:
    database = open_asn_database()
    if database is None:
        return "no ASN database installed: networks and countries are unknown (run manage.py update_asn_db)"
    with database:
        return f"ASN database with {database.ranges:,} ranges, built {database.built_at:%Y-%m-%d %H:%M} UTC"


@login_required
@require_POST
def replay(request, intake_id: int):
    intake = get_object_or_404(Intake.objects.for_user(request.user), pk=intake_id)
    managed = Organization.objects.for_user(request.user, Membership.MANAGERS)
    if not (request.user.is_superuser or managed.filter(pk=intake.organization_id).exists()):
        raise Http404("no such input")
    try:
        pipeline.replay(intake, request)
    except pipeline.RawPurged:
        return HttpResponseGone(
            f"Input #{intake.pk} cannot be replayed: its raw bytes were removed on {intake.raw_purged_at:%Y-%m-%d} "
            "by the organization's retention of raw inputs. The reports stored from it are kept.\n",
            content_type="text/plain; charset=utf-8",
        )
    return redirect("ingestion")


urlpatterns = [
    path("upload/", upload, name="upload"),
    path("ingestion/", ingestion, name="ingestion"),
    path("ingestion/<int:intake_id>/replay/", replay, name="replay"),
    path("api/v1/intake", api_intake, name="api-intake"),
]
