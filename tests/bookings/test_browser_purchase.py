"""Buying tickets in a real browser: Chromium through the real uvicorn, from the city to the ticket.

The same flows as tests/bookings/test_website.py, but with the page's own scripts running: the seat map, the
countdown and the one-submit pay form. Fixtures: tests/browser.py; shared steps: tests/browser_flows.py.
"""

import re

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import User
from playwright.sync_api import expect

from bookings.models import Reservation
from tests.browser_flows import (
    DECLINED_CARD,
    GOOD_CARD,
    choose_and_hold,
    demo_show,
    expect_ticket,
    fill_card,
    hold_button,
    hold_id,
    other_cities,
    pay_button,
    save_screenshot,
    seat,
    seat_box,
    small_show,
    tomorrow_at,
)

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 375, "height": 812}


def hold_two_seats_of_a_small_show(page):
    """B1 and B2 of a new small show held on its seat map; returns the hold's id."""
    show = small_show()
    page.goto(f"/shows/{show.pk}/")
    return choose_and_hold(page, "B1", "B2")


def pay_with_a_good_card(page, reservation_id):
    fill_card(page, GOOD_CARD)
    pay_button(page).click()
    expect_ticket(page, reservation_id)


def test_a_moviegoer_buys_two_seats_from_picking_the_city_to_the_ticket(site, new_page):
    show = demo_show(other_times=[(16, 45), (22, 0)])
    other_cities()
    page = new_page(base_url=site)

    page.goto("/")
    save_screenshot(page, "home")
    page.get_by_role("link", name="Springfield", exact=True).click()

    expect(page.get_by_role("heading", name="Movies in Springfield")).to_be_visible()
    page.get_by_role("link", name="The Quiet Harbor", exact=True).click()

    expect(page.get_by_role("heading", name="The Quiet Harbor", level=1)).to_be_visible()
    tomorrow = tomorrow_at(19, 30).strftime("%a %-d %b")  # as the day links read: "Wed 25 Nov"
    page.get_by_role("navigation", name="Days").get_by_role("link", name=tomorrow).click()
    showtime = page.get_by_role("link", name=re.compile(r"^19:30\s+Available"))
    expect(showtime).to_be_visible()
    expect(page.locator("a.showtime")).to_have_count(3)
    save_screenshot(page, "movie")
    showtime.click()

    expect(page).to_have_url(re.compile(rf"/shows/{show.pk}/$"))
    expect(page.get_by_role("group", name="Seats in Hall 1")).to_be_visible()
    seat(page, "D7").click()
    seat(page, "D8").click()
    expect(seat(page, "D7")).to_be_checked()
    expect(page.locator("#selection-summary")).to_have_text("2 seats: D7, D8 · $25.00")
    hold_button(page).click()

    expect(page.get_by_role("heading", name="Checkout", level=1)).to_be_visible()
    expect(page.locator("#held-seats")).to_have_text("D7, D8")
    expect(page.locator("#hold-countdown")).to_have_text(re.compile(r"^(5:00|4:5\d)$"))
    reservation = Reservation.objects.get(pk=hold_id(page))
    assert reservation.status == Reservation.Status.RESERVED
    fill_card(page, GOOD_CARD, email="ann.lee@example.com")
    save_screenshot(page, "checkout")
    pay_button(page).click()

    reservation = expect_ticket(page, reservation.pk)
    expect(page.locator("#ticket-seats")).to_have_text("D7, D8")
    expect(page.get_by_text("We also sent it to ann.lee@example.com")).to_be_visible()
    save_screenshot(page, "ticket")
    assert reservation.status == Reservation.Status.BOOKED
    assert reservation.seat_labels() == ["D7", "D8"]


