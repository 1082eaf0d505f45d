"""Accounts: password reset by email, TOTP two-factor, login throttling.

Login is two steps for a user with a confirmed TOTP device: the password alone only leaves a
pending login in the session (for PENDING_SECONDS), and the code finishes it. Every failure,
password or code, counts towards the lockout in reports.tenancy.ratelimit.
"""

import logging
import time
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth import login as auth_login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render, resolve_url
from django.urls import path, reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters

from reports.models import Membership, TotpDevice
from reports.tenancy import ratelimit, twofactor

logger = logging.getLogger("reports.security")

PENDING_KEY = "two-factor-pending"
# Long enough to open the authenticator app, short enough that a left-open tab is useless.
PENDING_SECONDS = 5 * 60
CODE_WRONG = "That code is not valid, or it was already used. Wait for the next one and try again."


def locked_message(minutes: int) -> str:
    return f"Too many failed attempts; try again in {minutes} minute{'s' if minutes != 1 else ''}."


class LoginView(auth_views.LoginView):
    """Django's login, throttled, and handing over to the code step for users with two-factor on."""

    def post(self, request, *args, **kwargs):
        # Checked before the password: while locked, a correct password must not be told apart.
        minutes = ratelimit.login_locked_minutes(request.POST.get("username", ""), ratelimit.client_address(request))
        if minutes:
            ratelimit.record_lockout_hit(request.POST.get("username", ""), ratelimit.client_address(request))
            return self.locked(minutes)
        return super().post(request, *args, **kwargs)

    def locked(self, minutes: int):
        context = self.get_context_data(form=self.get_form_class()(self.request), locked=locked_message(minutes))
        return self.render_to_response(context, status=429)

    def form_invalid(self, form):
        minutes = ratelimit.record_login_failure(form.data.get("username", ""), ratelimit.client_address(self.request))
        if minutes:
            return self.locked(minutes)
        return super().form_invalid(form)

    def form_valid(self, form):
        user = form.get_user()
        if twofactor.confirmed_device(user):
            # A new session id for the half-logged-in state, as login() gives one for the whole.
            self.request.session.cycle_key()
            self.request.session[PENDING_KEY] = {
                "user": user.pk,
                "backend": user.backend,
                "at": time.time(),
                "next": self.get_redirect_url(),
            }
            return redirect("login-two-factor")
        self.request.session.pop(PENDING_KEY, None)  # an abandoned code step of another account
        ratelimit.clear_login_failures(form.data.get("username", ""))
        ratelimit.clear_login_failures(user.get_username())
        return super().form_valid(form)


def pending_user(request):
    """The user whose password was right in the last PENDING_SECONDS and who still owes a code, else None."""
    pending = request.session.get(PENDING_KEY)
    if not isinstance(pending, dict) or time.time() - pending.get("at", 0) > PENDING_SECONDS:
        return None
    return get_user_model().objects.filter(pk=pending.get("user"), is_active=True).first()


@sensitive_post_parameters("code")
@csrf_protect
@never_cache
def login_two_factor(request):
    user = pending_user(request)
    device = twofactor.confirmed_device(user)
    if device is None:
        request.session.pop(PENDING_KEY, None)
        messages.info(request, "Log in with your username and password first.")
        return redirect("login")
    username, address = user.get_username(), ratelimit.client_address(request)
    error, status = "", 200
    if request.method == "POST":
        minutes = ratelimit.login_locked_minutes(username, address)
        if minutes:
            ratelimit.record_lockout_hit(username, address)
            error, status = locked_message(minutes), 429
        elif twofactor.verify(device, request.POST.get("code", "")):
            pending = request.session.pop(PENDING_KEY)
            auth_login(request, user, backend=pending["backend"])
            ratelimit.clear_login_failures(username)
            logger.info("login with two-factor code for %r from %s", username, address)
            target = pending.get("next") or ""
            if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
                target = resolve_url(settings.LOGIN_REDIRECT_URL)
            return redirect(target)
        else:
            minutes = ratelimit.record_login_failure(username, address, "two-factor code")
            error, status = (locked_message(minutes), 429) if minutes else (CODE_WRONG, 200)
    return render(request, "registration/login_two_factor.html", {"error": error}, status=status)


def two_factor_recommended(user) -> bool:
    """Those who can change policy, members and tokens are worth the most to an attacker."""
    return (
        user.is_superuser
        or user.is_staff
        or Membership.objects.filter(user=user, role__in=[Membership.Role.OWNER, Membership.Role.ADMIN]).exists()
    )


