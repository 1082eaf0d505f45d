"""The alerts page: every event of the user's domains with its state; managers acknowledge."""

from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from ..models import AlertEvent, AlertMute, Domain
from ..stats import PAGE_SIZE


@login_required
def alert_list(request):
    events = (
        AlertEvent.objects.filter(domain__in=Domain.objects.for_user(request.user))
        .exclude(state=AlertEvent.State.BASELINE)
        .select_related("domain")
        .prefetch_related("emails")
    )
    if request.GET.get("state") in AlertEvent.State.values:
        events = events.filter(state=request.GET["state"])
    return render(
        request,
        "reports/alerts.html",
        {"page": Paginator(events, PAGE_SIZE).get_page(request.GET.get("page")), "states": AlertEvent.State.choices},
    )


def managed_event(request, event_id: int) -> AlertEvent:
    """An event of the user's domains that the user may act on (owners and admins), or 404."""
    event = get_object_or_404(AlertEvent.objects.filter(domain__in=Domain.objects.for_user(request.user)), pk=event_id)
    if not event.domain.managed_by(request.user):
        raise Http404("only owners and admins act on alerts")
    return event


@login_required
@require_POST
def acknowledge(request, event_id: int):
    event = managed_event(request, event_id)
    AlertEvent.objects.filter(pk=event.pk, state=AlertEvent.State.OPEN).update(state=AlertEvent.State.ACKNOWLEDGED)
    return redirect("alerts")


@login_required
@require_POST
def mute(request, event_id: int):
    """Mute the event's source (or with ``scope=domain`` its whole domain) for ``days`` days."""
    event = managed_event(request, event_id)
    days = request.POST.get("days", "7")
    days = int(days) if days.isdigit() and 0 < int(days) <= 365 else 7
    key = "" if request.POST.get("scope") == "domain" else event.key
    AlertMute.objects.create(
        domain=event.domain, key=key, until=timezone.now() + timedelta(days=days), user=request.user
    )
    AlertEvent.objects.filter(pk=event.pk, state=AlertEvent.State.OPEN).update(state=AlertEvent.State.MUTED)
    return redirect("alerts")
