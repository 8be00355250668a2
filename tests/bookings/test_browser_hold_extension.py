"""More time for a hold in a real browser (WCAG 2.2.1): the countdown warns a minute before the end with the
Extend button beside the warning, extending starts the countdown again from the new time and keeps a card half
typed, and afterwards the button is gone. Short clocks (site_with), so the minute before the end comes soon.
Without a script the form is a plain POST back to checkout: tests/bookings/test_hold_extension.py
(TestTheCheckoutPage).
"""

import re

import pytest
from playwright.sync_api import expect

from bookings.models import Reservation
from tests.browser_flows import (
    GOOD_CARD,
    choose_and_hold,
    expect_ticket,
    fill_card,
    pay_button,
    save_screenshot,
    small_show,
)

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 375, "height": 812}
HOLD_SECONDS = 64  # the warning comes under WARN_AT_SECONDS (60) before the end: 5 s after checkout opens
EXTENSION_SECONDS = 10


def seconds_shown(page):
    """The countdown's "m:ss" in seconds."""
    minutes, seconds = page.locator("#hold-countdown").inner_text().split(":")
    return int(minutes) * 60 + int(seconds)


def test_the_countdown_warns_with_the_extend_button_and_extending_starts_it_again_once(site_with, new_page):
    site = site_with(TICKETING_HOLD_SECONDS=HOLD_SECONDS, TICKETING_HOLD_EXTENSION_SECONDS=EXTENSION_SECONDS)
    page = new_page(base_url=site, viewport=PHONE)
    page.goto(f"/shows/{small_show().pk}/")
    reservation_id = choose_and_hold(page, "B1", "B2")
    extend_button = page.locator("#hold-extend").get_by_role("button", name="Add 10 seconds")
    warning = page.get_by_role("alert")
    expect(extend_button).to_be_visible()  # offered from the start (and without a script: a plain form)
    expect(warning).to_have_count(0)
    page.get_by_label("Card number").fill(GOOD_CARD)

    # A minute before the end: the warning, said to screen readers (role="alert"), with the button beside it.
    expect(warning).to_have_text(
        "Less than a minute left to pay before your seats are released. Press “Add 10 seconds” for more time.",
        timeout=8000,
    )
    assert 20 <= seconds_shown(page) < 60
    expect(page.locator("#hold-extend")).to_have_class(re.compile(r"hold-extend--warning"))
    expect(extend_button).to_be_visible()
    expect(extend_button).to_be_in_viewport()
    save_screenshot(page, "checkout-extend-warning", full_page=False)
    left_before = seconds_shown(page)
    extend_button.click()

    # The countdown starts again from the new time; the card typed so far is still there.
    expect(warning).to_have_text("Your hold is extended: the time left starts again.")
    expect(page.locator("#hold-countdown")).not_to_have_class(re.compile(r"countdown--urgent"))
    assert seconds_shown(page) >= left_before + EXTENSION_SECONDS - 2
    expect(page.get_by_label("Card number")).to_have_value(GOOD_CARD)
    reservation = Reservation.objects.get(pk=reservation_id)
    assert reservation.extensions == 1
    assert (reservation.expires_at - reservation.created_at).total_seconds() == HOLD_SECONDS + EXTENSION_SECONDS

    # Once only: the button is gone, the page says so, and so does the warning when it comes again.
    expect(page.locator("#extend-button")).to_have_count(0)
    expect(page.locator("#extend-used")).to_have_text("This hold has been extended once and can't be extended again.")
    expect(page.locator("#extend-used")).to_be_focused()
    expect(warning).to_have_text(
        "Less than a minute left to pay before your seats are released. This hold can't be extended again.",
        timeout=EXTENSION_SECONDS * 1000 + 5000,
    )
    assert 50 <= seconds_shown(page) < 60

    # And the hold is paid for as any other.
    fill_card(page, GOOD_CARD)
    pay_button(page).click()
    expect_ticket(page, reservation_id)


def test_a_second_tab_pressing_extend_is_told_the_hold_was_extended_and_shows_its_new_time(site_with, new_page):
    site = site_with(TICKETING_HOLD_EXTENSION_SECONDS=EXTENSION_SECONDS)
    first = new_page(base_url=site)
    first.goto(f"/shows/{small_show().pk}/")
    reservation_id = choose_and_hold(first, "B1", "B2")
    second = first.context.new_page()  # the same browser (session), another tab
    second.goto(f"/holds/{reservation_id}/")
    first.get_by_role("button", name="Add 10 seconds").click()
    expect(first.get_by_role("alert")).to_have_text("Your hold is extended: the time left starts again.")
    left_in_first = seconds_shown(first)

    second.get_by_role("button", name="Add 10 seconds").click()

    expect(second.get_by_role("alert")).to_have_text("This hold was already extended once; it can't be extended again.")
    expect(second.locator("#extend-button")).to_have_count(0)
    assert abs(seconds_shown(second) - left_in_first) <= 2  # the new time, as the server has it
    assert Reservation.objects.get(pk=reservation_id).extensions == 1
