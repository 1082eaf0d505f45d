"""TOTP second factor (RFC 6238: 30-second steps, 6 digits, SHA-1), as authenticator apps expect.

pyotp computes the codes; what it does not do is remember which step was used, so a code
seen over someone's shoulder (or replayed from a proxy log) would work again for up to
a minute and a half. ``verify`` records the step it accepted and refuses it and every
earlier one from then on.
"""

import hmac
import logging
import time

import pyotp
from django.utils import timezone

from reports.models import TotpDevice
from reports.tenancy.secrets import decrypt, encrypt

logger = logging.getLogger("reports.security")

ISSUER = "dmarcdash"
STEP_SECONDS = 30
DIGITS = 6
# Phones' clocks drift and people type slowly: the step before and after are accepted too.
WINDOW = 1


def now() -> float:
    """The clock codes are checked against (tests move it instead of sleeping)."""
    return time.time()


def new_secret() -> str:
    return pyotp.random_base32()


def grouped(secret: str) -> str:
    """The secret in blocks of four, easier to type into an app by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def provisioning_uri(secret: str, username: str) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(name=username, issuer_name=ISSUER)


def secret_of(device: TotpDevice) -> str:
    return decrypt(device.secret_encrypted)


def pending_device(user) -> TotpDevice:
    """The user's device not confirmed yet, made with a fresh secret if there is none."""
    device, _ = TotpDevice.objects.get_or_create(
        user=user, defaults={"secret_encrypted": encrypt(new_secret()), "confirmed_at": None}
    )
    return device


def confirmed_device(user) -> TotpDevice | None:
    if user is None or not getattr(user, "pk", None):
        return None
    return TotpDevice.objects.filter(user=user, confirmed_at__isnull=False).first()


def normalize(code: str) -> str:
    return "".join((code or "").split())


def verify(device: TotpDevice, code: str) -> bool:
    """True once per step for a code valid now (one step either way); the step is then used up."""
    code = normalize(code)
    if len(code) != DIGITS or not code.isdigit():
        return False
    totp = pyotp.TOTP(secret_of(device), digits=DIGITS, interval=STEP_SECONDS)
    current = int(now()) // STEP_SECONDS
    for step in range(current - WINDOW, current + WINDOW + 1):
        if step <= device.last_step or not hmac.compare_digest(totp.generate_otp(step), code):
            continue
        # Conditional update: of two requests racing with the same code only one wins.
        if TotpDevice.objects.filter(pk=device.pk, last_step__lt=step).update(last_step=step):
            device.last_step = step
            return True
        return False
    return False


def turn_on(device: TotpDevice) -> None:
    """Confirm a pending device once its first code was accepted: logins ask for a code from now on."""
    device.confirmed_at = timezone.now()
    device.save(update_fields=["confirmed_at"])
    logger.info("two-factor turned on for %r", device.user.get_username())


def turn_off(device: TotpDevice, address: str) -> None:
    username = device.user.get_username()
    device.delete()
    logger.info("two-factor turned off for %r from %s", username, address)
