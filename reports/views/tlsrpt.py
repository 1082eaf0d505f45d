"""The HTTPS endpoint reporters POST SMTP TLS reports to (the https: address in a _smtp._tls record)."""

from django.conf import settings
from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from reports.intake import tlspost
from reports.tenancy import ratelimit


@csrf_exempt
def receive(request):
    """RFC 8460 section 3: a POST of application/tlsrpt+gzip or +json; 2xx means delivered, so a
    reporter retries on anything else."""
    if request.method != "POST":
        response = JsonResponse({"error": "POST a TLS report (application/tlsrpt+gzip or +json)"}, status=405)
        response["Allow"] = "POST"
        return response
    client = ratelimit.client_address(request)
    if wait := ratelimit.hit("tlsrpt", f"address:{client}", settings.TLSRPT_RATE_LIMIT, 60):
        response = JsonResponse({"error": f"too many reports from {client}; try again in {wait}s"}, status=429)
        response["Retry-After"] = str(wait)
        return response
    content_type = request.content_type.lower()
    if content_type not in tlspost.CONTENT_TYPES:
        return JsonResponse({"error": f"Content-Type must be one of {', '.join(tlspost.CONTENT_TYPES)}"}, status=415)
    cap = settings.TLSRPT_MAX_BYTES
    if int(request.headers.get("Content-Length") or 0) > cap:
        return JsonResponse({"error": f"body is larger than the {cap} byte cap"}, status=413)
    data = request.read(cap + 1)
    if len(data) > cap:
        return JsonResponse({"error": f"body is larger than the {cap} byte cap"}, status=413)
    answer = tlspost.accept(data, client)
    return JsonResponse(answer.body, status=answer.status)


urlpatterns = [
    path("tlsrpt/", receive, name="tlsrpt-receive"),
]
