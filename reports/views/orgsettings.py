"""An organization's settings: mailboxes, API tokens, alert defaults, retention, unverified reports; the audit log."""

urlpatterns = []
