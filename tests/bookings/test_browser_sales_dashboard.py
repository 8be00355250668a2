"""The sales dashboard in a real browser (Chromium through the real uvicorn), on a phone: a cinema's staff member
logs in, sees the charts and the tables of the last 14 days, narrows them to one movie and downloads the CSV.

The server runs on the real clock, so the shows are yesterday's and the day before's, booked three days ago. The
counter's sale is a booking whose channel the test sets (the box office's own service is not on this branch).
"""

import csv
import io
import re
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.contrib.auth.hashers import make_password
from django.utils import timezone
from playwright.sync_api import expect

from bookings.models import Reservation
from cinemas.models import StaffRole
from tests.bookings.test_sales_dashboard import book
from tests.browser_flows import save_screenshot
from tests.factories import STAFF_PASSWORD, make_cinema, make_hall, make_movie, make_show, make_staff_member

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 375, "height": 812}


@pytest.fixture
def cinema_with_sales():
    now = timezone.now()
    with time_machine.travel(now - timedelta(days=3), tick=False):
        cinema = make_cinema(name="Union Square", time_zone="UTC")
        hall = make_hall(cinema=cinema, plan="PPPPPP\nRRRRRRRRRRRRRRRR", name="Hall 1")
        night = make_show(movie=make_movie(title="The Long Night"), hall=hall, starts_at=now - timedelta(days=2))
        light = make_show(movie=make_movie(title="Morning Light"), hall=hall, starts_at=now - timedelta(days=1))
        book(night, ["A1", "A2"], session="alice")
        counter = book(night, ["B1", "B2", "B3"], session="counter")
        Reservation.objects.filter(pk=counter.pk).update(channel=Reservation.Channel.BOX_OFFICE)
        book(light, ["B1"], session="erin")
    staff = make_staff_member(roles=[(cinema, StaffRole.STAFF)], username="sales-desk")
    # Hashed as the server hashes (the tests' own fast hasher is not in its settings).
    staff.password = make_password(STAFF_PASSWORD, hasher="pbkdf2_sha256")
    staff.save(update_fields=["password"])
    return {"cinema": cinema, "night": night, "light": light, "staff": staff}


def test_staff_see_filter_and_download_the_sales_on_a_phone(site, new_page, cinema_with_sales):
    page = new_page(base_url=site, viewport=PHONE, accept_downloads=True)
    page.goto("/staff/sales/")
    expect(page).to_have_url(re.compile(r"/admin/login/\?next="))
    page.get_by_label("Username").fill("sales-desk")
    page.get_by_label("Password").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_role("heading", name="Sales", level=1)).to_be_visible()
    expect(page.get_by_role("link", name="Sales", exact=True)).to_have_attribute("aria-current", "page")
    seats_chart = page.get_by_role("img", name=re.compile("Seats sold per day, online and at the box office"))
    expect(seats_chart).to_be_visible()
    expect(seats_chart.locator("rect.bar-online")).to_have_count(2)
    # The page's own style sheet (a <style> with the nonce) colours the bars.
    fill = seats_chart.locator("rect.bar-box-office").first.evaluate("(bar) => getComputedStyle(bar).fill")
    assert fill == "rgb(224, 138, 0)"
    by_day = page.get_by_role("region", name="By day")
    expect(by_day.locator("tbody tr")).to_have_count(2)
    expect(by_day.locator("tbody tr").first.locator("td").first).to_have_text("5")  # 2 online + 3 at the counter
    by_show = page.get_by_role("region", name="By show")
    expect(by_show).to_contain_text("The Long Night")

    # At 375 px the tables scroll sideways inside their box; the page itself does not.
    assert by_day.evaluate("(box) => box.scrollWidth > box.clientWidth")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    save_screenshot(page, "sales-dashboard-phone")

    page.get_by_label("Movie", exact=True).select_option(label="Morning Light")
    page.get_by_role("button", name="Show the sales").click()
    expect(by_day.locator("tbody tr")).to_have_count(1)
    expect(by_day.locator("tbody tr").first.locator("td").first).to_have_text("1")
    expect(page.get_by_role("region", name="By movie")).not_to_contain_text("The Long Night")

    with page.expect_download() as download:
        page.get_by_role("link", name="Download these figures (CSV)").click()
    assert re.fullmatch(r"sales-\d{4}-\d\d-\d\d-\d{4}-\d\d-\d\d\.csv", download.value.suggested_filename)
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8"))))
    assert {(row["table"], row["movie"], row["sold"], row["currency"]) for row in rows if row["table"] == "movie"} == {
        ("movie", "Morning Light", "1", "USD")
    }
