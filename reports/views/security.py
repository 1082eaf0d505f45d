"""Accounts: password reset by email, TOTP two-factor, login throttling."""

urlpatterns = []
