"""The home page in a real browser: Chromium through the real uvicorn (the fixtures are in tests/browser.py)."""

import re

import pytest
from playwright.sync_api import expect

from tests.factories import make_cinema, make_city

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_moviegoer_sees_a_city_with_a_cinema_on_the_home_page_in_chromium(site, new_page, tmp_path):
    make_cinema(city=make_city(name="Springfield", state="Oregon"))
    page = new_page(base_url=site)

    page.goto("/")

    expect(page).to_have_title(re.compile("Pick your city"))
    city = page.locator("ul.cities li").filter(has_text="Springfield")
    expect(city.get_by_role("link", name="Springfield")).to_be_visible()
    expect(city).to_contain_text("1 cinema")
    screenshot = tmp_path / "home.png"
    page.screenshot(path=screenshot, full_page=True)
    assert screenshot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and screenshot.stat().st_size > 1000
