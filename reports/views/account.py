"""The user's own settings: the time zone dates are shown in, and which alerts they receive."""

import zoneinfo
from functools import cache

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import path

from reports.alerts import subscriptions
from reports.models import AlertEvent, AlertSubscription, Organization, Profile
from reports.tenancy import accounts
from reports.views import security


@cache
def zone_choices() -> list:
    """Time zones grouped by region (Europe, America, ...), UTC first: 600 names in one flat list
    are hard to find anything in."""
    regions: dict[str, list] = {}
    for name in sorted(zoneinfo.available_timezones()):
        region, _, place = name.partition("/")
        if not place or region in ("Etc", "SystemV", "US", "Canada", "Brazil", "Chile", "Mexico"):
            continue  # aliases: every place is also under its continent
        regions.setdefault(region, []).append((name, place.replace("_", " ")))
    return [("", "UTC (the site's time zone)"), *sorted(regions.items())]


class ProfileForm(forms.ModelForm):
    time_zone = forms.ChoiceField(choices=zone_choices, required=False, label="Time zone")

    class Meta:
        model = Profile
        fields = ["time_zone"]


class EmailForm(forms.Form):
    email = forms.EmailField(
        max_length=254, required=False, label="Email", help_text="where alert emails and password resets are sent"
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_email(self):
        email = self.cleaned_data["email"].strip()
        if email and get_user_model().objects.filter(email__iexact=email).exclude(pk=self.user.pk).exists():
            raise forms.ValidationError("another account uses this address")
        return email


@login_required
def account(request):
    profile, _ = Profile.objects.get_or_create(user=request.user)
    form = ProfileForm(request.POST or None, instance=profile)
    email_form = EmailForm(request.POST or None, user=request.user, initial={"email": request.user.email})
    organizations = list(Organization.objects.filter(memberships__user=request.user).order_by("name"))
    if request.method == "POST" and form.is_valid() and email_form.is_valid():
        form.save()
        if "email" in request.POST:  # a client that does not send the field keeps the address
            accounts.change_email(request.user, email_form.cleaned_data["email"], request)
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
        "email_form": email_form,
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
