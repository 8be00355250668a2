"""The site works under its Content-Security-Policy in Chromium, with every violation counted as a failure.

tests/browser.py fails any browser test whose pages report a violation; here the main pages are walked on purpose:
a moviegoer from the home page to the ticket (the live seat map connected), a waiter on the waiting page, staff
logging in to check a ticket in, and the admin's list and forms, ending on the login's lockout page. The negative
control injects what the policy must block into a real page of the site, as an injection would, and sees it
reported and not run.
"""

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from playwright.sync_api import expect

from bookings.models import Reservation
from tests.browser import csp_violations
from tests.browser_flows import (
    LiveChannel,
    choose_and_hold,
    demo_show,
    expect_ticket,
    fill_card,
    open_live_seat_map,
    pay_button,
    tomorrow_at,
)
from tests.factories import make_hall, make_show

pytestmark = pytest.mark.django_db(transaction=True)

STAFF_PASSWORD = "door-staff-password-7"
POLICY_PARTS = ("default-src 'self'", "script-src 'self'", "object-src 'none'", "frame-ancestors 'none'")


def visit(page, path):
    """Go to `path` and check the page came with the site's policy (a page without one would report nothing)."""
    response = page.goto(path)
    assert response.ok, f"{path}: {response.status}"
    policy = response.headers.get("content-security-policy", "")
    assert all(part in policy for part in POLICY_PARTS), f"{path}: {policy!r}"
    return response


def buy_a_ticket_from_the_home_page(page, show):
    visit(page, "/")
    page.get_by_role("link", name="Springfield", exact=True).click()
    expect(page.get_by_role("heading", name="Movies in Springfield")).to_be_visible()
    page.get_by_role("link", name="The Quiet Harbor", exact=True).click()
    expect(page.get_by_role("heading", name="The Quiet Harbor", level=1)).to_be_visible()
    page.get_by_role("navigation", name="Days").get_by_role(
        "link", name=tomorrow_at(19, 30).strftime("%a %-d %b")
    ).click()
    expect(page.get_by_role("link", name=re.compile(r"^19:30\s+Available"))).to_be_visible()

    open_live_seat_map(page, show)  # the seat map's script and its WebSocket (connect-src 'self')
    # Seats drawn where their style attributes put them: D8 one column right of D7, on the same row.
    d7, d8 = (page.locator(f'.seat[data-label="{label}"]').bounding_box() for label in ("D7", "D8"))
    assert d8["x"] > d7["x"] and d8["y"] == d7["y"]
    reservation_id = choose_and_hold(page, "D7", "D8")

    expect(page.locator("#hold-countdown")).to_have_text(re.compile(r"^\d:\d\d$"))  # countdown.js runs
    fill_card(page)
    pay_button(page).click()
    return expect_ticket(page, reservation_id)  # the QR code included


def wait_in_line(holder, waiter, show):
    holder.goto(f"/shows/{show.pk}/")
    choose_and_hold(holder, "A1", "A2")
    line = LiveChannel(waiter, "/ws/waitlist/")
    visit(waiter, f"/shows/{show.pk}/")
    waiter.get_by_role("button", name="Best available").click()
    waiter.get_by_role("alert").get_by_role("button", name="Wait in line").click()
    expect(waiter.get_by_role("heading", name="Waiting for seats", level=1)).to_be_visible()
    line.wait_until_greeted()  # waiting.js and its WebSocket


def log_in_at_the_door_and_check_in(page, booking):
    page.goto(f"/staff/check-in/?cinema={booking.show.hall.cinema_id}")
    expect(page).to_have_url(re.compile(r"/admin/login/\?next="))
    page.get_by_label("Username").fill("door")
    page.get_by_label("Password").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_role("heading", name="Check-in", level=1)).to_be_visible()
    page.get_by_label("Scan the ticket, or type its booking code").fill(booking.booking_code)
    page.get_by_role("button", name="Check in").click()
    verdict = page.locator("#check-in-result")
    expect(verdict).to_contain_text("Admit")
    # The page's own style sheet (a <style> with the nonce) applies: the verdict is white on green.
    assert verdict.evaluate("(element) => getComputedStyle(element).color") == "rgb(255, 255, 255)"


