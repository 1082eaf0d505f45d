"""The forms of the pages members use: uploads and an organization's settings, mailboxes and tokens
(the Django admin has its own, for operators)."""

from django import forms
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from reports.intake import oauth
from reports.intake.imap import plain_refusal
from reports.models import ApiToken, Mailbox, Membership, Organization
from reports.tenancy import netguard, organizations
from reports.tenancy.secrets import encrypt

# Readiness reads 14 days of records and the failing-source alerts a week: keeping fewer
# than this would quietly blind both, so a shorter record retention is refused.
MIN_RECORD_DAYS = 30
# A refused input is replayed once its cause is fixed: that needs its raw bytes a while.
MIN_RAW_DAYS = 7
# The dashboard's longest preset is a year: its per-source and DKIM figures, and its totals, stay
# exact as long as the rollups keep that many days.
MIN_ROLLUP_DAYS = 366
# Far beyond any real need, and well inside what a date can subtract.
MAX_DAYS = 36500


def _retention(days: int | None, minimum: int, what: str) -> int:
    days = days or 0
    if days and days < minimum:
        raise forms.ValidationError(f"keep {what} at least {minimum} days, or enter 0 to keep them forever")
    if days > MAX_DAYS:
        raise forms.ValidationError(f"at most {MAX_DAYS} days; enter 0 to keep them forever")
    return days


ROLLUP_FIELDS = ("rollup_daily_days", "rollup_monthly_days")


