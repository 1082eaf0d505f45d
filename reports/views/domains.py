"""Adding a domain, the records to publish for it, the live check, and claiming its earlier reports."""

urlpatterns = []