@sensitive_post_parameters("code")
@login_required
def two_factor(request):
    device = TotpDevice.objects.filter(user=request.user).first()
    context = {"recommended": two_factor_recommended(request.user), "device": device}
    if device is not None and device.confirmed_at:
        return render(request, "registration/two_factor.html", context)
    # Off: the same unconfirmed secret until it is confirmed, so a reload does not invalidate a scanned one.
    device = twofactor.pending_device(request.user)
    secret = twofactor.secret_of(device)
    if request.method == "POST":
        if twofactor.verify(device, request.POST.get("code", "")):
            twofactor.turn_on(device)
            messages.success(request, "Two-factor authentication is on. Logging in now asks for a code.")
            return redirect("two-factor")
        context["error"] = CODE_WRONG
    context.update(
        device=device,
        secret=twofactor.grouped(secret),
        uri=twofactor.provisioning_uri(secret, request.user.get_username()),
    )
    return render(request, "registration/two_factor.html", context)


@sensitive_post_parameters("code")
@login_required
def two_factor_disable(request):
    """GET asks for a code; POST with a current one turns two-factor off (a stolen session alone cannot)."""
    device = twofactor.confirmed_device(request.user)
    context, status = {"device": device}, 200
    if request.method == "POST" and device is not None:
        username, address = request.user.get_username(), ratelimit.client_address(request)
        minutes = ratelimit.login_locked_minutes(username, address)
        if minutes:
            ratelimit.record_lockout_hit(username, address)
            context["error"], status = locked_message(minutes), 429
        elif twofactor.verify(device, request.POST.get("code", "")):
            twofactor.turn_off(device, address)
            messages.success(request, "Two-factor authentication is off.")
            return redirect("two-factor")
        else:
            minutes = ratelimit.record_login_failure(username, address, "two-factor code to turn it off")
            context["error"], status = (locked_message(minutes), 429) if minutes else (CODE_WRONG, 200)
    return render(request, "registration/two_factor_disable.html", context, status=status)


RESETS_PER_EMAIL = 3  # an hour: enough to retry a lost email, too few to flood an inbox
RESETS_PER_ADDRESS = 10  # an hour, from one client address, whichever emails it names


class PasswordResetView(auth_views.PasswordResetView):
    """Links point at SITE_URL, never at the Host header the request came with (which an
    attacker sets when asking for a reset of someone else's account)."""

    success_url = reverse_lazy("password-reset-done")

    def form_valid(self, form):
        # Reset emails are capped per address asked for and per client, so the form cannot be used
        # to flood someone's inbox; over the cap nothing is sent, and the page is the same as ever.
        email = form.cleaned_data["email"].strip().lower()
        client = ratelimit.client_address(self.request)
        over = ratelimit.hit("password-reset", f"email:{email}", RESETS_PER_EMAIL, 3600) or ratelimit.hit(
            "password-reset", f"address:{client}", RESETS_PER_ADDRESS, 3600
        )
        if over:
            return redirect(self.get_success_url())
        site = urlsplit(settings.SITE_URL)
        form.save(
            domain_override=site.netloc,
            use_https=site.scheme == "https",
            token_generator=self.token_generator,
            from_email=self.from_email,
            email_template_name=self.email_template_name,
            subject_template_name=self.subject_template_name,
            request=self.request,
            html_email_template_name=self.html_email_template_name,
            extra_email_context=self.extra_email_context,
        )
        logger.info("password reset asked from %s", ratelimit.client_address(self.request))
        # The same page whether or not the address has an account.
        return redirect(self.get_success_url())


urlpatterns = [
    path("login/two-factor/", login_two_factor, name="login-two-factor"),
    path("password/reset/", PasswordResetView.as_view(), name="password-reset"),
    path("password/reset/done/", auth_views.PasswordResetDoneView.as_view(), name="password-reset-done"),
    path(
        "password/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(success_url=reverse_lazy("password-reset-complete")),
        name="password-reset-confirm",
    ),
    path("password/reset/complete/", auth_views.PasswordResetCompleteView.as_view(), name="password-reset-complete"),
    path(
        "account/password/",
        auth_views.PasswordChangeView.as_view(success_url=reverse_lazy("password-change-done")),
        name="password-change",
    ),
    path("account/password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password-change-done"),
    path("account/two-factor/", two_factor, name="two-factor"),
    path("account/two-factor/disable/", two_factor_disable, name="two-factor-disable"),
]
