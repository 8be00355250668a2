"""What the seat map says in a real browser when seats can't be had: never a dead end.

Best available and the waiting line give Regular and Premium seats only; wheelchair spaces and companion seats are
there for whoever needs them, on the map. Fixtures: tests/browser.py; shared steps: tests/browser_flows.py.
"""

import re

import pytest
from playwright.sync_api import expect

from bookings.services import hold_seats
from cinemas.models import OPEN_SEAT_TYPES
from tests.browser_flows import seat, small_show
from ticketing.buyers import Buyer
from waiting.models import Waiter

pytestmark = pytest.mark.django_db(transaction=True)


def held_by_others(show, *, seat_types):
    """Hold every seat of these types in holds of other moviegoers (ten seats at most each)."""
    seats = list(show.hall.seats.filter(seat_type__in=seat_types).order_by("y", "x").values_list("id", flat=True))
    for number, start in enumerate(range(0, len(seats), 10)):
        hold_seats(
            buyer=Buyer(None, f"someone-{number}"),
            show=show,
            seat_ids=seats[start : start + 10],
            accessible_confirmed=True,
        )


def ask_best_available(page, count):
    page.locator(".best-available").get_by_label("Seats").select_option(str(count))
    page.get_by_role("button", name="Best available").click()
    return page.get_by_role("alert")


def test_best_available_with_only_wheelchair_and_companion_seats_free_offers_the_line_and_names_them(site, new_page):
    show = small_show()  # PPPP / RRRR / R..R / WC.R: D1 is a wheelchair space, D2 its companion seat
    held_by_others(show, seat_types=OPEN_SEAT_TYPES)
    page = new_page(base_url=site)
    page.goto(f"/shows/{show.pk}/")

    refusal = ask_best_available(page, 2)

    expect(refusal).to_contain_text("Every seat that could be yours is held by someone paying right now.")
    expect(refusal).to_contain_text("Only wheelchair spaces and companion seats are free")
    expect(refusal).not_to_contain_text("just taken")
    expect(refusal.get_by_label("Seats")).to_have_value("2")
    refusal.get_by_role("button", name="Wait in line").click()

    expect(page.get_by_role("heading", name="Waiting for seats", level=1)).to_be_visible()
    assert Waiter.objects.get(show=show).seats_wanted == 2


def test_the_offer_to_wait_keeps_the_three_seats_asked_for(site, new_page):
    show = small_show()
    held_by_others(show, seat_types=["Premium", "Regular", "Wheelchair", "Companion"])
    page = new_page(base_url=site)
    page.goto(f"/shows/{show.pk}/")

    refusal = ask_best_available(page, 3)

    expect(refusal.get_by_label("Seats")).to_have_value("3")
    expect(page.locator(".best-available").get_by_label("Seats")).to_have_value("3")
    refusal.get_by_role("button", name="Wait in line").click()

    expect(page.get_by_role("heading", name="Waiting for seats", level=1)).to_be_visible()
    assert Waiter.objects.get(show=show).seats_wanted == 3


def test_choosing_a_wheelchair_space_says_whom_it_is_kept_for_and_checkout_reminds_of_it(site, new_page):
    show = small_show()
    page = new_page(base_url=site)
    page.goto(f"/shows/{show.pk}/")
    expect(page.locator("#reserved-seats-note")).to_contain_text("Wheelchair spaces (♿) are kept for wheelchair users")

    seat(page, "D1").click()
    seat(page, "D2").click()

    summary = page.locator("#selection-summary")
    expect(summary).to_contain_text("D1 is a wheelchair space, kept for wheelchair users.")
    expect(summary).to_contain_text("D2 is a companion seat, kept for the person with a wheelchair user.")
    expect(summary).to_contain_text("Please choose them only if you need them.")
    seat(page, "D2").click()
    expect(summary).not_to_contain_text("companion seat")
    seat(page, "D2").click()
    page.get_by_role("checkbox", name=re.compile(r"^I need the wheelchair space")).check()
    page.get_by_role("button", name="Hold these seats").click()

    expect(page.get_by_role("heading", name="Checkout", level=1)).to_be_visible()
    expect(page.locator("#reserved-seat-note")).to_contain_text(
        re.compile(r"wheelchair space, kept for wheelchair users, and a companion seat")
    )
