"""The user's own settings: for now, the time zone dates are shown in."""

import zoneinfo
from functools import cache

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from ..models import Profile


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
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Saved.")
        return redirect("account")
    return render(request, "reports/account.html", {"form": form})


def login(request):
    """The login form; until the first account has logged in, it says where its password is."""
    password_file = settings.DATA_DIR / "admin-password"
    context = {"first_run": password_file.exists(), "password_file": password_file}
    return auth_views.LoginView.as_view(extra_context=context)(request)