def test_a_declined_card_is_said_so_the_seats_stay_held_and_the_good_card_then_books_them(site, new_page):
    page = new_page(base_url=site)
    reservation_id = hold_two_seats_of_a_small_show(page)

    fill_card(page, DECLINED_CARD)
    expect(page.get_by_label("Security code (CVC)")).to_have_attribute("type", "password")  # masked as typed
    pay_button(page).click()

    expect(page.get_by_role("alert")).to_contain_text("Card ending 0002 was declined")
    expect(page.locator("#held-seats")).to_have_text("B1, B2")
    expect(pay_button(page)).to_be_enabled()
    # The card came back as its last four digits only: number and CVC are empty, the CVC still masked, and
    # neither is anywhere in the page; what isn't secret is kept.
    expect(page.get_by_label("Card number")).to_have_value("")
    expect(page.get_by_label("Security code (CVC)")).to_have_value("")
    expect(page.get_by_label("Security code (CVC)")).to_have_attribute("type", "password")
    expect(page.get_by_label("Security code (CVC)")).to_have_attribute("autocomplete", "cc-csc")
    expect(page.get_by_label("Email for your tickets")).to_have_value("ann.lee@example.com")
    html = page.content()
    assert DECLINED_CARD.replace(" ", "") not in html and 'value="123"' not in html
    reservation = Reservation.objects.get(pk=reservation_id)
    assert reservation.status == Reservation.Status.RESERVED
    assert not reservation.payments.filter(kind="charge", status="succeeded").exists()

    fill_card(page, GOOD_CARD)
    pay_button(page).click()

    reservation = expect_ticket(page, reservation_id)
    assert reservation.status == Reservation.Status.BOOKED


def test_back_after_paying_lands_on_the_ticket_not_on_a_checkout_with_the_card_filled_in(site, new_page):
    page = new_page(base_url=site)
    reservation_id = hold_two_seats_of_a_small_show(page)
    pay_with_a_good_card(page, reservation_id)

    page.go_back()  # to the checkout's place in history: the browser must ask again, and the booking answers

    expect(page).to_have_url(re.compile(rf"/tickets/{reservation_id}/$"))
    expect(page.get_by_role("heading", name="Your tickets", level=1)).to_be_visible()
    expect(page.locator("#pay-form")).to_have_count(0)
    assert GOOD_CARD.replace(" ", "") not in page.content()


def test_a_booking_the_cinema_cancels_says_so_with_its_reason_seats_and_refund_on_the_ticket_page(site, new_page):
    page = new_page(base_url=site)
    reservation_id = hold_two_seats_of_a_small_show(page)
    pay_with_a_good_card(page, reservation_id)

    # Hashed as the server hashes (the tests' own settings use a fast hasher the server doesn't know).
    password = PBKDF2PasswordHasher().encode("a long staff password", "cinemasalt")
    User.objects.create(username="carol", password=password, is_staff=True, is_superuser=True)
    staff = new_page(base_url=site)
    staff.goto(f"/admin/bookings/reservation/{reservation_id}/cancel/")
    staff.get_by_label("Username").fill("carol")
    staff.get_by_label("Password").fill("a long staff password")
    staff.get_by_role("button", name="Log in").click()
    staff.get_by_label("Reason, told to the buyer").fill("The projector broke down.")
    staff.get_by_role("button", name="Yes, cancel and refund").click()
    expect(staff.locator(".messagelist")).to_contain_text("refund")
    page.reload()

    expect(page.get_by_role("heading", name="Booking cancelled", level=1)).to_be_visible()
    expect(page.locator("#booking-cancelled")).to_contain_text("The cinema cancelled this booking")
    expect(page.locator("#cancellation-reason")).to_have_text("The cinema's reason: The projector broke down.")
    expect(page.locator("#ticket-seats")).to_have_text("B1, B2")
    expect(page.locator("#refund")).to_contain_text(
        re.compile(r"We refunded \$25\.00 \(USD\) to the card ending 4242 on \w+day \d+ \w+ \d{4}, \d\d:\d\d\.")
    )
    expect(page.locator(".qr")).to_have_count(0)


def test_a_double_click_on_pay_charges_the_card_once(site, new_page):
    page = new_page(base_url=site)
    reservation_id = hold_two_seats_of_a_small_show(page)
    fill_card(page)

    pay_button(page).dblclick()

    reservation = expect_ticket(page, reservation_id)
    assert reservation.status == Reservation.Status.BOOKED
    assert reservation.payments.filter(kind="charge", status="succeeded").count() == 1
    assert reservation.payments.filter(kind="charge").count() == 1


def test_two_payments_of_one_hold_sent_at_the_same_moment_charge_the_card_once(site, new_page):
    """Without the page's one-submit guard (another tab, a replayed request), the server still charges once."""
    page = new_page(base_url=site)
    reservation_id = hold_two_seats_of_a_small_show(page)
    fill_card(page)

    statuses = page.evaluate(
        """async () => {
            const form = document.getElementById('pay-form');
            const send = () =>
                fetch(form.action, {method: 'POST', body: new FormData(form), credentials: 'same-origin'});
            const answers = await Promise.all([send(), send()]);
            return answers.map((answer) => [answer.status, new URL(answer.url).pathname]);
        }"""
    )

    reservation = Reservation.objects.get(pk=reservation_id)
    assert reservation.status == Reservation.Status.BOOKED
    assert reservation.payments.filter(kind="charge", status="succeeded").count() == 1
    assert reservation.payments.filter(kind="charge").count() == 1
    ticket = f"/tickets/{reservation_id}/"
    assert [200, ticket] in statuses, statuses  # one of them paid and was sent on to the ticket
    assert all(answer == [200, ticket] or answer[0] == 409 for answer in statuses), statuses


