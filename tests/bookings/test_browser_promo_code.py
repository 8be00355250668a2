"""A promo code at checkout in a real browser (Chromium through the real uvicorn), on a phone: the buyer sees
the discount as a line of the price breakdown and the new total, and pays that total."""

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from bookings.models import Payment, PromoCode
from cinemas.models import Cinema
from tests.browser_flows import choose_and_hold, expect_ticket, fill_card, pay_button, save_screenshot, seat, small_show

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 375, "height": 812}


def test_a_buyer_applies_a_promo_code_at_checkout_sees_the_discount_and_the_new_total_and_pays_it(site, new_page):
    show = small_show()  # Regular seats at $12.50
    Cinema.objects.filter(pk=show.hall.cinema_id).update(
        convenience_fee=Decimal("1.50"), tax_name="Sales tax", tax_rate=Decimal("8.875"), tax_included=False
    )
    PromoCode.objects.create(code="SAVE20", kind="percent", value=Decimal("20"))
    page = new_page(base_url=site, viewport=PHONE)
    page.goto(f"/shows/{show.pk}/")
    reservation_id = choose_and_hold(page, "B1", "B2")

    breakdown = page.locator("#price-breakdown")
    expect(breakdown).to_contain_text("2 × Regular $12.50")
    expect(breakdown).to_contain_text("Convenience fee")
    expect(breakdown).to_contain_text("Sales tax 8.875 %")
    expect(page.locator("#price-total")).to_have_text("$30.49")  # 25 + 3.00 fee + 2.49 tax

    page.get_by_label("Promo code").fill("nope")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#promo-error")).to_have_text("There is no such promo code; check how it is spelt.")
    page.get_by_label("Promo code").fill("save20")
    page.get_by_role("button", name="Apply").click()

    expect(breakdown.locator(".price-breakdown__discount")).to_contain_text("Promo code SAVE20")
    expect(breakdown.locator(".price-breakdown__discount")).to_contain_text("−$5.00")
    expect(page.locator("#price-total")).to_have_text("$25.04")  # 20 + 3.00 fee + 2.04 tax
    expect(pay_button(page)).to_have_text("Pay $25.04")
    save_screenshot(page, "checkout-promo-code-phone")
    fill_card(page)
    pay_button(page).click()

    expect_ticket(page, reservation_id)
    expect(page.locator("#price-breakdown")).to_contain_text("Promo code SAVE20")
    charge = Payment.objects.get(reservation_id=reservation_id, kind="charge")
    assert (charge.amount, charge.status) == (Decimal("25.04"), "succeeded")
    assert PromoCode.objects.get().used == 1


def test_the_seat_maps_total_is_in_the_cinemas_currency(site, new_page):
    show = small_show()  # Premium seats at 17.50
    Cinema.objects.filter(pk=show.hall.cinema_id).update(currency="GBP")
    page = new_page(base_url=site, viewport=PHONE)
    page.goto(f"/shows/{show.pk}/")

    seat(page, "A1").click()
    seat(page, "A2").click()

    expect(page.locator("#selection-summary")).to_have_text("2 seats: A1, A2 · £35.00")
    expect(page.locator("ul.legend")).to_contain_text("£17.50")
