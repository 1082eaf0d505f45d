"""The JSON API: the dashboard's numbers for scripts, scoped like the pages.

Authenticated by the browser session or by ``Authorization: Bearer <token>`` (an
organization's API token, which sees that organization's domains only).
"""

from functools import wraps

from django.conf import settings
from django.http import JsonResponse
from django.urls import path

from reports.dashboard import cache as generations
from reports.dashboard import stats
from reports.dashboard.stats import Filters, Period, PeriodError
from reports.models import ApiToken, Domain, Record, Report
from reports.tenancy import ratelimit

COUNTS = ("messages", "both", "dkim_only", "spf_only", "dkim_aligned", "spf_aligned", "passing", "failing")
COUNTS += ("quarantined", "rejected")
RATES = ("passing_rate", "dkim_aligned_rate", "spf_aligned_rate")


def api_view(view):
    """Resolve the caller to the domains it may read, or answer 401; parse the period (400 when bad)."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.method != "GET":
            return JsonResponse({"error": "only GET is supported"}, status=405)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        api_token = ApiToken.authenticate(token) if token else None
        # Counted per token, per user, or per address for callers with neither (guessers included).
        if api_token is not None:
            caller = f"token:{api_token.pk}"
        elif request.user.is_authenticated and not token:
            caller = f"user:{request.user.pk}"
        else:
            caller = f"address:{ratelimit.client_address(request)}"
        if wait := ratelimit.hit("api", caller, settings.API_RATE_LIMIT, 60):
            response = JsonResponse(
                {"error": f"more than {settings.API_RATE_LIMIT} requests a minute; try again in {wait}s"}, status=429
            )
            response["Retry-After"] = str(wait)
            return response
        if token and api_token is None:
            return JsonResponse({"error": "unknown or revoked API token"}, status=401)
        if api_token is not None:
            domains = Domain.objects.filter(organization=api_token.organization)
            reports = Report.objects.filter(domain__in=domains)
        elif request.user.is_authenticated:
            domains = Domain.objects.for_user(request.user)
            reports = Report.objects.for_user(request.user)
        else:
            return JsonResponse({"error": "log in or send an API token"}, status=401)
        try:
            period = Period.from_query(request.GET)
        except PeriodError as exc:
            return JsonResponse({"error": str(exc)}, status=400)
        scope = {"domains": domains, "reports": reports, "period": period, "filters": Filters.from_query(request.GET)}
        if "name" in kwargs:
            # Another organization's domain and a domain that does not exist answer alike.
            scope["domain"] = domains.filter(name=kwargs.pop("name")).first()
            if scope["domain"] is None:
                return JsonResponse({"error": "no such domain"}, status=404)
            generations.pin(scope["domain"])
        return view(request, scope, *args, **kwargs)

    return wrapper


def _numbers(row: dict) -> dict:
    return {name: row.get(name) for name in (*COUNTS, *RATES) if name in row}


def _period(scope) -> dict:
    period = scope["period"]
    return {"from": period.start.isoformat(), "to": period.end.isoformat(), "filters": scope["filters"].query()}


@api_view
def domains(request, scope):
    rows = stats.domain_rows(list(scope["domains"].order_by("name")), scope["period"])
    return JsonResponse(
        {
            **_period(scope),
            "domains": [
                {
                    "name": row["domain"].name,
                    "messages": row["messages"],
                    "passing_rate": row["passing_rate"],
                    "failing_sources": row["failing_sources"],
                    "last_received": row["last_received"],
                    "stale": row["stale"],
                    "policy_seen": row["policy"].p if row["policy"] else None,
                }
                for row in rows
            ],
        }
    )


@api_view
def daily(request, scope):
    domain = scope["domain"]
    rows = stats.daily(domain, scope["period"], scope["filters"])
    return JsonResponse({**_period(scope), "days": [{"date": row["date"], **_numbers(row)} for row in rows]})


@api_view
def sources(request, scope):
    domain = scope["domain"]
    page = stats.sources(
        domain, scope["period"], scope["filters"], request.GET.get("sort", "-messages"), request.GET.get("page", 1)
    )
    rows = []
    for row in page.object_list:
        info = row["info"]
        rows.append(
            {
                "source_ip": row["source_ip"],
                "ptr": info.ptr if info else None,
                "forward_confirmed": info.forward_confirmed if info else None,
                "sender": info.sender.name if info and info.sender else None,
                "asn": info.asn if info else None,
                "as_name": info.as_name if info else None,
                "country": info.country if info else None,
                "first_seen": row["first_day"],
                "last_seen": row["last_day"],
                **_numbers(row),
            }
        )
    return JsonResponse(
        {
            **_period(scope),
            "page": page.number,
            "pages": page.paginator.num_pages,
            "count": page.paginator.count,
            "sources": rows,
        }
    )


@api_view
def senders(request, scope):
    domain = scope["domain"]
    rows = stats.senders(domain, scope["period"], scope["filters"])
    return JsonResponse(
        {
            **_period(scope),
            "senders": [
                {"sender": row["sender"].name if row["sender"] else None, "source_ips": row["ips"], **_numbers(row)}
                for row in rows
            ],
        }
    )


@api_view
def reporters(request, scope):
    domain = scope["domain"]
    rows = stats.breakdown(domain, scope["period"], scope["filters"], "reporter")
    return JsonResponse({**_period(scope), "reporters": [{"reporter": row["key"], **_numbers(row)} for row in rows]})


@api_view
def report(request, scope, report_id: int):
    found = scope["reports"].filter(pk=report_id).first()
    if found is None:
        return JsonResponse({"error": "no such report"}, status=404)
    fields = ("org_name", "email", "report_id", "begin", "end", "policy_domain", "format", "p", "sp", "np", "pct")
    fields += ("testing", "adkim", "aspf", "fo", "authenticity", "record_count", "message_count", "pass_count")
    records = Record.objects.of_report(found).order_by("-count", "id").values(
        "source_ip", "count", "disposition", "dkim", "spf", "header_from", "envelope_from", "envelope_to",
        "reasons", "dkim_results", "spf_results",
    )  # fmt: skip
    asked = request.GET.get("page", "1")
    page = max(1, int(asked)) if asked.isdigit() and len(asked) < 10 else 1
    start = (page - 1) * stats.PAGE_SIZE
    return JsonResponse(
        {
            "report": {name: getattr(found, name) for name in fields},
            "page": page,
            "records": list(records[start : start + stats.PAGE_SIZE]),
        }
    )


urlpatterns = [
    path("api/v1/domains", domains, name="api-domains"),
    path("api/v1/domains/<str:name>/daily", daily, name="api-daily"),
    path("api/v1/domains/<str:name>/sources", sources, name="api-sources"),
    path("api/v1/domains/<str:name>/senders", senders, name="api-senders"),
    path("api/v1/domains/<str:name>/reporters", reporters, name="api-reporters"),
    path("api/v1/reports/<int:report_id>", report, name="api-report"),
]
