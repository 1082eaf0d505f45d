"""The TLS charts: sessions per day stacked succeeded and failed, failed sessions by result type."""

import datetime

from reports.dashboard import charts

TODAY = datetime.datetime.now(datetime.UTC).date()


def days(count: int, successful: int = 90, failed: int = 10) -> list[dict]:
    """``count`` daily rows ending today, as dashboard/tls.py's ``daily`` gives them."""
    start = TODAY - datetime.timedelta(days=count - 1)
    return [
        {
            "date": start + datetime.timedelta(days=offset),
            "successful": successful,
            "failed": failed,
            "sessions": successful + failed,
        }
        for offset in range(count)
    ]


def test_sessions_per_day_stack_succeeded_on_failed():
    figure = charts.tls_sessions_per_day(days(7))
    succeeded, failed = figure["data"]
    assert (succeeded["name"], failed["name"]) == ("Succeeded", "Failed")
    assert succeeded["type"] == failed["type"] == "bar"
    assert list(succeeded["y"]) == [90] * 7 and list(failed["y"]) == [10] * 7
    assert list(succeeded["x"]) == [row["date"].isoformat() for row in days(7)]
    assert (succeeded["marker"]["color"], failed["marker"]["color"]) == (charts.PASSING, charts.FAIL)
    assert figure["layout"]["barmode"] == "stack"
    assert figure["layout"]["title"]["text"] == "TLS sessions per UTC day"
    assert figure["layout"]["yaxis"]["title"]["text"] == "sessions"


def test_today_is_drawn_pale_and_marked_so_far():
    figure = charts.tls_sessions_per_day(days(3))
    assert list(figure["data"][0]["marker"]["opacity"]) == [1.0, 1.0, 0.35]
    (note,) = figure["layout"]["annotations"]
    assert (note["x"], note["y"], note["text"]) == (TODAY.isoformat(), 100, "so far")


def test_a_day_without_sessions_is_a_zero_and_today_without_any_has_no_note():
    rows = days(2)
    rows[-1] |= {"successful": 0, "failed": 0, "sessions": 0}
    figure = charts.tls_sessions_per_day(rows)
    assert list(figure["data"][1]["y"]) == [10, 0]
    assert not figure["layout"].get("annotations")


def test_a_long_period_is_drawn_per_week():
    figure = charts.tls_sessions_per_day(days(120, successful=5, failed=1))
    succeeded, failed = figure["data"]
    assert figure["layout"]["title"]["text"] == "TLS sessions per UTC week"
    assert 17 <= len(succeeded["x"]) <= 19
    assert sum(succeeded["y"]) == 600 and sum(failed["y"]) == 120
    assert max(succeeded["y"]) == 35  # a whole week
    assert succeeded["x"][0] == (TODAY - datetime.timedelta(days=119)).isoformat()  # the period's first day


def test_result_types_are_bars_with_the_most_failures_on_top():
    rows = [
        {"result_type": "certificate-expired", "failed_sessions": 40},
        {"result_type": "starttls-not-supported", "failed_sessions": 12},
        {"result_type": "", "failed_sessions": 1},
    ]
    figure = charts.tls_result_types(rows)
    (bars,) = figure["data"]
    assert bars["orientation"] == "h" and bars["marker"]["color"] == charts.FAIL
    # Plotly draws the first category at the bottom: the list is reversed so the largest is on top.
    assert list(bars["y"]) == ["(not given)", "starttls-not-supported", "certificate-expired"]
    assert list(bars["x"]) == [1, 12, 40]
    assert figure["layout"]["title"]["text"] == "Failed TLS sessions by result type"
    assert figure["layout"]["showlegend"] is False


def test_a_long_result_type_is_cut_on_its_bar_and_whole_in_the_hover():
    name = "x-" + "very-long-vendor-specific-result-" * 3
    (bars,) = charts.tls_result_types([{"result_type": name, "failed_sessions": 2}])["data"]
    assert bars["y"][0].endswith("…") and len(bars["y"][0]) == charts.LABEL_CHARS
    assert list(bars["customdata"]) == [name]


def test_the_result_type_chart_grows_with_its_rows():
    rows = [{"result_type": f"type-{n}", "failed_sessions": n} for n in range(1, 16)]
    assert charts.tls_result_types(rows)["layout"]["height"] > charts.tls_result_types(rows[:2])["layout"]["height"]
