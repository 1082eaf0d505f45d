"""Alerts, in three steps: ``detect`` records the events an operator must not miss, ``deliver``
emails them to the members who asked, ``jobs`` are what the schedule runs; ``triage`` is what
owners and admins do about an event (acknowledge, mute) and ``subscriptions`` what each member
asks to receive."""
