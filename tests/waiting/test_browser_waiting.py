"""The waiting page in real browsers: a moviegoer who found every seat held waits in line, and is taken to the seats
held for them when another moviegoer gives a hold up, over the WebSocket or, without one, the long poll.

Two browser contexts are two moviegoers. Fixtures: tests/browser.py; shared steps: tests/browser_flows.py.
"""

import re

import pytest
from playwright.sync_api import expect

from bookings.models import Reservation
from tests.browser_flows import LiveChannel, choose_and_hold, save_screenshot, seat, small_show
from waiting.models import Waiter

pytestmark = pytest.mark.django_db(transaction=True)

EVERY_SEAT = ("A1", "A2", "A3", "A4")


def hold_every_seat(page, show):
    page.goto(f"/shows/{show.pk}/")
    return choose_and_hold(page, *EVERY_SEAT)


def join_the_line(page, show):
    """On the seat map of a show whose every seat is held: ask for the best two, and take the offer to wait."""
    page.goto(f"/shows/{show.pk}/")
    for label in EVERY_SEAT:
        expect(seat(page, label)).to_be_disabled()
    page.get_by_role("button", name="Best available").click()

    offer = page.get_by_role("alert")
    expect(offer).to_contain_text("Every seat that could be yours is held by someone paying right now.")
    expect(offer.get_by_label("Seats")).to_have_value("2")
    offer.get_by_role("button", name="Wait in line").click()

    expect(page.get_by_role("heading", name="Waiting for seats", level=1)).to_be_visible()
    expect(page.locator("#waiting-position")).to_have_text("1")
    expect(page.locator("#waiting-status")).to_have_text("Waiting")
    return re.search(r"/waiting/([^/]+)/", page.url).group(1)


def cancel_the_hold(page):
    page.get_by_role("button", name="Cancel the hold").click()
    expect(page.get_by_role("status").filter(has_text="Your hold is cancelled")).to_be_visible()


def expect_served_on_the_seat_map(page, show, waiter_id):
    """The waiter's page went to the seat map by itself, where the seats held for them are theirs."""
    expect(page).to_have_url(re.compile(rf"/shows/{show.pk}/$"), timeout=10_000)
    yours = page.locator(".seat-grid .seat--yours")
    expect(yours).to_have_count(2)
    for index in range(2):
        expect(yours.nth(index).get_by_role("checkbox")).to_be_checked()
        expect(yours.nth(index).get_by_role("checkbox")).to_have_accessible_name(re.compile(r", held by you$"))
    expect(page.get_by_role("link", name="Continue to payment")).to_be_visible()
    waiter = Waiter.objects.get(pk=waiter_id)
    assert waiter.status == "Seats Available"
    (reservation,) = Reservation.objects.filter(show=show, status=Reservation.Status.RESERVED)
    assert len(reservation.seat_labels()) == 2


def test_a_waiter_is_taken_to_the_seats_held_for_them_when_a_hold_in_another_browser_is_cancelled(site, new_page):
    show = small_show(plan="RRRR")
    holder = new_page(base_url=site)
    hold_every_seat(holder, show)
    waiter_page = new_page(base_url=site)
    line = LiveChannel(waiter_page, "/ws/waitlist/")

    waiter_id = join_the_line(waiter_page, show)
    line.wait_until_greeted()
    save_screenshot(waiter_page, "waiting")
    cancel_the_hold(holder)

    expect_served_on_the_seat_map(waiter_page, show, waiter_id)
    waiter_page.get_by_role("link", name="Continue to payment").click()
    expect(waiter_page.get_by_role("heading", name="Checkout", level=1)).to_be_visible()
    expect(waiter_page.locator("#held-seats")).to_have_text(re.compile(r"^A\d, A\d$"))


def test_a_waiter_whose_browser_has_no_websocket_is_served_through_the_long_poll(site, new_page):
    show = small_show(plan="RRRR")
    holder = new_page(base_url=site)
    hold_every_seat(holder, show)
    waiter_page = new_page(base_url=site)
    # Every WebSocket of this browser is closed as soon as it is opened (a proxy that refuses them).
    waiter_page.context.route_web_socket(re.compile(r"/ws/"), lambda socket: socket.close())

    with waiter_page.expect_request(re.compile(r"/waiting/[^/]+/poll\?")) as first_poll:
        waiter_id = join_the_line(waiter_page, show)
    assert "wait=30" in first_poll.value.url
    cancel_the_hold(holder)

    expect_served_on_the_seat_map(waiter_page, show, waiter_id)
