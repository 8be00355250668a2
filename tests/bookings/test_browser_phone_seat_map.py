"""The seat map on a 375-px phone in Chromium (issue 18, point 4; and point 5's wheelchair confirmation).

A 20-seat row fits the width at first (the overview); the zoom buttons and two fingers zoom it; row letters stay
at the left edge while the rows scroll sideways; the chosen seats, their total and Hold stay in view at the
bottom; the grid is one Tab stop with the arrow keys inside it; best available asks for a category, the
cheapest that fits by default; a wheelchair space asks for the buyer's word and keeps its mark once chosen.
"""

import re

import pytest
from playwright.sync_api import expect

from bookings.models import Reservation
from tests.browser_flows import demo_show, hold_button, save_screenshot, seat, seat_box

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 375, "height": 667}
# Rows of 20 with an aisle in the middle: the wheelchair spaces and their companions at the front, premium at the back.
PHONE_PLAN = "\n".join(["WCRRRRRRRR.RRRRRRRRCW", *["RRRRRRRRRR.RRRRRRRRRR"] * 6, *["PPPPPPPPPP.PPPPPPPPPP"] * 2])


def open_map(new_page, site, show):
    page = new_page(base_url=site, viewport=PHONE, has_touch=True)
    page.goto(f"/shows/{show.pk}/")
    expect(page.locator(".seat-map[data-zoom]")).to_be_attached()
    return page


def zoom_of(page):
    return float(page.locator(".seat-map").get_attribute("data-zoom"))


def overflows(page):
    return page.locator(".seat-map").evaluate("box => box.scrollWidth > box.clientWidth + 1")


def inside_viewport(page, locator):
    box = locator.bounding_box()
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"] + 0.5


def test_a_twenty_seat_row_fits_a_phone_and_the_buttons_zoom_it(site, new_page):
    page = open_map(new_page, site, demo_show(plan=PHONE_PLAN))

    # The overview: every seat of the row within the map's box, nothing to scroll sideways.
    assert not overflows(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    map_box = page.locator(".seat-map").bounding_box()
    last = seat_box(page, "B20").bounding_box()
    assert last["x"] + last["width"] <= map_box["x"] + map_box["width"]
    assert zoom_of(page) < 1
    save_screenshot(page, "seat-map-phone-overview", full_page=False)

    page.get_by_role("button", name="Zoom in").click()
    zoomed = zoom_of(page)
    assert zoomed > 0.99 or zoomed == pytest.approx(min(1.5, zoomed))
    assert overflows(page)
    page.get_by_role("button", name="Zoom in").click()
    assert zoom_of(page) > zoomed
    page.get_by_role("button", name="Zoom out").click()
    assert zoom_of(page) == pytest.approx(zoomed, rel=0.01)
    page.get_by_role("button", name="Whole hall").click()
    assert not overflows(page)
    expect(page.get_by_role("button", name="Zoom out")).to_be_disabled()


def test_two_fingers_zoom_the_map(site, new_page):
    page = open_map(new_page, site, demo_show(plan=PHONE_PLAN))
    before = zoom_of(page)
    box = page.locator(".seat-map").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    cdp = page.context.new_cdp_session(page)

    def touch(kind, apart):
        points = [{"x": x - apart, "y": y, "id": 1}, {"x": x + apart, "y": y, "id": 2}]
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [] if kind == "touchEnd" else points})

    touch("touchStart", 20)
    for apart in (30, 45, 60, 80):
        touch("touchMove", apart)
    touch("touchEnd", 80)

    assert zoom_of(page) > before * 2
    assert overflows(page)


def test_row_letters_stay_visible_while_the_rows_scroll_sideways(site, new_page):
    page = open_map(new_page, site, demo_show(plan=PHONE_PLAN))
    page.get_by_role("button", name="Zoom in").click()
    page.get_by_role("button", name="Zoom in").click()
    page.locator(".seat-map").evaluate("box => { box.scrollLeft = box.scrollWidth; }")
    page.wait_for_function("document.querySelector('.seat-map').scrollLeft > 100")

    label = page.locator(".row-label", has_text=re.compile(r"^C$"))
    box, map_box = label.bounding_box(), page.locator(".seat-map").bounding_box()
    assert map_box["x"] <= box["x"] and box["x"] + box["width"] <= map_box["x"] + map_box["width"]
    # Nothing covers it: the letter is what is at its own centre.
    on_top = page.evaluate(
        "([x, y]) => document.elementFromPoint(x, y)?.textContent", [box["x"] + box["width"] / 2, box["y"] + 4]
    )
    assert on_top == "C"
    # The category's heading stays in view too.
    heading = page.locator(".seat-category span", has_text="Premium").bounding_box()
    assert map_box["x"] <= heading["x"] < map_box["x"] + map_box["width"]
    save_screenshot(page, "seat-map-phone-zoomed", full_page=False)


