"""The browser harness: a real login in headless Chromium, and the page watch that fails tests."""

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Browser, expect

from tests.support.browser import logged_in, screenshot, settle, watch

pytestmark = pytest.mark.browser

# A made-up origin the browser never reaches: page.route answers for it.
ORIGIN = "http://harness.test"


def test_it_logs_in_through_the_form_and_shows_the_user_in_the_header(page, live_server):
    User.objects.create_user("alice", password="alice-password")
    page.goto(f"{live_server.url}/")
    expect(page.locator("input[name=username]")).to_be_visible()

    logged_in(page, live_server, "alice", "alice-password")

    assert page.url == f"{live_server.url}/"
    expect(page.locator("header")).to_contain_text("alice")
    assert screenshot(page, "login-home").stat().st_size > 0


def test_it_catches_a_csp_violation(browser: Browser):
    context = browser.new_context()
    problems = watch(context)
    tab = context.new_page()
    html = """<meta http-equiv="Content-Security-Policy" content="script-src 'none'">
        <script>window.ran = true</script>"""
    tab.route(f"{ORIGIN}/", lambda route: route.fulfill(content_type="text/html", body=html))

    tab.goto(f"{ORIGIN}/")
    settle(tab)
    context.close()

    assert [v["directive"] for v in problems.csp_violations] == ["script-src-elem"]
    assert "CSP violation" in problems.failure()


def test_it_catches_an_uncaught_page_error(browser: Browser):
    context = browser.new_context()
    problems = watch(context)
    tab = context.new_page()
    tab.route(f"{ORIGIN}/", lambda route: route.fulfill(content_type="text/html", body="<p>fine</p>"))
    tab.goto(f"{ORIGIN}/")

    tab.evaluate("() => { setTimeout(() => { throw new Error('chart data missing') }, 0) }")
    settle(tab)
    context.close()

    assert problems.page_errors == ["chart data missing"]
    assert "uncaught page error: chart data missing" in problems.failure()


def test_it_passes_a_page_that_keeps_its_policy(browser: Browser):
    context = browser.new_context()
    problems = watch(context)
    tab = context.new_page()
    html = """<meta http-equiv="Content-Security-Policy" content="script-src 'none'"><p>no scripts here</p>"""
    tab.route(f"{ORIGIN}/", lambda route: route.fulfill(content_type="text/html", body=html))

    tab.goto(f"{ORIGIN}/")
    settle(tab)
    context.close()

    assert problems.failure() is None
