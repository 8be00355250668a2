"""The language switcher in a real browser, on a phone: Chromium through the real uvicorn (tests/browser.py)."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser_flows import save_screenshot, small_show

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 375, "height": 812}


def test_on_a_phone_the_header_s_switcher_turns_the_site_spanish_and_the_seat_map_s_script_speaks_it(site, new_page):
    show = small_show()
    page = new_page(base_url=site, viewport=PHONE, is_mobile=True, has_touch=True, locale="en-US")
    page.goto(f"/shows/{show.pk}/")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "the header fits a phone"

    # With the keyboard, as the form allows: focus the select, pick Spanish, Tab to the button and press it.
    language = page.get_by_label("Language")
    expect(language).to_be_visible()
    language.focus()
    language.select_option("es")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Change")).to_be_focused()
    page.keyboard.press("Enter")

    # Back on the same page, in Spanish, and remembered for the next pages.
    expect(page).to_have_url(re.compile(rf"/shows/{show.pk}/$"))
    expect(page.locator("html")).to_have_attribute("lang", "es")
    expect(page.get_by_role("button", name="Reservar estas butacas")).to_be_visible()
    expect(page.get_by_label("Idioma")).to_have_value("es")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    # The script's own sentences come from the site's Spanish catalog (/jsi18n/), with Spanish digits.
    page.get_by_role("checkbox", name=re.compile(r"^Fila A butaca 1,")).tap()
    page.get_by_role("checkbox", name=re.compile(r"^Fila A butaca 2,")).tap()
    expect(page.locator("#selection-summary")).to_have_text(re.compile(r"^2 butacas: A1, A2 · 35,00\xa0US\$"))
    save_screenshot(page, "seat-map-phone-es")

    page.goto("/")
    expect(page.get_by_role("heading", name="Elige tu ciudad")).to_be_visible()
    expect(page).to_have_title(re.compile("Elige tu ciudad · Entradas de cine"))
