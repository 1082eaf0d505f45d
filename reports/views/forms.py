"""The forms of the pages members use: uploads and an organization's settings, mailboxes and tokens
(the Django admin has its own, for operators)."""

from django import forms

from reports.intake.imap import plain_refusal
from reports.models import ApiToken, Mailbox, Membership, Organization
from reports.tenancy import netguard, organizations
from reports.tenancy.secrets import encrypt

# Readiness reads 14 days of records and the failing-source alerts a week: keeping fewer
# than this would quietly blind both, so a shorter record retention is refused.
MIN_RECORD_DAYS = 30
# A refused input is replayed once its cause is fixed: that needs its raw bytes a while.
MIN_RAW_DAYS = 7
# Far beyond any real need, and well inside what a date can subtract.
MAX_DAYS = 36500


def _retention(days: int | None, minimum: int, what: str) -> int:
    days = days or 0
    if days and days < minimum:
        raise forms.ValidationError(f"keep {what} at least {minimum} days, or enter 0 to keep them forever")
    if days > MAX_DAYS:
        raise forms.ValidationError(f"at most {MAX_DAYS} days; enter 0 to keep them forever")
    return days


class OrganizationSettingsForm(forms.ModelForm):
    """Admins change how reports are kept and treated; only owners rename the organization."""

    class Meta:
        model = Organization
        fields = organizations.SETTINGS_FIELDS
        labels = {
            "unverified_reports": "Unverified reports",
            "raw_retention_days": "Keep raw inputs (days)",
            "record_retention_days": "Keep report records (days)",
            "alert_min_messages": "New domains: alert on a new failing source after (messages)",
            "subscribe_new_members": "Subscribe new members to alert emails",
            "report_address": "Report address (rua=)",
            "failure_retention_days": "Keep failure samples (days)",
            "failure_hash_local_parts": "Hash the local part of addresses in failure samples",
            "failure_defang_urls": "Defang URLs in failure samples",
            "failure_samples_for_viewers": "Let viewers open failure samples",
        }
        help_texts = {
            "unverified_reports": "Reports whose email is not DKIM-signed by the reporter's domain. "
            "A change applies to reports received from then on.",
            "raw_retention_days": "The XML, archives and emails as received; 0 keeps them forever. "
            "Once removed, an input can no longer be downloaded or replayed.",
            "record_retention_days": "The rows of each report; 0 keeps them forever. The daily totals stay, so the "
            "dashboard's counts do not change, but filtering by reporter and sender together, a source's "
            "reports and a report's rows are no longer available for older periods.",
            "failure_retention_days": "Failure reports hold personal data (who wrote to whom, the subject, the "
            "headers): the samples and their encrypted raw reports are removed after this many days; 0 keeps them.",
            "failure_hash_local_parts": "alice@example.com becomes h.3f9a1c2b7d@example.com, the same hash for "
            "the same sender (RFC 9991's privacy advice). Applies to reports received from then on.",
            "failure_defang_urls": "http://evil.example/ becomes hxxp://evil[.]example/, so no link is clickable. "
            "Applies to reports received from then on.",
            "failure_samples_for_viewers": "Owners and admins always can; every view is in the audit log.",
        }

    def __init__(self, *args, can_rename: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if not can_rename:
            del self.fields["name"]
        else:
            self.fields["name"].help_text = "only owners rename the organization"
        for name in ("raw_retention_days", "record_retention_days", "failure_retention_days"):
            self.fields[name].widget.attrs.update(min=0, max=MAX_DAYS)
        self.fields["failure_retention_days"].required = False

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("the name cannot be empty")
        return name

    def clean_raw_retention_days(self):
        return _retention(self.cleaned_data.get("raw_retention_days"), MIN_RAW_DAYS, "raw inputs")

    def clean_record_retention_days(self):
        return _retention(self.cleaned_data.get("record_retention_days"), MIN_RECORD_DAYS, "records")

    def clean_failure_retention_days(self):
        days = self.cleaned_data.get("failure_retention_days")
        if days is None:  # left empty: as it was
            return self.instance.failure_retention_days
        return _retention(days, 1, "failure samples")


class MailboxForm(forms.ModelForm):
    """A mailbox of the organization. The password is write-only and stored encrypted.

    Members name neither an environment variable nor a CA file: both would let a tenant read
    what is on the server (a variable's value would be sent as the password to a server of
    their choosing).
    """

    # What a stored password is sent to: changing any of these asks for the password again,
    # so an admin cannot redirect a password someone else entered to a server of their own.
    SERVER_FIELDS = ("host", "port", "security", "username")

    password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="stored encrypted and never shown again; leave empty to keep the current one",
    )

    port = forms.IntegerField(min_value=1, max_value=65535, initial=993)
    # A tenant must not make the poller hammer a server (or this one).
    poll_interval = forms.IntegerField(
        min_value=60, max_value=86400, initial=300, help_text="seconds between polls (60 to 86400)"
    )

    class Meta:
        model = Mailbox
        fields = [
            "name", "host", "port", "security", "username", "password", "folder", "processed_folder",
            "invalid_folder", "poll_interval", "enabled", "use_idle",
        ]  # fmt: skip

    def __init__(self, *args, organization: Organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.organization = organization
        if self.instance.pk is None:
            self.instance.organization = organization
            self.fields["password"].required = True
            self.fields["password"].help_text = "stored encrypted and never shown again"

    def clean_host(self):
        host = self.cleaned_data["host"].strip().lower().rstrip(".")
        if not host or any(character.isspace() or character in "/@?#" for character in host):
            raise forms.ValidationError("a host name or IP address, such as imap.example.com")
        return host

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        taken = Mailbox.objects.filter(organization=self.organization, name=name).exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError("another mailbox of this organization has this name")
        return name

    def server_changed(self) -> bool:
        return self.instance.pk is not None and any(name in self.changed_data for name in self.SERVER_FIELDS)

    def clean(self):
        cleaned = super().clean()
        if refusal := plain_refusal(cleaned.get("security", ""), cleaned.get("host", "")):
            raise forms.ValidationError(f"{refusal}; use TLS or STARTTLS")
        if (
            cleaned.get("host")
            and cleaned.get("port")
            and (refusal := netguard.refusal(cleaned["host"], cleaned["port"]))
        ):
            self.add_error("host", refusal)
        if self.server_changed() and not cleaned.get("password"):
            self.add_error("password", "enter the password again: the server or user changed")
        return cleaned

    def save(self, commit=True):
        mailbox = super().save(commit=False)
        mailbox.organization = self.organization
        if self.cleaned_data.get("password"):
            mailbox.password_encrypted = encrypt(self.cleaned_data["password"])
            mailbox.password_env = ""  # the password typed here is the one to use
        if commit:
            mailbox.save()
        return mailbox


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=ApiToken._meta.get_field("name").max_length,
        help_text="what uses it, e.g. the script on the mail server",
    )

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("give the token a name")
        return name


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        if isinstance(data, list | tuple):
            return [super(MultipleFileField, self).clean(item, initial) for item in data]
        return [super().clean(data, initial)]


class UploadForm(forms.Form):
    """Report files (xml, gz, zip, eml) uploaded into one of the user's organizations."""

    organization = forms.ModelChoiceField(queryset=Organization.objects.none(), empty_label=None)
    files = MultipleFileField(help_text="XML, gzip, zip or .eml files; several at once")

    def __init__(self, *args, user, max_bytes: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_bytes = max_bytes
        self.fields["organization"].queryset = Organization.objects.for_user(user, Membership.MANAGERS).order_by("name")

    def clean_files(self):
        files = self.cleaned_data["files"]
        for upload in files:
            if upload.size > self.max_bytes:
                raise forms.ValidationError(
                    f"{upload.name} is {upload.size} bytes, more than the {self.max_bytes} byte cap"
                )
        return files


class ReportAddressForm(forms.Form):
    report_address = forms.EmailField(
        max_length=254, help_text="the mailbox receivers send aggregate reports to, such as dmarc@example.com"
    )
