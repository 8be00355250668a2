"""The box office in a real browser, on a phone-wide counter tablet: a clerk logs in, picks seats on the live map,
sells them for cash and gets the tickets to print, while a moviegoer's seat map sees the seats go taken live."""

import re

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from playwright.sync_api import expect

from bookings.models import Reservation
from cinemas.models import StaffRole
from tests.browser_flows import demo_show, open_live_seat_map, save_screenshot, seat, seat_box
from tests.factories import STAFF_PASSWORD, make_staff_member

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 375, "height": 812}


def fits_the_width(page):
    """Nothing sticks out sideways: the page scrolls only down."""
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def counter_clerk(cinema):
    """Staff of `cinema`, their password hashed as the server hashes (the tests' own fast hasher is not its)."""
    clerk = make_staff_member(roles=[(cinema, StaffRole.STAFF)])
    clerk.password = PBKDF2PasswordHasher().encode(STAFF_PASSWORD, "countersalt")
    clerk.save(update_fields=["password"])
    return clerk


def log_in_at_the_box_office(page, clerk):
    page.goto("/staff/box-office/")
    page.get_by_label("Username").fill(clerk.username)
    page.get_by_label("Password").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Box office", level=1)).to_be_visible()


def a_moviegoer_watching_and_a_clerk_logged_in(site, new_page):
    """The demo show; a moviegoer's live seat map of it, listening; and a clerk of its cinema logged in at the box
    office on a phone-wide page. Returns (show, clerk, moviegoer, counter)."""
    show = demo_show()
    clerk = counter_clerk(show.hall.cinema)
    moviegoer = new_page(base_url=site)
    open_live_seat_map(moviegoer, show)
    counter = new_page(base_url=site, viewport=PHONE)
    log_in_at_the_box_office(counter, clerk)
    return show, clerk, moviegoer, counter


def test_a_clerk_sells_seats_for_cash_prints_the_tickets_and_a_moviegoers_map_sees_them_go(site, new_page):
    show, clerk, moviegoer, counter = a_moviegoer_watching_and_a_clerk_logged_in(site, new_page)

    assert fits_the_width(counter)
    counter.get_by_role("button", name="Sell at this cinema").click()
    counter.get_by_role("link", name=re.compile("19:30 The Quiet Harbor")).click()
    expect(counter.get_by_role("group", name=re.compile("^Seats in"))).to_be_visible()
    assert fits_the_width(counter)
    seat(counter, "E5").click()
    seat(counter, "E6").click()
    expect(counter.locator("#selection-summary")).to_contain_text("2 seats: E5, E6")
    counter.get_by_role("button", name="Sell these seats").click()

    expect(counter.get_by_role("heading", name="Sale at the counter")).to_be_visible()
    expect(counter.locator("#held-seats")).to_have_text("E5, E6")
    for label in ("E5", "E6"):  # held at the counter: gone from the moviegoer's map, without a reload
        expect(seat_box(moviegoer, label)).to_have_attribute("data-status", "held", timeout=2000)
        expect(seat(moviegoer, label)).to_be_disabled()
    assert fits_the_width(counter)

    counter.get_by_label("Cash tendered").fill("30")
    counter.get_by_role("button", name="Take $25.00").click()

    expect(counter.get_by_role("status")).to_contain_text("Change due: $5.00")
    tickets = counter.locator(".printed-ticket")
    expect(tickets).to_have_count(2)
    expect(tickets.first).to_contain_text("Row E · Seat 5")
    expect(tickets.nth(1)).to_contain_text("Row E · Seat 6")
    expect(tickets.first.locator(".qr svg")).to_be_visible()
    expect(counter.get_by_role("button", name="Print tickets")).to_be_visible()
    assert fits_the_width(counter)
    save_screenshot(counter, "box-office-tickets")
    for label in ("E5", "E6"):
        expect(seat_box(moviegoer, label)).to_have_attribute("data-status", "booked", timeout=2000)

    # On paper: the tickets alone, one per page.
    counter.emulate_media(media="print")
    expect(counter.locator(".print-controls")).to_be_hidden()
    expect(counter.locator(".site-header")).to_be_hidden()
    expect(tickets.first).to_be_visible()
    assert tickets.first.evaluate("ticket => getComputedStyle(ticket).breakAfter") == "page"

    sale = Reservation.objects.get()
    assert sale.status == Reservation.Status.BOOKED
    assert sale.channel == Reservation.Channel.BOX_OFFICE and sale.sold_by_id == clerk.pk
    assert sale.payments.get().provider == "cash"


def test_house_seats_held_at_the_counter_show_taken_on_a_moviegoers_map_until_released(site, new_page):
    show, _, moviegoer, counter = a_moviegoer_watching_and_a_clerk_logged_in(site, new_page)
    counter.goto(f"/staff/box-office/shows/{show.pk}/")

    seat(counter, "C7").click()
    counter.get_by_label("House seats for").fill("Press: Daily Planet")
    counter.get_by_role("button", name="Hold for the house").click()

    expect(counter.get_by_role("status")).to_contain_text("held for the house")
    row = counter.get_by_role("row", name=re.compile("Press: Daily Planet"))
    expect(row).to_contain_text("C7")
    expect(seat_box(moviegoer, "C7")).to_have_attribute("data-status", "booked", timeout=2000)
    assert fits_the_width(counter)

    row.get_by_role("button", name="Release").click()

    expect(counter.get_by_role("status")).to_contain_text("released")
    expect(seat_box(moviegoer, "C7")).to_have_attribute("data-status", "available", timeout=2000)
    expect(seat(moviegoer, "C7")).to_be_enabled()
