"""The user's own settings: the time zone dates are shown in, and which alerts they receive."""

import zoneinfo
from functools import cache

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from ..models import AlertSubscription, Organization, Profile


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
        for organization in organizations:
            if str(organization.pk) in wanted:
                AlertSubscription.objects.get_or_create(user=request.user, organization=organization)
            else:
                AlertSubscription.objects.filter(user=request.user, organization=organization).delete()
        messages.success(request, "Saved.")
        return redirect("account")
    subscribed = set(AlertSubscription.objects.filter(user=request.user).values_list("organization", flat=True))
    choices = [(organization, organization.pk in subscribed) for organization in organizations]
    return render(request, "reports/account.html", {"form": form, "alert_choices": choices})


def login(request):
    """The login form; until the first account has logged in, it says where its password is."""
    password_file = settings.DATA_DIR / "admin-password"
    context = {"first_run": password_file.exists(), "password_file": password_file}
    return auth_views.LoginView.as_view(extra_context=context)(request)