def walk_the_admin(page, booking, show):
    visit(page, "/admin/")
    visit(page, "/admin/bookings/reservation/")
    expect(page.locator("#result_list tbody tr")).to_have_count(2)  # the booking and the waiting page's hold
    visit(page, f"/admin/bookings/reservation/{booking.pk}/change/")
    visit(page, f"/admin/cinemas/show/{show.pk}/change/")  # date and time widgets, the calendar's script
    page.get_by_role("link", name="Choose a Date").first.click()
    expect(page.locator(".calendarbox").first).to_be_visible()
    visit(page, f"/admin/cinemas/hall/{show.hall_id}/change/")  # the seat-plan builder's own style sheet
    visit(page, "/admin/cinemas/movie/add/")
    visit(page, "/api/docs/")  # Swagger UI from our own static files, its inline script and style with the nonce
    expect(page.get_by_text("/api/v1/reservations").first).to_be_visible()


def be_locked_out(page):
    """Five wrong passwords from this address: the lockout page (in the admin's look) is under the policy too."""
    visit(page, "/admin/login/")
    for _ in range(5):
        page.get_by_label("Username").fill("nobody")
        page.get_by_label("Password").fill("wrong")
        page.get_by_role("button", name="Log in").click()
        if page.get_by_role("heading", name="Too many failed logins").is_visible():
            break
    expect(page.get_by_role("heading", name="Too many failed logins")).to_be_visible()


def test_the_main_pages_the_seat_map_the_waiting_page_check_in_and_the_admin_report_no_violation(site_with, new_page):
    # The door opens a day and more before the show (tomorrow's), so the check-in's verdict is the green one.
    site = site_with(TICKETING_CHECK_IN_OPENS_MINUTES=3000)
    show = demo_show()
    # Hashed as the server hashes (the tests' own fast hasher is not in its settings).
    password = make_password(STAFF_PASSWORD, hasher="pbkdf2_sha256")
    get_user_model().objects.create(username="door", password=password, is_staff=True, is_superuser=True)

    moviegoer = new_page(base_url=site)
    booking = buy_a_ticket_from_the_home_page(moviegoer, show)
    assert booking.status == Reservation.Status.BOOKED

    wait_in_line(new_page(base_url=site), new_page(base_url=site), make_show(hall=make_hall(plan="RR")))

    staff = new_page(base_url=site)
    log_in_at_the_door_and_check_in(staff, booking)
    walk_the_admin(staff, booking, show)

    be_locked_out(new_page(base_url=site))

    for page in (moviegoer, staff):
        assert csp_violations(page) == []  # also checked after every browser test (tests/browser.py)


INJECTED = (
    "<script>document.title = 'injected script ran'</script>"
    "<style>body { background: rgb(255, 0, 0) }</style>"
    '<img id="elsewhere" src="https://tracker.example/pixel.png" alt="">'
)


def test_negative_control_what_an_injection_would_add_to_a_page_is_blocked_and_reported(site, new_page):
    """The home page as the server sent it, policy and all, with an inline script, an inline style sheet and an
    image from elsewhere added to its body: each is refused and reported, which the other tests count."""
    page = new_page(base_url=site)

    def inject(route):
        response = route.fetch()
        route.fulfill(response=response, body=response.text().replace("</body>", f"{INJECTED}</body>"))

    page.route(re.compile(r"/$"), inject)
    visit(page, "/")
    expect(page.locator("#elsewhere")).to_have_count(1)
    violations = csp_violations(page)
    for _ in range(40):  # the reports come in a moment later (see tests/browser.py)
        if sum(text.startswith(("script-src", "style-src", "img-src")) for text in violations) >= 3:
            break
        page.wait_for_timeout(50)

    reported = "\n".join(violations)
    assert re.search(r"^script-src-elem blocked inline", reported, re.MULTILINE), reported
    assert re.search(r"^style-src-elem blocked inline", reported, re.MULTILINE), reported
    assert re.search(r"^img-src blocked https://tracker\.example/pixel\.png", reported, re.MULTILINE), reported
    # Chromium's console says so too, which catches a violation where no page script could listen.
    assert re.search(r"^console: Executing inline script violates .*Content Security Policy", reported, re.MULTILINE)
    assert page.title() != "injected script ran"
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") != "rgb(255, 0, 0)"
    violations.clear()  # provoked on purpose: this test must not fail for them
