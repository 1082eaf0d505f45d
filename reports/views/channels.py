"""Alert channels: Slack, Teams and signed webhooks, beside the emails.

An organization's channels: owners and admins list, add, delete, enable again and test them;
anyone else gets 404, as for another organization's page. A member's personal channels (any
member, viewers too, on orgs/<slug>/channels/mine/): only that member sees and manages them;
anyone else, owners included, gets 404. Their actions name the channel in the form (``channel``),
not the URL. The same code serves both: each view takes the channels' owner (the organization, or
the organization and the member). A channel's URL is write-only (only its host is shown) and a
webhook's signing secret is shown once, in the answer to the form that created it.
"""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseBadRequest
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

    def __init__(self, *args, organization, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["domains"].queryset = channels.choosable_domains(organization, user).order_by("name")

    def clean_name(self):
        return " ".join(self.cleaned_data["name"].split())

    def clean_url(self):
        url = self.cleaned_data["url"].strip()
        refused = channels.url_refusal(url)
        if refused:
            raise forms.ValidationError(refused)
        return url


class Owner:
    """Whose channels a page shows: the organization's (``user`` None) or a member's personal ones."""

    def __init__(self, organization, user=None):
        self.organization, self.user = organization, user

    @property
    def page(self) -> str:
        return "org-my-channels" if self.user else "org-channels"

    def channels(self):
        return AlertChannel.objects.filter(organization=self.organization, user=self.user)

    def form(self, data=None) -> ChannelForm:
        return ChannelForm(data, organization=self.organization, user=self.user)

    def back(self):
        return redirect(self.page, slug=self.organization.slug)


def _organization_owner(request, slug: str) -> Owner:
    return Owner(organization_for(request, slug, ADMIN))


def _personal_owner(request, slug: str) -> Owner:
    return Owner(organization_for(request, slug), request.user)


def _page(request, owner: Owner, form, secret: str = "", created: AlertChannel | None = None):
    context = {
        "organization": owner.organization,
        "mine": owner.user is not None,
        "channels": owner.channels().prefetch_related("domains"),
        "deliveries": channels_deliveries(owner),
        "form": form,
        "secret": secret,
        "created": created,
    }
    response = render(request, "org/channels.html", context)
    if secret or request.method == "POST":
        response["Cache-Control"] = "no-store"  # the one page with the secret must not be kept anywhere
    return response


def channels_deliveries(owner: Owner):
    return (
        ChannelDelivery.objects.filter(channel__in=owner.channels())
        .select_related("channel")
        .prefetch_related("events")[:RECENT]
    )


def _list(request, owner: Owner):
    return _page(request, owner, owner.form())


def _add(request, owner: Owner):
    form = owner.form(request.POST)
    if not form.is_valid():
        return _page(request, owner, form)
    data = form.cleaned_data
    channel, secret = channels.add(
        owner.organization,
        data["kind"],
        data["name"],
        data["url"],
        data["kinds"],
        data["domains"],
        request,
        user=owner.user,
    )
    if not secret:
        messages.success(request, f"Channel {channel.name} added: send a test message to check it.")
        return owner.back()
    # Rendered, not redirected: the signing secret exists only in this response.
    return _page(request, owner, owner.form(), secret=secret, created=channel)


def _channel(owner: Owner, channel_id: int) -> AlertChannel:
    return get_object_or_404(owner.channels().select_related("organization", "user"), pk=channel_id)


def _delete(request, owner: Owner, channel: AlertChannel):
    channels.delete(channel, request)
    messages.success(request, f"Channel {channel.name} deleted.")
    return owner.back()


def _enable(request, owner: Owner, channel: AlertChannel):
    if channels.enable(channel, request):
        messages.success(request, f"Channel {channel.name} enabled again.")
    else:
        messages.error(request, f"Channel {channel.name} was already enabled.")
    return owner.back()


def _test(request, owner: Owner, channel: AlertChannel):
    answer = channels.send_test(channel, request)
    if answer.outcome == "sent":
        messages.success(request, f"Test message sent to {channel.name}: the receiver answered {answer.status}.")
    else:
        messages.error(request, f"Test message to {channel.name} not delivered: {answer.text}")
    return owner.back()


ACTIONS = {"delete": _delete, "enable": _enable, "test": _test}


# -- The organization's channels: owners and admins -------------------------------------------------


@login_required
def channel_list(request, slug: str):
    return _list(request, _organization_owner(request, slug))


@login_required
@require_POST
def channel_add(request, slug: str):
    return _add(request, _organization_owner(request, slug))


def _organization_action(action: str):
    @login_required
    @require_POST
    def view(request, slug: str, channel_id: int):
        owner = _organization_owner(request, slug)
        return ACTIONS[action](request, owner, _channel(owner, channel_id))

    view.__name__ = view.__qualname__ = f"channel_{action}"
    return view


channel_delete = _organization_action("delete")
channel_enable = _organization_action("enable")
channel_test = _organization_action("test")


# -- A member's personal channels: that member only ---------------------------------------------------


@login_required
def my_channel_list(request, slug: str):
    return _list(request, _personal_owner(request, slug))


@login_required
@require_POST
def my_channel_add(request, slug: str):
    return _add(request, _personal_owner(request, slug))


def _personal_action(action: str):
    @login_required
    @require_POST
    def view(request, slug: str):
        owner = _personal_owner(request, slug)
        channel_id = request.POST.get("channel", "")
        if not channel_id.isdigit():
            return HttpResponseBadRequest("which channel? (the form names it)")
        return ACTIONS[action](request, owner, _channel(owner, int(channel_id)))

    view.__name__ = view.__qualname__ = f"my_channel_{action}"
    return view


my_channel_delete = _personal_action("delete")
my_channel_enable = _personal_action("enable")
my_channel_test = _personal_action("test")


urlpatterns = [
    path("orgs/<slug:slug>/channels/", channel_list, name="org-channels"),
    path("orgs/<slug:slug>/channels/add/", channel_add, name="org-channel-add"),
    path("orgs/<slug:slug>/channels/<int:channel_id>/delete/", channel_delete, name="org-channel-delete"),
    path("orgs/<slug:slug>/channels/<int:channel_id>/enable/", channel_enable, name="org-channel-enable"),
    path("orgs/<slug:slug>/channels/<int:channel_id>/test/", channel_test, name="org-channel-test"),
    path("orgs/<slug:slug>/channels/mine/", my_channel_list, name="org-my-channels"),
    path("orgs/<slug:slug>/channels/mine/add/", my_channel_add, name="org-my-channel-add"),
    path("orgs/<slug:slug>/channels/mine/delete/", my_channel_delete, name="org-my-channel-delete"),
    path("orgs/<slug:slug>/channels/mine/enable/", my_channel_enable, name="org-my-channel-enable"),
    path("orgs/<slug:slug>/channels/mine/test/", my_channel_test, name="org-my-channel-test"),
]
