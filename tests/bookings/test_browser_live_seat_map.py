"""The live seat map in real browsers: what one moviegoer does shows on the other's map, without a reload.

Two browser contexts are two moviegoers (their own sessions). The map follows the show's WebSocket
(static/js/seat_map.js); Playwright only watches the frames (tests/browser_flows.LiveChannel).
"""

import re

import pytest
from playwright.sync_api import expect

from bookings.models import Reservation
from bookings.services import hold_seats
from tests.browser_flows import (
    choose_and_hold,
    demo_show,
    hold_button,
    open_live_seat_map,
    save_screenshot,
    seat,
    seat_box,
    small_show,
)
from ticketing.buyers import Buyer

pytestmark = pytest.mark.django_db(transaction=True)

MARKER = "window.__noReloadMarker"


def mark(page):
    """Put a marker on the page's window: it survives only as long as the page is not reloaded or left."""
    page.evaluate(f"{MARKER} = 'still the same page'")


def assert_not_reloaded(page, url):
    assert page.url == url
    assert page.evaluate(MARKER) == "still the same page"


def test_a_hold_made_in_one_browser_shows_as_held_in_another_within_a_second(site, new_page):
    show = demo_show()
    watcher = new_page(base_url=site)
    open_live_seat_map(watcher, show)
    mark(watcher)
    watcher_url = watcher.url
    buyer = new_page(base_url=site)
    buyer.goto(f"/shows/{show.pk}/")

    choose_and_hold(buyer, "E5", "E6", "E7")  # returns once the buyer is on checkout: the hold is committed

    for label in ("E5", "E6", "E7"):
        expect(seat_box(watcher, label)).to_have_attribute("data-status", "held", timeout=1000)
        expect(seat(watcher, label)).to_be_disabled(timeout=1000)
    expect(seat_box(watcher, "E5")).to_have_class(re.compile(r"\bseat--held\b"))
    expect(seat(watcher, "E5")).to_have_accessible_name(re.compile(r", held$"))
    expect(seat(watcher, "E8")).to_be_enabled()
    assert_not_reloaded(watcher, watcher_url)

    # The picture for the README: seats held by someone else, and two chosen next to them.
    seat(watcher, "E8").click()
    seat(watcher, "E9").click()
    expect(watcher.locator("#selection-summary")).to_have_text("2 seats: E8, E9 · $25.00")
    save_screenshot(watcher, "seat-map")


def test_a_hold_that_lapses_frees_its_seats_on_the_other_map_and_the_holder_sees_time_is_up(site_with, new_page):
    site = site_with(TICKETING_HOLD_SECONDS=3, TICKETING_HOLD_GRACE_SECONDS=0, TICKETING_IN_PROCESS_CLOCKS=1)
    show = small_show()
    watcher = new_page(base_url=site)
    open_live_seat_map(watcher, show)
    mark(watcher)
    watcher_url = watcher.url
    holder = new_page(base_url=site)
    holder.goto(f"/shows/{show.pk}/")

    reservation_id = choose_and_hold(holder, "B1", "B2")
    expect(seat(watcher, "B1")).to_be_disabled()
    expect(seat(watcher, "B2")).to_be_disabled()

    # The holder's countdown runs out: the page says so and stops the payment.
    expect(holder.locator("#hold-countdown")).to_have_text("Time's up", timeout=6000)
    expect(holder.locator("#hold-expired-notice")).to_be_visible()
    expect(holder.get_by_role("button", name=re.compile(r"^Pay"))).to_be_disabled()
    # The server's sweep (every second, in the web process here) frees the seats, and the other map hears it.
    for label in ("B1", "B2"):
        expect(seat_box(watcher, label)).to_have_attribute("data-status", "available", timeout=5000)
        expect(seat(watcher, label)).to_be_enabled()
    assert_not_reloaded(watcher, watcher_url)
    # Two seconds after "Time's up" the holder's page asks the server again, which shows the expired hold.
    expect(holder.get_by_role("alert")).to_contain_text("This hold has expired", timeout=5000)
    assert Reservation.objects.get(pk=reservation_id).status == Reservation.Status.EXPIRED

    # And the freed seats can be had.
    choose_and_hold(watcher, "B1", "B2")