def test_the_chosen_seats_their_total_and_hold_stay_in_view_at_the_bottom(site, new_page):
    page = open_map(new_page, site, demo_show(plan=PHONE_PLAN))
    page.get_by_role("button", name="Zoom in").click()
    seat(page, "D10").click()
    seat(page, "D11").click()

    summary = page.locator("#selection-summary")
    expect(summary).to_have_text("2 seats: D10, D11 · $25.00")
    assert inside_viewport(page, page.locator("#seat-map-bar"))
    assert inside_viewport(page, hold_button(page))
    save_screenshot(page, "seat-map-phone-bar", full_page=False)

    hold_button(page).click()
    expect(page.get_by_role("heading", name="Checkout", level=1)).to_be_visible()


def test_held_seats_are_scrolled_into_view_when_the_map_is_zoomed(site, new_page):
    page = open_map(new_page, site, demo_show(plan=PHONE_PLAN))
    seat(page, "F19").click()
    seat(page, "F20").click()
    hold_button(page).click()
    expect(page.get_by_role("heading", name="Checkout", level=1)).to_be_visible()
    page.go_back()
    expect(seat_box(page, "F20")).to_have_attribute("data-status", "yours")
    page.get_by_role("button", name="Zoom in").click()
    page.get_by_role("button", name="Zoom in").click()
    page.reload()
    expect(page.locator(".seat-map[data-zoom]")).to_be_attached()

    map_box = page.locator(".seat-map").bounding_box()
    held = seat_box(page, "F20").bounding_box()
    assert map_box["x"] <= held["x"] and held["x"] + held["width"] <= map_box["x"] + map_box["width"]


def test_the_grid_is_one_tab_stop_and_the_arrow_keys_move_between_seats(site, new_page):
    page = open_map(new_page, site, demo_show(plan=PHONE_PLAN))
    tab_stops = "document.querySelectorAll('.seat-grid input[tabindex=\"0\"]').length"
    assert page.evaluate(tab_stops) == 1

    page.get_by_role("button", name="Zoom in").focus()
    page.keyboard.press("Tab")
    focused = "document.activeElement.closest('.seat')?.dataset.label"
    assert page.evaluate(focused) == "A1"  # nothing chosen: the first seat
    page.keyboard.press("ArrowRight")
    assert page.evaluate(focused) == "A2"
    page.keyboard.press("ArrowDown")
    assert page.evaluate(focused) == "B2"
    page.keyboard.press("End")
    assert page.evaluate(focused) == "B20"
    assert page.evaluate(tab_stops) == 1
    assert page.evaluate("document.activeElement.tabIndex") == 0

    page.keyboard.press("Space")
    expect(seat(page, "B20")).to_be_checked()
    page.keyboard.press("Tab")  # out of the grid at once: the next stop is Hold
    expect(hold_button(page)).to_be_focused()
    page.keyboard.press("Shift+Tab")  # and back to the seat it left
    assert page.evaluate(focused) == "B20"


def test_best_available_offers_the_categories_and_gives_the_cheapest_that_fits_by_default(site, new_page):
    show = demo_show(plan=PHONE_PLAN)
    page = open_map(new_page, site, show)
    category = page.get_by_label("Category")

    options = category.locator("option").all_inner_texts()
    assert options == ["Cheapest that fits", "Regular · $12.50", "Premium · $17.50"]
    expect(category).to_have_value("")
    page.get_by_role("button", name="Best available").click()
    expect(page.get_by_role("heading", name="Checkout", level=1)).to_be_visible()
    assert {seat.seat_type for seat in Reservation.objects.get().seat_claims()} == {"Regular"}

    other = open_map(new_page, site, show)
    other.get_by_label("Category").select_option("Premium")
    other.get_by_role("button", name="Best available").click()
    expect(other.get_by_role("heading", name="Checkout", level=1)).to_be_visible()
    premium = Reservation.objects.exclude(pk=Reservation.objects.earliest("created_at").pk).get()
    assert {seat.seat_type for seat in premium.seat_claims()} == {"Premium"}


def test_a_wheelchair_space_asks_for_the_buyers_word_and_keeps_its_mark_once_chosen(site, new_page):
    page = open_map(new_page, site, demo_show(plan=PHONE_PLAN))
    confirmation = page.get_by_role("checkbox", name=re.compile(r"^I need the wheelchair space"))
    expect(confirmation).to_be_hidden()

    seat(page, "A1").click()
    seat(page, "A2").click()
    expect(confirmation).to_be_visible()
    mark = seat_box(page, "A1").evaluate("seat => getComputedStyle(seat, '::after').content")
    assert "♿" in mark
    assert "seat--selected" in seat_box(page, "A1").get_attribute("class")

    hold_button(page).click()  # not confirmed: the page asks, and nothing is held
    expect(confirmation).to_be_focused()
    expect(page.locator("#selection-summary")).to_contain_text("tick the box to confirm")
    assert not Reservation.objects.exists()

    confirmation.check()
    hold_button(page).click()
    expect(page.get_by_role("heading", name="Checkout", level=1)).to_be_visible()
    assert [seat.seat_type for seat in Reservation.objects.get().seat_claims()] == ["Wheelchair", "Companion"]
