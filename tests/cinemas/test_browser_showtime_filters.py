"""The showtimes page's filters in a real browser, on a phone: Chromium through the real uvicorn (tests/browser.py)."""

import re
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from cinemas.models import Show
from tests.browser_flows import save_screenshot
from tests.factories import make_cinema, make_city, make_hall, make_movie, make_show

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 375, "height": 812}


def test_on_a_phone_a_moviegoer_picks_imax_in_the_filter_form_and_sees_only_the_imax_showtime(site, new_page):
    city = make_city(name="Springfield", state="Oregon")
    cinema = make_cinema(city=city, name="Riverside", time_zone="UTC")
    movie = make_movie(title="The Long Night")
    tomorrow = timezone.now().astimezone(ZoneInfo("UTC")).date() + timedelta(days=1)
    imax = make_show(movie=movie, hall=make_hall(cinema=cinema), starts_at=datetime.combine(tomorrow, time(10), UTC))
    make_show(movie=movie, hall=make_hall(cinema=cinema), starts_at=datetime.combine(tomorrow, time(19), UTC))
    Show.objects.filter(pk=imax.pk).update(format="IMAX")
    page = new_page(base_url=site, viewport=PHONE, is_mobile=True, has_touch=True, locale="en-US")

    page.goto(f"/cities/{city.pk}/movies/{movie.pk}/?date={tomorrow.isoformat()}")
    chips = page.locator("ul.showtimes > li")
    expect(chips).to_have_count(2)
    expect(page.get_by_role("img", name="The Long Night")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    save_screenshot(page, "showtimes-filtered-phone"), "the page fits a phone"

    page.locator("#filter-format").select_option("IMAX")
    page.get_by_role("button", name="Show these showtimes").tap()

    expect(page).to_have_url(re.compile(rf"date={tomorrow.isoformat()}&language=&format=IMAX&time=&price=$"))
    expect(chips).to_have_count(1)
    expect(chips.first).to_contain_text("10:00")
    expect(chips.first).to_contain_text("IMAX")
    expect(chips.first).to_contain_text("$10.00 to $15.00")
    expect(page.locator("time", has_text="19:00")).to_have_count(0)
    expect(page.locator("#filter-format")).to_have_value("IMAX")
    expect(page.locator('nav.days a[aria-current="date"]')).to_have_attribute("href", re.compile("format=IMAX"))
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    save_screenshot(page, "showtimes-filtered-phone")
