"""The admin's "Schedule shows in bulk" in Chromium on a 375-px phone: a manager logs in, previews a fortnight of
evening shows with a clash marked, moves the time and creates them, the page never wider than the phone."""

import re
from datetime import UTC, datetime

import pytest
from django.contrib.auth.hashers import make_password
from playwright.sync_api import expect

from cinemas.models import HallPrice, Show, StaffRole
from tests.browser_flows import save_screenshot
from tests.factories import make_cinema, make_hall, make_movie, make_show, make_staff_member

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 375, "height": 812}
PASSWORD = "manager-password-5"


def no_wider_than_the_phone(page):
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]


def test_a_manager_previews_and_creates_a_fortnight_of_shows_on_a_phone(site, new_page):
    hall = make_hall(cinema=make_cinema(name="Cine Sol", time_zone="Europe/Madrid"), name="Sala 1")
    for seat_type in hall.capacity:
        HallPrice.objects.create(hall=hall, seat_type=seat_type, price="9.50")
    make_movie(title="Amélie", duration=120)
    make_show(hall=hall, movie=make_movie(title="Dune"), starts_at=datetime(2026, 6, 12, 18, 0, tzinfo=UTC))
    manager = make_staff_member(roles=[(hall.cinema, StaffRole.MANAGER)], username="manuela")
    manager.password = make_password(PASSWORD, hasher="pbkdf2_sha256")  # hashed as the server hashes
    manager.save(update_fields=["password"])

    page = new_page(base_url=site, viewport=PHONE)
    page.goto("/admin/cinemas/show/schedule-in-bulk/")
    page.get_by_label("Username").fill("manuela")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Schedule shows in bulk")).to_be_visible()
    no_wider_than_the_phone(page)

    page.get_by_label("Movie").select_option(label="Amélie")
    page.get_by_label("Hall").select_option(label="Cine Sol – Sala 1")
    page.get_by_label("First day").fill("2026-06-01")
    page.get_by_label("Last day").fill("2026-06-14")
    page.get_by_label("Friday").check()
    page.get_by_label("Saturday").check()
    page.get_by_label("Start times (cinema's local time)").fill("20:30")
    page.get_by_role("button", name="Preview").click()

    expect(page.get_by_role("heading", name="The 4 shows it would create in Cine Sol – Sala 1")).to_be_visible()
    expect(page.get_by_role("columnheader", name="Starts (Europe/Madrid)")).to_be_visible()
    expect(page.locator("tr.clash")).to_have_count(1)
    expect(page.locator("tr.clash")).to_contain_text("Fri 12 Jun 2026 20:30")
    expect(page.locator(".bulk-plan .errorlist")).to_contain_text("clashes with Dune, Fri 12 Jun 20:00–22:00")
    no_wider_than_the_phone(page)
    save_screenshot(page, "schedule-in-bulk-phone")

    page.get_by_role("button", name="Create the shows").click()
    expect(page.locator(".errornote")).to_be_visible()
    assert not Show.objects.filter(movie__title="Amélie").exists()

    page.get_by_label("Start times (cinema's local time)").fill("22:15")
    page.get_by_role("button", name="Create the shows").click()
    expect(page.get_by_text(re.compile("Scheduled 4 shows of Amélie in Cine Sol – Sala 1"))).to_be_visible()
    local = [f"{show.local_starts_at:%a %d %H:%M}" for show in Show.objects.filter(movie__title="Amélie")]
    assert local == ["Fri 05 22:15", "Sat 06 22:15", "Fri 12 22:15", "Sat 13 22:15"]
