"""The alerts page: every event of the user's domains with its state; managers acknowledge."""

from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from ..models import AlertEvent, AlertMute, Domain, Membership, Organization
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


@login_required
@require_POST
def acknowledge(request, event_id: int):
    event = get_object_or_404(AlertEvent.objects.filter(domain__in=Domain.objects.for_user(request.user)), pk=event_id)
    managed = Organization.objects.for_user(request.user, Membership.MANAGERS).filter(pk=event.domain.organization_id)
    if not (request.user.is_superuser or managed.exists()):
        raise Http404("only owners and admins acknowledge alerts")
    AlertEvent.objects.filter(pk=event.pk, state=AlertEvent.State.OPEN).update(state=AlertEvent.State.ACKNOWLEDGED)
    return redirect("alerts")


@login_required
@require_POST
def mute(request, event_id: int):
    """Mute the event's source (or with ``scope=domain`` its whole domain) for ``days`` days."""
    event = get_object_or_404(AlertEvent.objects.filter(domain__in=Domain.objects.for_user(request.user)), pk=event_id)
    managed = Organization.objects.for_user(request.user, Membership.MANAGERS).filter(pk=event.domain.organization_id)
    if not (request.user.is_superuser or managed.exists()):
        raise Http404("only owners and admins mute alerts")
    days = request.POST.get("days", "7")
    days = int(days) if days.isdigit() and 0 < int(days) <= 365 else 7
    key = "" if request.POST.get("scope") == "domain" else event.key
    AlertMute.objects.create(
        domain=event.domain, key=key, until=timezone.now() + timedelta(days=days), user=request.user
    )
    AlertEvent.objects.filter(pk=event.pk, state=AlertEvent.State.OPEN).update(state=AlertEvent.State.MUTED)
    return redirect("alerts")