class OrganizationSettingsForm(forms.ModelForm):
    """Admins change how reports are kept and treated; only owners rename the organization."""

    class Meta:
        model = Organization
        fields = organizations.SETTINGS_FIELDS
        labels = {
            "unverified_reports": "Unverified reports",
            "raw_retention_days": "Keep raw inputs (days)",
            "record_retention_days": "Keep report records (days)",
            "rollup_daily_days": "Keep the daily detail of sources and DKIM signatures (days)",
            "rollup_monthly_days": "Keep the dashboard's history (days)",
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
            "rollup_daily_days": "After this, a whole month of the per-source and per-DKIM figures is kept as one "
            "row per source and result: every total stays, but older sources and signatures are counted by month "
            "(a period starting or ending mid-month counts such a month only if it holds the month's first day). "
            "By day they take about 300 MB per million records; folded, about half. "
            "0 keeps every day.",
            "rollup_monthly_days": "After this, whole months go from the dashboard: its totals, sources and DKIM "
            "signatures. 0 keeps them forever.",
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
        for name in ROLLUP_FIELDS + ("raw_retention_days", "record_retention_days", "failure_retention_days"):
            self.fields[name].widget.attrs.update(min=0, max=MAX_DAYS)
        for name in ROLLUP_FIELDS + ("failure_retention_days",):
            self.fields[name].required = False

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("the name cannot be empty")
        return name

    def clean_raw_retention_days(self):
        return _retention(self.cleaned_data.get("raw_retention_days"), MIN_RAW_DAYS, "raw inputs")

    def clean_record_retention_days(self):
        return _retention(self.cleaned_data.get("record_retention_days"), MIN_RECORD_DAYS, "records")

    def clean_rollup_daily_days(self):
        return self._rollup_days("rollup_daily_days", "daily rollups")

    def clean_rollup_monthly_days(self):
        return self._rollup_days("rollup_monthly_days", "rollups")

    def _rollup_days(self, name: str, what: str) -> int:
        days = self.cleaned_data.get(name)
        if days is None:  # left empty: as it was
            return getattr(self.instance, name)
        return _retention(days, MIN_ROLLUP_DAYS, what)

    def clean(self):
        cleaned = super().clean()
        daily, monthly = cleaned.get("rollup_daily_days"), cleaned.get("rollup_monthly_days")
        # Coarser rollups are kept longer: months cannot go before their days are folded into them.
        if daily and monthly and monthly < daily:
            self.add_error("rollup_monthly_days", "keep the monthly rollups at least as long as the daily ones")
        return cleaned

    def clean_failure_retention_days(self):
        days = self.cleaned_data.get("failure_retention_days")
        if days is None:  # left empty: as it was
            return self.instance.failure_retention_days
        return _retention(days, 1, "failure samples")


class MailboxForm(forms.ModelForm):
    """A mailbox of the organization, and how it logs in: a password, or OAuth2 (Microsoft 365 app-only or
    delegated, a Google Workspace service account or delegated access). Every secret (password, client
    secret, private key, refresh token) is write-only and stored encrypted; an empty field keeps it.

    Members name neither an environment variable nor a CA file: both would let a tenant read
    what is on the server (a variable's value would be sent as the password to a server of
    their choosing).
    """

    # What a stored password or token is sent to: changing any of these asks for the secret again,
    # so an admin cannot redirect a secret someone else entered to a server of their own.
    SERVER_FIELDS = ("host", "port", "security", "username")
    # Where a stored client secret or private key is sent (with the server fields).
    TOKEN_FIELDS = ("sign_in", "oauth_tenant", "oauth_token_url", "oauth_client_id")

    # sign_in value -> (provider, auth)
    SIGN_INS = {
        "password": ("", Mailbox.Auth.PASSWORD),
        "microsoft-app": (Mailbox.OAuthProvider.MICROSOFT, Mailbox.Auth.CLIENT_CREDENTIALS),
        "microsoft-delegated": (Mailbox.OAuthProvider.MICROSOFT, Mailbox.Auth.REFRESH_TOKEN),
        "google-service": (Mailbox.OAuthProvider.GOOGLE, Mailbox.Auth.JWT_BEARER),
        "google-delegated": (Mailbox.OAuthProvider.GOOGLE, Mailbox.Auth.REFRESH_TOKEN),
    }
    DELEGATED = ("microsoft-delegated", "google-delegated")

    sign_in = forms.ChoiceField(
        label="Sign-in",
        choices=[
            ("password", "Password"),
            ("microsoft-app", "Microsoft 365: app-only access (client credentials)"),
            ("microsoft-delegated", "Microsoft 365: delegated access (Connect with Microsoft)"),
            ("google-service", "Google Workspace: service account with domain-wide delegation"),
            ("google-delegated", "Google Workspace: delegated access (Connect with Google)"),
        ],
        initial="password",
        required=False,
        help_text="how the poller logs in to the mailbox (OAuth2 logs in with IMAP XOAUTH2)",
    )
    password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="stored encrypted and never shown again; leave empty to keep the current one",
    )
    client_secret = forms.CharField(
        label="Client secret",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Microsoft 365 app-only, or a delegated application's secret; stored encrypted and never "
        "shown again; leave empty to keep the current one",
    )
    private_key = forms.CharField(
        label="Service account private key (PEM)",
        required=False,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 4, "autocomplete": "off", "spellcheck": "false"}),
        help_text="Google service account: the private_key of its JSON key file, -----BEGIN PRIVATE KEY----- "
        "included; stored encrypted and never shown again; leave empty to keep the current one",
    )

    oauth_token_url = forms.URLField(
        label="Token URL",
        required=False,
        max_length=500,
        assume_scheme="https",
        help_text="custom endpoints (sovereign clouds, tests): the token URL; the authorization URL is the same "
        "URL ending in /authorize. Empty for the provider's",
    )
    port = forms.IntegerField(min_value=1, max_value=65535, initial=993)
    # A tenant must not make the poller hammer a server (or this one).
    poll_interval = forms.IntegerField(
        min_value=60, max_value=86400, initial=300, help_text="seconds between polls (60 to 86400)"
    )

    class Meta:
        model = Mailbox
        fields = [
            "name", "host", "port", "security", "username", "sign_in", "password", "oauth_tenant",
            "oauth_client_id", "client_secret", "private_key", "oauth_token_url", "oauth_scope", "folder",
            "processed_folder", "invalid_folder", "poll_interval", "enabled", "use_idle",
        ]  # fmt: skip
        labels = {
            "username": "User (the mailbox address)",
            "oauth_tenant": "Microsoft Entra tenant",
            "oauth_client_id": "Client id",
            "oauth_token_url": "Token URL",
            "oauth_scope": "Scope",
        }
        help_texts = {
            "username": "the login name; for OAuth2 the mailbox's address (a Google service account acts as it)",
            "oauth_tenant": "Microsoft 365: the tenant id or domain (contoso.onmicrosoft.com); 'organizations' "
            "for delegated access from any tenant",
            "oauth_client_id": "the application (client) id; for a Google service account its client e-mail or "
            "client id",
            "oauth_token_url": "custom endpoints (sovereign clouds, tests): the token URL; the authorization URL "
            "is the same URL ending in /authorize. Empty for the provider's",
            "oauth_scope": "empty for the provider's IMAP scope",
        }

    def __init__(self, *args, organization: Organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.organization = organization
        instance = self.instance
        if instance.pk is None:
            instance.organization = organization
            self.fields["password"].help_text = "stored encrypted and never shown again"
        else:
            self.fields["sign_in"].initial = self.sign_in_of(instance)

    @classmethod
    def sign_in_of(cls, mailbox: Mailbox) -> str:
        for value, (provider, auth) in cls.SIGN_INS.items():
            if mailbox.auth == auth and (mailbox.oauth_provider == provider or not provider):
                return value
        # A mailbox of another provider (added with manage.py mailbox): the same kind of access.
        return {
            Mailbox.Auth.CLIENT_CREDENTIALS: "microsoft-app",
            Mailbox.Auth.REFRESH_TOKEN: "microsoft-delegated",
            Mailbox.Auth.JWT_BEARER: "google-service",
        }.get(mailbox.auth, "password")

    def clean_sign_in(self):
        # Left out (a script posting the fields it knew before OAuth2): as it is.
        return self.cleaned_data["sign_in"] or (self.sign_in_of(self.instance) if self.instance.pk else "password")

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

    def clean_oauth_tenant(self):
        tenant = self.cleaned_data["oauth_tenant"].strip()
        if tenant and not all(character.isalnum() or character in ".-_" for character in tenant):
            raise forms.ValidationError("a tenant id (a GUID) or domain, such as contoso.onmicrosoft.com")
        return tenant

    def clean_oauth_token_url(self):
        url = self.cleaned_data["oauth_token_url"].strip()
        if url and (refusal := oauth.url_refusal(url)):
            raise forms.ValidationError(refusal)
        return url

    def clean_private_key(self):
        key = self.cleaned_data["private_key"]
        if key:
            try:
                RSAKey.import_key(key)
            except (JoseError, ValueError, TypeError):
                raise forms.ValidationError(
                    "not an RSA private key in PEM form: paste the private_key of the service account's JSON "
                    "key file, from -----BEGIN PRIVATE KEY----- to -----END PRIVATE KEY-----"
                ) from None
            if "PRIVATE KEY" not in key:
                raise forms.ValidationError("this is a public key: paste the service account's private key")
        return key

    def server_changed(self) -> bool:
        return self.instance.pk is not None and any(name in self.changed_data for name in self.SERVER_FIELDS)

    def token_changed(self) -> bool:
        return self.instance.pk is not None and (
            self.server_changed() or any(name in self.changed_data for name in self.TOKEN_FIELDS)
        )

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
        sign_in = cleaned.get("sign_in")
        if sign_in == "password":
            self._clean_password(cleaned)
        elif sign_in:
            self._clean_oauth(sign_in, cleaned)
        return cleaned

    def _clean_password(self, cleaned) -> None:
        instance = self.instance
        if cleaned.get("password"):
            return
        if instance.pk is None or instance.uses_oauth:
            self.add_error("password", "This field is required: enter the mailbox's password.")
        elif self.server_changed():
            self.add_error("password", "enter the password again: the server or user changed")
        elif not (instance.password_encrypted or instance.password_env):
            self.add_error("password", "enter the mailbox's password")

    def _clean_oauth(self, sign_in: str, cleaned) -> None:
        instance = self.instance
        provider, auth = self.SIGN_INS[sign_in]
        if not cleaned.get("oauth_client_id", "").strip():
            what = "the service account's client e-mail (or id)" if sign_in == "google-service" else "the client id"
            self.add_error("oauth_client_id", f"enter {what}")
        if (
            provider == Mailbox.OAuthProvider.MICROSOFT
            and not cleaned.get("oauth_tenant")
            and not cleaned.get("oauth_token_url")
            and "oauth_token_url" not in self.errors
        ):
            self.add_error("oauth_tenant", "enter the Microsoft Entra tenant (or a token URL)")
        if "@" not in cleaned.get("username", "") and sign_in == "google-service":
            self.add_error("username", "enter the mailbox's address: the service account acts as this user")
        # A stored secret is kept only while it goes where it went before.
        kept = instance.pk is not None and instance.auth == auth and not self.token_changed()
        if sign_in == "microsoft-app" and not cleaned.get("client_secret"):
            if not (kept and instance.oauth_client_secret_encrypted):
                again = " again: the sign-in, tenant, token URL, client id or server changed" if instance.pk else ""
                self.add_error("client_secret", f"enter the client secret{again}")
        if sign_in == "google-service" and not cleaned.get("private_key"):
            if not (kept and instance.oauth_private_key_encrypted):
                again = " again: the sign-in, token URL, client e-mail or server changed" if instance.pk else ""
                self.add_error("private_key", f"paste the service account's private key{again}")
        if sign_in == "google-delegated" and not cleaned.get("client_secret"):
            if not (kept and instance.oauth_client_secret_encrypted):
                self.add_error("client_secret", "enter the client secret of the Google OAuth client (type Web)")

    @property
    def needs_connect(self) -> bool:
        """Delegated access whose refresh token is not (or no longer) stored: "Connect" comes next."""
        return self.cleaned_data.get("sign_in") in self.DELEGATED and not (self.instance.oauth_refresh_token_encrypted)

    def save(self, commit=True):
        previous = self.instance.auth if self.instance.pk else None
        kept = self.instance.pk is not None and not self.token_changed()
        mailbox = super().save(commit=False)
        mailbox.organization = self.organization
        sign_in = self.cleaned_data["sign_in"]
        provider, auth = self.SIGN_INS[sign_in]
        if (
            mailbox.oauth_provider == Mailbox.OAuthProvider.CUSTOM
            and previous == auth
            and self.cleaned_data.get("oauth_token_url")
            and self.sign_in_of(mailbox) == sign_in
        ):
            provider = Mailbox.OAuthProvider.CUSTOM  # another provider's mailbox stays one
        mailbox.auth, mailbox.oauth_provider = auth, provider
        if auth == Mailbox.Auth.PASSWORD:
            if self.cleaned_data.get("password"):
                mailbox.password_encrypted = encrypt(self.cleaned_data["password"])
                mailbox.password_env = ""  # the password typed here is the one to use
            if previous != auth:
                oauth.set_secrets(mailbox, client_secret="", private_key="", refresh_token="")
        else:
            mailbox.password_encrypted = ""
            # Secrets that no longer fit go; those typed here replace the stored ones.
            oauth.set_secrets(
                mailbox,
                client_secret=self.cleaned_data.get("client_secret") or (None if kept else ""),
                private_key=self.cleaned_data.get("private_key") or (None if kept else ""),
                refresh_token=None if kept and previous == auth else "",
            )
            if auth != Mailbox.Auth.JWT_BEARER and not self.cleaned_data.get("private_key"):
                mailbox.oauth_private_key_encrypted = ""
            if auth == Mailbox.Auth.JWT_BEARER and not self.cleaned_data.get("client_secret"):
                mailbox.oauth_client_secret_encrypted = ""
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
