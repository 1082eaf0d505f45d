"""The guided policy workflow in a real browser: monitor to reject over simulated weeks of reports.

An owner walks example.com through every stage by clicking, as an operator would: read the record
the page asks for, publish it (here: replace the TXT record in the local DNS server the app is
pointed at), check DNS, move on. Weeks pass in Python between clicks: reports that echo the newly
published policy arrive through the real ingest path, the stage's start is backdated and readiness
recomputed, then the page is reloaded. The ``page`` fixture fails the test on any
Content-Security-Policy violation or uncaught error on any of the pages.
"""

import re

import pytest
from playwright.sync_api import Page, expect

from reports.lib import stages
from reports.models import Domain
from reports.rollout import readiness
from tests.support.browser import logged_in, screenshot
from tests.support.rollout import RUA, backdate, publish, weeks_of_mail

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("cheap_passwords")]


@pytest.fixture
def example_com(olivia, own_servers) -> Domain:
    """The domain Olivia walks to reject: example.com, sent from Acme's own servers."""
    return Domain.objects.get(name="example.com")


def echoed(record: str) -> str:
    """The <policy_published> tags a receiver reports for ``record``."""
    tags = dict(part.strip().split("=", 1) for part in record.split(";"))
    return f"<p>{tags['p']}</p><pct>{tags.get('pct', '100')}</pct><testing>{tags.get('t', 'n')}</testing>"


def weeks_pass(page: Page, domain: Domain, stage: str, record: str) -> None:
    """Two weeks of good mail under ``record``, reported by two large receivers; then the page is reloaded."""
    weeks_of_mail(stage, echoed(record), range(15))
    backdate(15)
    readiness.refresh(domain)
    page.reload()


def test_an_owner_clicks_a_domain_from_monitor_to_reject(page, live_server, example_com, dns_zone):
    # 1. Forty days under p=none, with the record in DNS that the domain starts from.
    weeks_of_mail("monitor", "<p>none</p>", range(40))
    publish(dns_zone, f"v=DMARC1; p=none; rua={RUA}")

    # 2. Log in, open the domain, then its Policy tab.
    logged_in(page, live_server, "olivia", "olivia-password")
    page.click("main table a:text-is('example.com')")
    page.wait_for_url(f"{live_server.url}/domains/example.com/")
    page.click("nav.tabs a:text-is('Policy')")
    page.wait_for_url(f"{live_server.url}/domains/example.com/policy/")
    expect(page.locator("nav.tabs a.active")).to_have_text("Policy")
    expect(page.locator("#current-stage")).to_have_text("S1 Monitor")

    # 3. DNS shows p=none, not the next stage's record: the move is offered but cannot be clicked.
    page.click("#check-dns")
    expect(page.locator("#dns-record")).to_have_text(f"v=DMARC1; p=none; rua={RUA}")
    expect(page.locator("#dns-status")).to_contain_text("DNS does not show the record of “S2 Quarantine, testing mode”")
    expect(page.locator("#advance")).to_be_disabled()
    expect(page.locator("#advance")).to_have_attribute("title", "publish the record and check DNS first")

    # 4. The monitor weeks are over: every check is met and the page says the domain may move on.
    backdate(40)
    readiness.refresh(example_com)
    page.reload()
    expect(page.locator("#ready")).to_have_text("Ready for the next stage.")
    checks = page.locator("#checks tbody tr")
    expect(checks).to_have_count(5)  # M5, M4, M1, M3 and the days in the stage
    expect(checks.filter(has_text="not met")).to_have_count(0)
    expect(page.locator("#what-if")).to_have_count(0)  # nothing authorised or not would fail
    expect(page.locator("#record-value")).to_have_text(f"v=DMARC1; p=quarantine; t=y; pct=0; rua={RUA}")
    screenshot(page, "policy-monitor")

    # 5. Each stage: publish what the page asks for, check DNS, move on; weeks pass under the new record.
    labels = [stage.label for stage in stages.STAGES]
    published = []
    while page.locator("#advance").count():
        current = page.locator("#current-stage").inner_text()
        target = labels[labels.index(current) + 1]
        expect(page.locator("main h2", has_text="Next:")).to_have_text(f"Next: {target}")
        record = page.locator("#record-value").inner_text()
        assert f"rua={RUA}" in record, record
        if "pct=" in record:
            expect(page.locator("main")).to_contain_text(stages.PCT_NOTE)
        expect(page.locator("#advance")).to_be_disabled()

        publish(dns_zone, record)  # the operator publishes it at their DNS host
        page.click("#check-dns")
        expect(page.locator("#dns-record")).to_have_text(record)
        expect(page.locator("#dns-status")).to_have_text(f"DNS shows the record of “{target}”.")
        expect(page.locator("#advance")).to_be_enabled()
        expect(page.locator("#advance")).to_have_text(f"Move to “{target}”")

        page.click("#advance")
        expect(page.locator("#current-stage")).to_have_text(target)
        expect(page.locator("main")).to_contain_text(f"example.com is now at “{target}”.")
        expect(page.locator("#stages li.current")).to_contain_text(target)
        published.append(record)

        stage = stages.STAGES[labels.index(target)].key
        weeks_pass(page, example_com, stage, record)
        expect(page.locator("#current-stage")).to_have_text(target)
        if stage != "reject":
            expect(page.locator("#ready")).to_have_text("Ready for the next stage.")
        if stage == "quarantine-25":
            expect(page.locator("#record-value")).to_contain_text("pct=50")
            expect(page.locator("main")).to_contain_text(stages.PCT_NOTE)
            screenshot(page, "policy-ramp")

    # 6. At reject there is nothing to publish and nowhere further to go; one step back is offered.
    expect(page.locator("#current-stage")).to_have_text("S5 Reject")
    expect(page.locator("#record-value")).to_have_count(0)
    expect(page.locator("#dns-status")).to_have_count(0)
    expect(page.locator("#rollback-button")).to_have_text("Roll back to “S4 Reject, testing mode”")
    expect(page.locator("#stages li.done")).to_have_count(len(labels) - 1)
    assert published[-1] == f"v=DMARC1; p=reject; rua={RUA}"
    assert len(published) == len(labels) - 1

    # 7. The history lists every move, newest first, by olivia, with the record DNS showed.
    moves = page.locator("#history tbody tr", has_text="Moved to the next stage")
    expect(moves).to_have_count(len(labels) - 1)
    steps = zip(labels[:-1], labels[1:], published, strict=True)
    for row, (before, after, record) in zip(reversed(moves.all()), steps, strict=True):
        cells = row.locator("td")
        expect(cells.nth(1)).to_have_text("olivia")
        expect(cells.nth(2)).to_have_text(f"Moved to the next stage: {before} → {after}")
        expect(cells.nth(3)).to_have_text(record)
    expect(page.locator("#history tbody tr", has_text="DNS checked")).to_have_count(len(labels))
    expect(page.locator("#history")).not_to_contain_text(re.compile("Rollback advised|Rolled back"))
    screenshot(page, "policy-reject")
