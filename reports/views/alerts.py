"""The alerts page: every event of the user's domains with its state; managers acknowledge."""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.views.decorators.http import require_POST

from reports.alerts import triage
from reports.dashboard.stats import PAGE_SIZE
from reports.models import AlertEvent, ChannelDelivery, Membership, Organization

RECENT_DELIVERIES = 10  # posts to alert channels (Slack, Teams, webhooks) shown below the events


def visible_events(user):
    """Events of the organizations the user belongs to (their domains, and the organization's own)."""
    return AlertEvent.objects.filter(organization__in=Organization.objects.for_user(user))


@login_required
def alert_list(request):
    events = (
        visible_events(request.user)
        .exclude(state=AlertEvent.State.BASELINE)
        .select_related("domain", "organization")
        .prefetch_related("emails")
    )
    if request.GET.get("state") in AlertEvent.State.values:
        events = events.filter(state=request.GET["state"])
    return render(
        request,
        "reports/alerts.html",
        {
            "page": Paginator(events, PAGE_SIZE).get_page(request.GET.get("page")),
            "states": AlertEvent.State.choices,
            "mute_days": triage.MUTE_DAYS,
            "deliveries": ChannelDelivery.objects.filter(
                channel__organization__in=Organization.objects.for_user(request.user)
            )
            .select_related("channel__organization")
            .prefetch_related("events")[:RECENT_DELIVERIES],
        },
    )


def managed_event(request, event_id: int) -> AlertEvent:
    """An event of the user's domains that the user may act on (owners and admins), or 404."""
    managed = Organization.objects.for_user(request.user, roles=Membership.MANAGERS)
    event = get_object_or_404(visible_events(request.user), pk=event_id)
    if not managed.filter(pk=event.organization_id).exists():
        raise Http404("only owners and admins act on alerts")
    return event


@login_required
@require_POST
def acknowledge(request, event_id: int):
    triage.acknowledge(managed_event(request, event_id), request)
    return redirect("alerts")


@login_required
@require_POST
def mute(request, event_id: int):
    """Mute the event's source (or with ``scope=domain`` its whole domain) for ``days`` days."""
    event = managed_event(request, event_id)
    if event.domain_id is None:
        raise Http404("events of the organization (a mailbox) are acknowledged, not muted")
    days = request.POST.get("days", "7")
    days = int(days) if days.isdigit() and 0 < int(days) <= 365 else 7
    triage.mute(event, days, request, whole_domain=request.POST.get("scope") == "domain")
    return redirect("alerts")


urlpatterns = [
    path("alerts/", alert_list, name="alerts"),
    path("alerts/<int:event_id>/acknowledge/", acknowledge, name="alert-acknowledge"),
    path("alerts/<int:event_id>/mute/", mute, name="alert-mute"),
]
