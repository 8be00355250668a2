"""The on-sale waiting room in real browsers, on a phone (375 px): a moviegoer joins before the opening after the
page's proof of work, sees that places are drawn at the opening, then a place that moves live as the room admits;
once admitted, enters and holds seats with the pass; a pass that runs out is said so, with the way back in.

The room's clock is driven by the test (waiting.rooms.admit_from_room, at chosen instants), as beat would.
Fixtures: tests/browser.py; shared steps: tests/browser_flows.py.
"""

import re
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from bookings.models import Reservation
from tests.browser_flows import LiveChannel, choose_and_hold, save_screenshot, small_show
from tests.waiting.rooms import join, on_sale_of
from waiting.models import RoomVisitor
from waiting.rooms import admit_from_room

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 375, "height": 812}


def fits_the_phone(page):
    """Nothing on the page is wider than the phone: no sideways scrolling."""
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def join_the_room(page, on_sale):
    """On the room's page: read the rules, press Join (the widget does its proof of work first), land in the room."""
    page.goto(f"/on-sale/{on_sale.pk}/")
    expect(page.get_by_role("heading", name="How the waiting room works")).to_be_visible()
    fits_the_phone(page)
    page.get_by_role("button", name=re.compile(r"^Join")).click()
    expect(page.get_by_role("button", name="Leave the waiting room")).to_be_visible(timeout=15_000)
    in_room = RoomVisitor.objects.filter(room_id=on_sale.pk, status__in=["Waiting", "Admitted"])
    return in_room.exclude(session_id__startswith="early-").get()


def sale_open(on_sale):
    """Wait (really) until the sale has opened: the hold path reads the clock of the server."""
    left = (on_sale.opens_at - timezone.now()).total_seconds()
    if left > 0:
        time.sleep(left + 0.2)


@pytest.mark.parametrize("channel", ["websocket", "long poll"])
def test_a_visitor_who_joined_early_sees_the_draw_then_a_place_that_moves_live_until_admitted(site, new_page, channel):
    on_sale = on_sale_of(small_show(), opens_in=120, admissions_per_minute=60)
    for number in range(8):
        join(on_sale, f"early-{number}")
    page = new_page(base_url=site, viewport=PHONE)
    if channel == "long poll":  # a proxy that refuses WebSockets: every one is closed as soon as it opens
        page.context.route_web_socket(re.compile(r"/ws/"), lambda socket: socket.close())
        polls = []
        page.on("request", lambda request: "/poll?" in request.url and polls.append(request.url))
    else:
        room = LiveChannel(page, "/ws/room/")

    visitor = join_the_room(page, on_sale)
    expect(page.locator("#room-drawing")).to_have_text(re.compile("Places are drawn at random when the sale opens"))
    save_screenshot(page, "room-before-the-draw")
    if channel == "websocket":
        room.wait_until_greeted()

    admit_from_room(on_sale_id=on_sale.pk, at=on_sale.opens_at)  # the draw; nobody admitted yet
    visitor.refresh_from_db()
    expect(page.locator("#room-place")).to_have_text(str(visitor.place), timeout=10_000)
    expect(page.locator("#room-ahead")).to_have_text(str(visitor.place - 1))
    fits_the_phone(page)

    for second in range(1, 10):
        admit_from_room(on_sale_id=on_sale.pk, at=on_sale.opens_at + timedelta(seconds=second))  # one a second
        visitor.refresh_from_db()
        if visitor.status != "Waiting":
            break
        if channel == "websocket":  # the long poll wakes when the place's status changes, else every 30 s
            expect(page.locator("#room-ahead")).to_have_text(str(visitor.place - second - 1), timeout=10_000)
    assert visitor.status == "Admitted"
    expect(page.get_by_text("It's your turn.")).to_be_visible(timeout=10_000)
    expect(page.get_by_role("button", name="Enter: choose your seats")).to_be_visible()
    if channel == "long poll":
        assert polls and all(f"/room/{visitor.pk}/poll?" in url and "wait=30" in url for url in polls)
    save_screenshot(page, "room-admitted")


def test_an_admitted_visitor_enters_and_holds_seats_with_the_pass(site, new_page):
    show = small_show()
    on_sale = on_sale_of(show, opens_in=2)
    page = new_page(base_url=site, viewport=PHONE)
    page.goto(f"/shows/{show.pk}/")  # the seat map sends a browser without a pass to the room
    expect(page).to_have_url(re.compile(rf"/on-sale/{on_sale.pk}/$"))
    sale_open(on_sale)

    visitor = join_the_room(page, on_sale)
    assert admit_from_room(on_sale_id=on_sale.pk) == 1
    expect(page.get_by_text("It's your turn.")).to_be_visible(timeout=10_000)  # the page learns it live
    expect(page.locator("#room-pass-left")).to_have_text(re.compile(r"^Your pass is valid for [23] more minutes\.$"))
    fits_the_phone(page)
    page.get_by_role("button", name="Enter: choose your seats").click()

    expect(page).to_have_url(re.compile(rf"/shows/{show.pk}/$"))
    reservation_id = choose_and_hold(page, "A1", "A2")
    reservation = Reservation.objects.get(pk=reservation_id)
    assert (reservation.show_id, reservation.session_id) == (show.pk, visitor.session_id)


def test_a_pass_that_runs_out_is_said_so_and_the_visitor_joins_again_at_the_back(site, new_page):
    on_sale = on_sale_of(small_show(), queue_opens_in=-60, opens_in=-30, pass_seconds=30)  # the shortest pass
    page = new_page(base_url=site, viewport=PHONE)

    join_the_room(page, on_sale)
    # Admitted 25 s ago, as far as the room's clock goes: 5 s of the pass are left.
    admit_from_room(on_sale_id=on_sale.pk, at=timezone.now() - timedelta(seconds=25))
    expect(page.get_by_text("It's your turn.")).to_be_visible()

    # The page counts the pass down and, when it runs out, asks the server again by itself.
    expect(page.get_by_text("Your pass ran out.")).to_be_visible(timeout=10_000)
    rejoin = page.get_by_role("button", name="Join again")
    expect(rejoin).to_be_visible()
    fits_the_phone(page)
    save_screenshot(page, "room-pass-expired")

    admit_from_room(on_sale_id=on_sale.pk)  # the room's clock ends the pass
    rejoin.click()
    expect(page.locator("#room-place")).to_have_text("2", timeout=15_000)
    assert RoomVisitor.objects.filter(room_id=on_sale.pk, status="Pass Expired").count() == 1
