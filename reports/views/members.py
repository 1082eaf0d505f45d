"""Members of an organization: the list, invitations, role changes and removal; switching organizations."""

urlpatterns = []
