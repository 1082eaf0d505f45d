"""An organization's alert channels: Slack, Teams and signed webhooks, beside the emails.

Owners and admins list, add, delete, enable again and test them; anyone else gets 404, as for
another organization's page. A channel's URL is write-only (only its host is shown) and a
webhook's signing secret is shown once, in the answer to the form that created it.
"""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.views.decorators.http import require_POST

from reports.alerts import channels
from reports.models import AlertChannel, AlertEvent, ChannelDelivery, Membership
from reports.tenancy.access import organization_for

ADMIN = Membership.Role.ADMIN
RECENT = 20  # deliveries listed on the page


class ChannelForm(forms.Form):
    kind = forms.ChoiceField(choices=AlertChannel.Kind.choices, initial=AlertChannel.Kind.SLACK)
    name = forms.CharField(max_length=100, help_text="how you call it here, e.g. #dmarc-alerts")
    url = forms.CharField(
        label="Webhook URL",
        max_length=2000,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off", "spellcheck": "false"}),
        help_text="stored encrypted and never shown again (only its host is); https:// only",
    )
    kinds = forms.MultipleChoiceField(
        label="Alert kinds",
        choices=AlertEvent.Kind.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="none ticked: every kind, new ones included",
    )
    domains = forms.ModelMultipleChoiceField(
        queryset=None, required=False, widget=forms.CheckboxSelectMultiple, help_text="none ticked: every domain"
    )

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["domains"].queryset = organization.domains.order_by("name")

    def clean_name(self):
        return " ".join(self.cleaned_data["name"].split())

    def clean_url(self):
        url = self.cleaned_data["url"].strip()
        refused = channels.url_refusal(url)
        if refused:
            raise forms.ValidationError(refused)
        return url


def _organization(request, slug: str):
    return organization_for(request, slug, ADMIN)


def _page(request, organization, form, secret: str = "", created: AlertChannel | None = None):
    listed = AlertChannel.objects.filter(organization=organization).prefetch_related("domains")
    context = {
        "organization": organization,
        "channels": listed,
        "deliveries": channels_deliveries(organization),
        "form": form,
        "secret": secret,
        "created": created,
    }
    response = render(request, "org/channels.html", context)
    if secret or request.method == "POST":
        response["Cache-Control"] = "no-store"  # the one page with the secret must not be kept anywhere
    return response


def channels_deliveries(organization):
    return (
        ChannelDelivery.objects.filter(channel__organization=organization)
        .select_related("channel")
        .prefetch_related("events")[:RECENT]
    )


@login_required
def channel_list(request, slug: str):
    organization = _organization(request, slug)
    return _page(request, organization, ChannelForm(organization=organization))


@login_required
@require_POST
def channel_add(request, slug: str):
    organization = _organization(request, slug)
    form = ChannelForm(request.POST, organization=organization)
    if not form.is_valid():
        return _page(request, organization, form)
    data = form.cleaned_data
    channel, secret = channels.add(
        organization, data["kind"], data["name"], data["url"], data["kinds"], data["domains"], request
    )
    if not secret:
        messages.success(request, f"Channel {channel.name} added: send a test message to check it.")
        return redirect("org-channels", slug=organization.slug)
    # Rendered, not redirected: the signing secret exists only in this response.
    return _page(request, organization, ChannelForm(organization=organization), secret=secret, created=channel)


def _channel(request, slug: str, channel_id: int):
    organization = _organization(request, slug)
    return organization, get_object_or_404(
        AlertChannel.objects.select_related("organization"), organization=organization, pk=channel_id
    )


@login_required
@require_POST
def channel_delete(request, slug: str, channel_id: int):
    organization, channel = _channel(request, slug, channel_id)
    channels.delete(channel, request)
    messages.success(request, f"Channel {channel.name} deleted.")
    return redirect("org-channels", slug=organization.slug)


@login_required
@require_POST
def channel_enable(request, slug: str, channel_id: int):
    organization, channel = _channel(request, slug, channel_id)
    if channels.enable(channel, request):
        messages.success(request, f"Channel {channel.name} enabled again.")
    else:
        messages.error(request, f"Channel {channel.name} was already enabled.")
    return redirect("org-channels", slug=organization.slug)


@login_required
@require_POST
def channel_test(request, slug: str, channel_id: int):
    organization, channel = _channel(request, slug, channel_id)
    answer = channels.send_test(channel, request)
    if answer.outcome == "sent":
        messages.success(request, f"Test message sent to {channel.name}: the receiver answered {answer.status}.")
    else:
        messages.error(request, f"Test message to {channel.name} not delivered: {answer.text}")
    return redirect("org-channels", slug=organization.slug)


urlpatterns = [
    path("orgs/<slug:slug>/channels/", channel_list, name="org-channels"),
    path("orgs/<slug:slug>/channels/add/", channel_add, name="org-channel-add"),
    path("orgs/<slug:slug>/channels/<int:channel_id>/delete/", channel_delete, name="org-channel-delete"),
    path("orgs/<slug:slug>/channels/<int:channel_id>/enable/", channel_enable, name="org-channel-enable"),
    path("orgs/<slug:slug>/channels/<int:channel_id>/test/", channel_test, name="org-channel-test"),
]
