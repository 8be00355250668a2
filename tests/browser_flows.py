"""What the browser tests share: the demo catalog, finding seats on the map, paying, watching the live channel,
and the README's screenshots.

Screenshots for the README (docs/screenshots/*.png) are written only when SCREENSHOTS=1, so a normal run (and CI)
never rewrites them: `SCREENSHOTS=1 pytest tests/bookings/test_browser_*.py tests/waiting/test_browser_*.py`.
"""

import os
import re
from datetime import datetime, time, timedelta
from pathlib import Path
from time import monotonic
from zoneinfo import ZoneInfo

from django.utils import timezone
from playwright.sync_api import expect

from bookings.models import Reservation
from tests.factories import make_cinema, make_city, make_hall, make_movie, make_show, prices_for

SCREENSHOT_DIR = Path(__file__).resolve().parent.parent / "docs" / "screenshots"

GOOD_CARD = "4242 4242 4242 4242"
DECLINED_CARD = "4000 0000 0000 0002"

# A hall of 8 rows of 12 with an aisle after the fourth seat: wheelchair places and their companions at the front,
# premium seats along the back.
DEMO_PLAN = "\n".join(
    [
        "WCRR.RRRRRRCW",
        *["RRRR.RRRRRRRR"] * 6,
        "PPPP.PPPPPPPP",
    ]
)
DEMO_TIME_ZONE = "America/Chicago"


def save_screenshot(page, name, *, full_page=True):
    """Save the page as docs/screenshots/<name>.png for the README, only when SCREENSHOTS=1."""
    if os.environ.get("SCREENSHOTS") != "1":
        return None
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{name}.png"
    # scale="css": one image pixel per CSS pixel, so a phone's picture is 375 wide whatever its pixel ratio.
    page.screenshot(path=path, full_page=full_page, animations="disabled", caret="hide", scale="css")
    return path


def tomorrow_at(hour, minute=0, *, time_zone=DEMO_TIME_ZONE):
    """Tomorrow at the given local time in the cinema's time zone: always in the future and on the day listed second."""
    zone = ZoneInfo(time_zone)
    day = timezone.now().astimezone(zone).date() + timedelta(days=1)
    return datetime.combine(day, time(hour, minute), tzinfo=zone)


def demo_show(*, plan=DEMO_PLAN, other_times=()):
    """The Quiet Harbor at Riverside Cinema, Springfield, tomorrow at 19:30 (plus other_times, (hour, minute) pairs).

    Returns the 19:30 show.
    """
    city = make_city(name="Springfield", state="Illinois")
    cinema = make_cinema(
        city=city,
        name="Riverside Cinema",
        address="400 Riverside Drive",
        postal_code="62701",
        latitude=39.7817,
        longitude=-89.6501,
        time_zone=DEMO_TIME_ZONE,
    )
    hall = make_hall(cinema=cinema, name="Hall 1", plan=plan)
    movie = make_movie(
        title="The Quiet Harbor",
        genre="Drama",
        duration=118,
        description=(
            "A retired lighthouse keeper and the teenage runaway who washes up on her island spend one long winter "
            "learning to trust the tide, and each other."
        ),
    )
    prices = prices_for(hall, base="12.50")
    show = make_show(movie=movie, hall=hall, starts_at=tomorrow_at(19, 30), prices=prices)
    for hour, minute in other_times:
        make_show(movie=movie, hall=hall, starts_at=tomorrow_at(hour, minute), prices=prices)
    return show


def other_cities():
    """Two more cities with a cinema each, so the city picker looks like the real thing."""
    for city, state, cinema in [("Shelbyville", "Illinois", "Palace Theatre"), ("Oak Ridge", "Tennessee", "Ridge 8")]:
        make_cinema(city=make_city(name=city, state=state), name=cinema, time_zone=DEMO_TIME_ZONE)