def test_seats_taken_while_chosen_are_unchecked_and_announced_live_and_the_others_stay_chosen(site, new_page):
    show = small_show()  # row B: RRRR
    second = new_page(base_url=site)
    open_live_seat_map(second, show)
    first = new_page(base_url=site)
    first.goto(f"/shows/{show.pk}/")
    for label in ("B1", "B2", "B3", "B4"):
        seat(second, label).click()
    expect(second.locator("#selection-summary")).to_have_text("4 seats: B1, B2, B3, B4 · $50.00")

    choose_and_hold(first, "B1", "B2")

    expect(second.locator("#seat-map-live")).to_have_text("Seats B1 and B2 were just taken.", timeout=1000)
    expect(seat(second, "B1")).not_to_be_checked()
    expect(seat(second, "B1")).to_be_disabled()
    expect(seat(second, "B3")).to_be_checked()
    expect(seat(second, "B4")).to_be_checked()
    expect(second.locator("#selection-summary")).to_contain_text("2 seats: B3, B4 · $25.00")
    hold_button(second).click()

    expect(second.locator("#held-seats")).to_have_text("B3, B4")


def test_holding_seats_someone_just_took_says_so_and_keeps_the_other_chosen_seats_checked(site, new_page):
    show = small_show()
    second = new_page(base_url=site)
    # This map hears nothing live (as when the push is still on its way): the server's answer has to say it.
    second.context.route_web_socket(re.compile(r"/ws/shows/"), lambda socket: None)
    second.goto(f"/shows/{show.pk}/")
    first = new_page(base_url=site)
    first.goto(f"/shows/{show.pk}/")
    for label in ("B1", "B2", "B3", "B4"):
        seat(second, label).click()

    choose_and_hold(first, "B1", "B2")
    expect(seat(second, "B1")).to_be_checked()  # not told yet
    hold_button(second).click()

    alert = second.get_by_role("alert")
    expect(alert).to_contain_text("Some of the seats you chose were just taken.")
    expect(seat(second, "B1")).to_be_disabled()
    expect(seat(second, "B1")).not_to_be_checked()
    expect(seat_box(second, "B2")).to_have_attribute("data-status", "held")
    expect(seat(second, "B3")).to_be_checked()
    expect(seat(second, "B4")).to_be_checked()
    expect(second.locator("#selection-summary")).to_contain_text("2 seats: B3, B4")
    hold_button(second).click()

    expect(second.locator("#held-seats")).to_have_text("B3, B4")


def test_a_map_that_lost_its_live_channel_redraws_itself_from_the_server_once_it_reconnects(site, new_page):
    """Pushes are at most once: a change made while the page was cut off reaches it through the re-read grid."""
    show = demo_show()
    watcher = new_page(base_url=site)
    channel_up = {"now": False}

    def live_channel(socket):
        if channel_up["now"]:
            socket.connect_to_server()
        else:
            socket.close()  # the network is down: the page keeps retrying with its backoff

    watcher.route_web_socket(re.compile(r"/ws/shows/"), live_channel)
    grid_reads = []
    watcher.on("request", lambda request: grid_reads.append(request.url) if request.url.endswith("/map") else None)
    watcher.goto(f"/shows/{show.pk}/")
    expect(seat_box(watcher, "C5")).to_have_attribute("data-status", "available")
    mark(watcher)
    watcher_url = watcher.url

    seats = {f"{each.row_label}{each.number}": each.pk for each in show.hall.seats.all()}
    hold_seats(buyer=Buyer(None, "while-the-page-was-cut-off"), show=show, seat_ids=[seats["C5"], seats["C6"]])
    channel_up["now"] = True

    for label in ("C5", "C6"):  # within the backoff's longest wait (5 s) and the re-read
        expect(seat_box(watcher, label)).to_have_attribute("data-status", "held", timeout=8000)
    assert grid_reads, "the map did not re-read its grid"
    expect(seat(watcher, "C7")).to_be_enabled()
    assert_not_reloaded(watcher, watcher_url)
