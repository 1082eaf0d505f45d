"""The user's own settings: the time zone dates are shown in, and which alerts they receive."""

import zoneinfo
from functools import cache

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import path

from reports.alerts import subscriptions
from reports.models import AlertEvent, AlertSubscription, Organization, Profile
from reports.views import security


@cache
def zone_choices() -> list[tuple[str, str]]:
    return [("", "UTC (the site's time zone)")] + [(name, name) for name in sorted(zoneinfo.available_timezones())]


class ProfileForm(forms.ModelForm):
    time_zone = forms.ChoiceField(choices=zone_choices, required=False)

    class Meta:
        model = Profile
        fields = ["time_zone"]


@login_required
def account(request):
    profile, _ = Profile.objects.get_or_create(user=request.user)
    form = ProfileForm(request.POST or None, instance=profile)
    organizations = list(Organization.objects.filter(memberships__user=request.user).order_by("name"))
    if request.method == "POST" and form.is_valid():
        form.save()
        # One checkbox per organization the user belongs to: email me its alerts.
        wanted = set(request.POST.getlist("alerts"))
        subscriptions.save(
            request.user,
            {
                organization: subscriptions.Choice(
                    wanted=str(organization.pk) in wanted,
                    mode=request.POST.get(f"mode-{organization.pk}", ""),
                    kinds=tuple(request.POST.getlist(f"kinds-{organization.pk}")),
                    domain_ids=tuple(
                        int(v)
                        for v in request.POST.getlist(f"domains-{organization.pk}")
                        if v.isdigit() and len(v) < 12
                    ),
                )
                for organization in organizations
            },
            request,
        )
        messages.success(request, "Saved.")
        return redirect("account")
    current = {
        s.organization_id: s for s in AlertSubscription.objects.filter(user=request.user).prefetch_related("domains")
    }
    choices = []
    for organization in organizations:
        subscription = current.get(organization.pk)
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


urlpatterns = [
    path("account/", account, name="account"),
]