def focused(page):
    """What has the keyboard focus: the seat's label, the button's text, or the element's tag."""
    return page.evaluate(
        """() => {
            const element = document.activeElement;
            const seat = element?.closest?.('.seat');
            if (seat) return 'seat ' + seat.dataset.label;
            return (element?.textContent || '').trim() || element?.tagName;
        }"""
    )


def tab_until(page, wanted, *, most=40):
    for _ in range(most):
        page.keyboard.press("Tab")
        if re.fullmatch(wanted, focused(page)):
            return
    raise AssertionError(f"{most} presses of Tab never reached {wanted!r} (focus is on {focused(page)!r})")


def test_seats_can_be_chosen_and_held_with_the_keyboard_alone(site, new_page):
    show = small_show()  # PPPP / RRRR / R..R / WC.R
    page = new_page(base_url=site)
    page.goto(f"/shows/{show.pk}/")
    expect(page.get_by_role("group", name=re.compile("^Seats in"))).to_be_visible()

    tab_until(page, r"seat .*")
    assert focused(page) == "seat A1"  # the first seat in reading order, reached from the top of the page
    page.keyboard.press("ArrowDown")
    assert focused(page) == "seat B1"
    page.keyboard.press("Space")
    page.keyboard.press("ArrowRight")
    assert focused(page) == "seat B2"
    page.keyboard.press("Space")
    expect(seat(page, "B1")).to_be_checked()
    expect(seat(page, "B2")).to_be_checked()
    expect(seat(page, "A1")).not_to_be_checked()
    expect(page.locator("#selection-summary")).to_have_text("2 seats: B1, B2 · $25.00")

    tab_until(page, "Hold these seats")
    page.keyboard.press("Enter")

    expect(page.get_by_role("heading", name="Checkout", level=1)).to_be_visible()
    expect(page.locator("#held-seats")).to_have_text("B1, B2")
    assert Reservation.objects.get(pk=hold_id(page)).seat_labels() == ["B1", "B2"]


def test_on_a_phone_the_hall_scrolls_inside_its_box_and_the_whole_purchase_works(site, new_page, tmp_path):
    show = demo_show()
    page = new_page(base_url=site, viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    page.goto(f"/shows/{show.pk}/")

    seat_map = page.get_by_role("group", name="Seats in Hall 1")
    expect(seat_map).to_be_visible()
    page_width, map_scroll_width, map_client_width = page.evaluate(
        """() => {
            const box = document.querySelector('.seat-map');
            return [document.documentElement.scrollWidth, box.scrollWidth, box.clientWidth];
        }"""
    )
    assert page_width <= PHONE["width"], "the page itself must not scroll sideways"
    assert map_scroll_width <= map_client_width + 1, "at first the whole hall fits the phone's width (the overview)"
    # Zoomed in to the seats' full size: the hall is wider than a phone, and its box scrolls instead.
    page.get_by_role("button", name="Zoom in").tap()
    assert page.locator(".seat-map").evaluate("box => box.scrollWidth > box.clientWidth")
    assert seat_box(page, "A1").bounding_box()["width"] >= 24
    assert seat_box(page, "A1").bounding_box()["height"] >= 24

    seat(page, "H11").tap()  # at the far right of the back row: out of view until the box scrolls to it
    seat(page, "H12").tap()
    expect(seat(page, "H11")).to_be_checked()
    expect(seat(page, "H12")).to_be_checked()
    expect(page.locator("#selection-summary")).to_have_text("2 seats: H11, H12 · $35.00")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot = tmp_path / "seat-map-phone.png"
    page.screenshot(path=screenshot, full_page=True)
    assert screenshot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    save_screenshot(page, "seat-map-phone")
    hold_button(page).tap()

    expect(page.locator("#held-seats")).to_have_text("H11, H12")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    reservation_id = hold_id(page)
    fill_card(page)
    pay_button(page).tap()

    reservation = expect_ticket(page, reservation_id)
    assert reservation.status == Reservation.Status.BOOKED
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
