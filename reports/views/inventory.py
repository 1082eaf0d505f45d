"""Marking a domain's senders authorised (or not) from the dashboard: a named sender, a network, a
reverse DNS domain or a DKIM signing domain, in one click, audited, with an undo."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from reports.enrichment import inventory
from reports.rollout import readiness
from reports.views.dashboard import visible_domain

MARKS = {"authorised": True, "not-authorised": False, "unknown": None}
SAID = {True: "authorised", False: "not authorised", None: "unmarked"}
UNDO_KEY = "undo"


def back(request, domain):
    """Where the mark was made, if it is a page of this site; else the domain's sources."""
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return redirect(target)
    return redirect("domain-sources", name=domain.name)


@login_required
@require_POST
def mark(request, name: str):
    domain = visible_domain(request, name)
    if not domain.managed_by(request.user):
        raise Http404("only owners and admins change the inventory")
    wanted = request.POST.get("mark", "")
    try:
        if wanted not in MARKS:
            raise inventory.InventoryError("choose authorised, not authorised or unmarked")
        sender = inventory.sender_to_mark(domain, request.POST.get("kind", ""), request.POST.get("value", ""))
    except inventory.InventoryError as exc:
        messages.error(request, f"Not changed: {exc}.")
        return back(request, domain)
    previous = inventory.mark(domain, sender, MARKS[wanted], request)
    readiness.refresh(domain)  # "What holds it back" and the checks follow the inventory at once
    messages.success(request, f"{sender.name} is {SAID[MARKS[wanted]]} for {domain.name}; readiness recomputed.")
    if previous != MARKS[wanted]:
        undo = next(key for key, value in MARKS.items() if value == previous)
        request.session[UNDO_KEY] = {
            "action": reverse("inventory-mark", args=[domain.name]),
            "fields": {"kind": "sender", "value": str(sender.pk), "mark": undo, "next": request.POST.get("next", "")},
            "label": f"Undo: {sender.name} {SAID[previous]} again",
        }
    return back(request, domain)


urlpatterns = [
    path("domains/<str:name>/inventory/", mark, name="inventory-mark"),
]