def small_show(plan="PPPP\nRRRR\nR..R\nWC.R"):
    """A show of the demo movie tomorrow in a small hall (fast to draw), for the tests that need no realism."""
    return demo_show(plan=plan)


def seat(page, label):
    """The checkbox of a seat on the map, by its label ("D7"): found by its accessible name, "Row D seat 7, …"."""
    row, number = re.fullmatch(r"([A-Z]+)(\d+)", label).groups()
    return page.get_by_role("checkbox", name=re.compile(rf"^Row {row} seat {number},"))


def seat_box(page, label):
    """The seat's <label class="seat …"> element, for its status and classes."""
    return page.locator(f'#seat-map-form .seat[data-label="{label}"]')


def hold_button(page):
    return page.get_by_role("button", name="Hold these seats")


def pay_button(page):
    return page.get_by_role("button", name=re.compile(r"^Pay \$"))


def hold_id(page):
    """The reservation id of the checkout page the browser is on (/holds/<id>/)."""
    return re.search(r"/holds/([^/]+)/", page.url).group(1)


def choose_and_hold(page, *labels):
    """On the seat map: click the seats, press "Hold these seats" and land on checkout; returns the reservation id."""
    for label in labels:
        seat(page, label).click()
        expect(seat(page, label)).to_be_checked()
    hold_button(page).click()
    expect(page.get_by_role("heading", name="Checkout", level=1)).to_be_visible()
    expect(page.locator("#held-seats")).to_have_text(", ".join(labels))
    return hold_id(page)


def fill_card(page, number=GOOD_CARD, *, email="ann.lee@example.com"):
    page.get_by_label("Card number").fill(number)
    page.get_by_label("Expiry month").fill("12")
    page.get_by_label("Expiry year").fill("2035")
    page.get_by_label("Security code (CVC)").fill("123")
    page.get_by_label("Email for your tickets").fill(email)


def expect_ticket(page, reservation_id):
    """Wait for the ticket page of the reservation, check its booking code and QR code; returns the reservation.

    Read from the database only once the page is there: the payment commits before the redirect to it.
    """
    expect(page).to_have_url(re.compile(rf"/tickets/{reservation_id}/$"))
    expect(page.get_by_role("heading", name="Your tickets", level=1)).to_be_visible()
    reservation = Reservation.objects.get(pk=reservation_id)
    expect(page.locator("#booking-code")).to_have_text(reservation.booking_code)
    expect(page.locator(".qr").get_by_role("img", name="Ticket QR code")).to_be_visible()
    expect(page.locator(".qr svg[role=img]")).to_have_count(1)
    return reservation


class LiveChannel:
    """Follows the WebSockets a page opens, so a test can wait until the server has greeted it.

    A push sent before the page listens is not replayed (the seat map re-reads its grid when the greeting says it
    is behind, but a test that wants to see the push itself must know the page listens). Frames are recorded
    from Playwright's side; nothing is changed in the page.
    """

    def __init__(self, page, path_part):
        self.page = page
        self.path_part = path_part
        self.frames = []
        page.on("websocket", self._opened)

    def _opened(self, socket):
        if self.path_part in socket.url:
            socket.on("framereceived", lambda payload: self.frames.append(payload))

    def wait_until_greeted(self, timeout_ms=5000):
        """Wait (polling, Playwright's events are delivered meanwhile) until the socket got its first message."""
        deadline = monotonic() + timeout_ms / 1000
        while not self.frames:
            if monotonic() > deadline:
                raise AssertionError(f"no message on a WebSocket to {self.path_part} within {timeout_ms} ms")
            self.page.wait_for_timeout(25)
        return self.frames[0]


def open_live_seat_map(page, show):
    """Open the show's seat map and wait until its live channel is connected (the server's version greeting)."""
    channel = LiveChannel(page, f"/ws/shows/{show.pk}/")
    page.goto(f"/shows/{show.pk}/")
    expect(page.get_by_role("group", name=re.compile("^Seats in"))).to_be_visible()
    channel.wait_until_greeted()
    return channel
