"""The user's own settings: for now, the time zone dates are shown in."""

import zoneinfo
from functools import cache

from django import forms
from django.contrib import messages
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
