"""How every URL is scoped, one module per area; the isolation and permission tests walk the
URL resolver and fail for a URL without a rule here.

A Rule says:
- ``outsider``: "404" (the URL names another organization's object: a stranger gets 404),
  "list" (a page of the visitor's own things: it must not show another organization's),
  "open" (anyone, logged in or not: login, password reset, invitation links);
- ``method``: the method that uses it (POST-only actions are walked with POST);
- ``role``: the least role in the organization that may use it ("viewer", "admin", "owner"), or
  "operator" for superusers only; a member below it gets 404 or 403, like a stranger.
"""

import importlib
import pkgutil
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    outsider: str
    method: str = "GET"
    role: str = "viewer"


def all_rules() -> dict[str, Rule]:
    rules: dict[str, Rule] = {}
    for module in pkgutil.iter_modules(__path__):
        area = importlib.import_module(f"{__name__}.{module.name}")
        overlap = set(rules) & set(area.RULES)
        assert not overlap, f"{module.name} repeats rules for {overlap}"
        rules.update(area.RULES)
    return rules
