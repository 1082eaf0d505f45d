"""Chart figures: a long period in weekly bars, the day still being reported marked, selector lines."""

import datetime

from reports.dashboard import charts

TODAY = datetime.datetime.now(datetime.UTC).date()


def days(count: int, messages: int = 10, passing: int = 8) -> list[dict]:
    """``count`` daily rows ending today, as stats.daily gives them."""
    start = TODAY - datetime.timedelta(days=count - 1)
    rows = []
    for offset in range(count):
        rows.append(
            {
                "date": start + datetime.timedelta(days=offset),
                "messages": messages,
                "both": passing,
                "failing": messages - passing,
                "passing": passing,
                "dkim_aligned": passing,
                "spf_aligned": 0,
            }
        )
    return rows


def test_weeks_sum_their_days_and_start_on_monday_within_the_period():
    monday = datetime.date(2026, 11, 2)
    rows = [
        {"date": monday + datetime.timedelta(days=offset), "messages": 10, "passing": 5 + offset, "partial": False}
        for offset in range(2, 10)  # Wednesday to the next Wednesday
    ]
    weeks = charts.by_week(rows)
    assert [week["date"] for week in weeks] == [
        monday + datetime.timedelta(days=2),
        monday + datetime.timedelta(days=7),
    ]
    assert [week["messages"] for week in weeks] == [50, 30]
    assert weeks[0]["passing_rate"] == (7 + 8 + 9 + 10 + 11) / 50
    assert weeks[1]["passing"] == 12 + 13 + 14


def test_a_week_of_no_messages_has_no_rate_rather_than_zero():
    (week,) = charts.by_week([{"date": datetime.date(2026, 11, 2), "messages": 0, "passing": 0}])
    assert week["passing_rate"] is None


def test_a_short_period_is_drawn_per_day_and_a_long_one_per_week():
    short = charts.messages_per_day(days(30))
    assert len(short["data"][0]["x"]) == 30
    assert "per UTC day" in short["layout"]["title"]["text"]
    long = charts.messages_per_day(days(180))
    assert 26 <= len(long["data"][0]["x"]) <= 27
    assert "per UTC week" in long["layout"]["title"]["text"]
    assert sum(long["data"][0]["y"]) == sum(short["data"][0]["y"]) * 6  # every day counted once
    rates = charts.pass_rate(days(180))
    assert len(rates["data"][0]["x"]) == len(long["data"][0]["x"])
    assert set(rates["data"][0]["y"]) == {80.0}


def test_today_is_drawn_pale_and_labelled_so_far():
    figure = charts.messages_per_day(days(7))
    opacity = list(figure["data"][0]["marker"]["opacity"])
    assert opacity[:-1] == [1.0] * 6
    assert opacity[-1] < 1.0
    (note,) = figure["layout"]["annotations"]
    assert (note["x"], note["text"]) == (TODAY.isoformat(), "so far")


def test_a_period_ending_before_today_has_no_partial_bar():
    rows = [{**row, "date": row["date"] - datetime.timedelta(days=10)} for row in days(7)]
    figure = charts.messages_per_day(rows)
    assert set(figure["data"][0]["marker"]["opacity"]) == {1.0}
    assert not figure["layout"].get("annotations")


def test_each_selector_is_a_line_with_gaps_where_it_signed_nothing():
    dates = [TODAY - datetime.timedelta(days=offset) for offset in (2, 1, 0)]
    series = {
        ("example.com", "s1"): {dates[0]: (10, 10), dates[1]: (10, 0), dates[2]: (4, 0)},
        ("esp.example", "k2"): {dates[2]: (8, 6)},
    }
    figure = charts.selector_pass_rates(dates, series)
    first, second = figure["data"]
    assert first["name"] == "s=s1 d=example.com"
    assert list(first["y"]) == [100.0, 0.0, 0.0]
    assert list(second["y"]) == [None, None, 75.0]


def test_long_bar_labels_are_cut_and_kept_whole_in_the_hover():
    rows = [
        {"source_ip": "192.0.2.11", "name": "Own mail server (mail.demo-shop.example)", "passing": 5, "failing": 0},
        {"source_ip": "2001:db8:5e0:1::25", "name": "Own mail server (mail.demo-shop.example)", "passing": 3},
        {"source_ip": "192.0.2.1", "name": "", "passing": 1},
    ]
    figure = charts.by_key(rows, "Top sources", lambda row: f"{row['source_ip']} {row['name']}".strip())
    bars = figure["data"][0]
    assert list(bars["y"]) == ["192.0.2.1", "2001:db8:5e0:1::25 Own mail s…", "192.0.2.11 Own mail server (m…"]
    assert list(bars["customdata"])[-1] == "192.0.2.11 Own mail server (mail.demo-shop.example)"
    assert charts.short_labels(["a" * 40 + "x", "a" * 40 + "y"]) == ["a" * 40 + "x", "a" * 40 + "y"]
