"""The user's own settings: the time zone dates are shown in, and which alerts they receive."""

import zoneinfo
from functools import cache

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from reports.models import AlertEvent, AlertSubscription, Organization, Profile
from reports.tenancy import audit
from reports.views import security


@cache
def zone_choices() -> list[tuple[str, str]]:
    return [("", "UTC (the site's time zone)")] + [(name, name) for name in sorted(zoneinfo.available_timezones())]


class ProfileForm(forms.ModelForm):
    time_zone = forms.ChoiceField(choices=zone_choices, required=False)

    class Meta:
        model = Profile
        fields = ["time_zone"]


def _subscription_state(subscription: AlertSubscription) -> dict:
    return {
        "mode": subscription.mode,
        "kinds": subscription.kinds or "all",
        "domains": sorted(domain.name for domain in subscription.domains.all()) or "all",
    }


@login_required
def account(request):
    profile, _ = Profile.objects.get_or_create(user=request.user)
    form = ProfileForm(request.POST or None, instance=profile)
    organizations = list(Organization.objects.filter(memberships__user=request.user).order_by("name"))
    if request.method == "POST" and form.is_valid():
        form.save()
        before = {
            s.organization_id: _subscription_state(s) for s in AlertSubscription.objects.filter(user=request.user)
        }
        # One checkbox per organization the user belongs to: email me its alerts.
        wanted = set(request.POST.getlist("alerts"))
        for organization in organizations:
            if str(organization.pk) not in wanted:
                AlertSubscription.objects.filter(user=request.user, organization=organization).delete()
                continue
            mode = request.POST.get(f"mode-{organization.pk}", AlertSubscription.Mode.IMMEDIATE)
            kinds = [
                kind for kind in request.POST.getlist(f"kinds-{organization.pk}") if kind in AlertEvent.Kind.values
            ]
            subscription, _ = AlertSubscription.objects.update_or_create(
                user=request.user,
                organization=organization,
                defaults={
                    "mode": mode if mode in AlertSubscription.Mode.values else AlertSubscription.Mode.IMMEDIATE,
                    # All kinds ticked is the same as none chosen: every kind, new ones included.
                    "kinds": [] if set(kinds) == set(AlertEvent.Kind.values) else kinds,
                },
            )
            # Only this organization's domains can be chosen; all of them ticked means all, new ones included.
            own = organization.domains.all()
            chosen = own.filter(pk__in=[v for v in request.POST.getlist(f"domains-{organization.pk}") if v.isdigit()])
            subscription.domains.set([] if chosen.count() == own.count() else chosen)
        after = {s.organization_id: _subscription_state(s) for s in AlertSubscription.objects.filter(user=request.user)}
        for organization in organizations:
            old, new = before.get(organization.pk, {}), after.get(organization.pk, {})
            if old != new:
                audit.record(
                    request, organization, "alerts.subscription-changed", request.user.get_username(), old, new
                )
        messages.success(request, "Saved.")
        return redirect("account")
    subscriptions = {
        s.organization_id: s for s in AlertSubscription.objects.filter(user=request.user).prefetch_related("domains")
    }
    choices = []
    for organization in organizations:
        subscription = subscriptions.get(organization.pk)
        chosen = {domain.pk for domain in subscription.domains.all()} if subscription else set()
        choices.append((organization, subscription, list(organization.domains.order_by("name")), chosen))
    context = {
        "form": form,
        "alert_choices": choices,
        "kinds": AlertEvent.Kind.choices,
        "modes": AlertSubscription.Mode.choices,
    }
    return render(request, "reports/account.html", context)


def login(request):
    """The login form; until the first account has logged in, it says where its password is."""
    password_file = settings.DATA_DIR / "admin-password"
    context = {"first_run": password_file.exists(), "password_file": password_file}
    # Throttled, and a second step for users with two-factor on: reports/views/security.py.
    return security.LoginView.as_view(extra_context=context)(request)
