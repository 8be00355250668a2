"""Food and drink and a gift card at checkout in a real browser (Chromium through the real uvicorn), on a phone:
the buyer orders from the cinema's menu, sees the items as lines of the price breakdown and in the total, lets a gift
card pay part of it, pays the rest by card, and finds the order with its pickup code on the ticket."""

import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from bookings.models import GiftCard, Payment
from bookings.services.gift_cards import issue_gift_card
from cinemas.models import MenuItem
from tests.browser_flows import choose_and_hold, expect_ticket, fill_card, pay_button, save_screenshot, small_show

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 375, "height": 812}


def test_a_buyer_orders_food_pays_part_with_a_gift_card_and_finds_the_pickup_code_on_the_ticket(site, new_page):
    show = small_show()  # Regular seats at $12.50
    cinema = show.hall.cinema
    popcorn = MenuItem.objects.create(cinema=cinema, name="Popcorn", price=Decimal("8.50"), stock=1)  # the last one
    MenuItem.objects.create(cinema=cinema, name="Soft drink", price=Decimal("5.00"), stock=50)
    gift = issue_gift_card(currency="USD", value=Decimal("10.00"))
    page = new_page(base_url=site, viewport=PHONE)
    page.goto(f"/shows/{show.pk}/")
    reservation_id = choose_and_hold(page, "B1", "B2")

    menu = page.locator("#add-ons")
    page.get_by_label(re.compile("^Popcorn")).fill("2")
    menu.get_by_role("button", name="Update my order").click()
    expect(page.locator("#refusal")).to_contain_text("Popcorn is sold out for now: 1 left.")
    page.get_by_label(re.compile("^Popcorn")).fill("1")
    page.get_by_label(re.compile("^Soft drink")).fill("2")
    page.locator("#add-ons").get_by_role("button", name="Update my order").click()

    breakdown = page.locator("#price-breakdown")
    expect(breakdown.locator(".price-breakdown__add-on")).to_have_count(2)
    expect(breakdown).to_contain_text("1 × Popcorn")
    expect(breakdown).to_contain_text("2 × Soft drink")
    expect(page.locator("#price-total")).to_have_text("$43.50")  # 25.00 + 8.50 + 10.00
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    page.get_by_label("Gift card code").fill(gift.code.lower())
    page.get_by_role("button", name="Use the gift card").click()
    expect(page.locator("#amount-due")).to_contain_text("$33.50")
    expect(pay_button(page)).to_have_text("Pay $33.50")
    save_screenshot(page, "checkout-food-and-gift-card-phone")
    fill_card(page)
    pay_button(page).click()

    expect_ticket(page, reservation_id)
    pickup = page.locator("#pickup")
    expect(pickup).to_contain_text("1 × Popcorn")
    expect(pickup).to_contain_text(re.compile(r"Pickup code at the counter: \w{6}"))
    charge = Payment.objects.get(reservation_id=reservation_id, kind="charge")
    assert (charge.amount, charge.status) == (Decimal("33.50"), "succeeded")
    assert GiftCard.objects.get(pk=gift.pk).balance == 0
    assert MenuItem.objects.get(pk=popcorn.pk).stock == 0
