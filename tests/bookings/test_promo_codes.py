"""Promo codes (issue 18, point 2): applied to a hold at checkout and in the API, a line of the one price
breakdown, their limits counted by the database (bookings migration 0017). Races: test_promo_code_race.py."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from bookings.models import GiftCard, PromoCode, Reservation
from bookings.providers import parse_card
from bookings.services import (
    BookingError,
    apply_promo_code,
    cancel_hold,
    change_seats,
    hold_seats,
    pay_for_reservation,
    price_breakdown,
    release_lapsed_holds,
    remove_promo_code,
)
from bookings.services.gift_cards import gift_card_code
from tests.bookings.helpers import GOOD_CARD, labelled, pay, reserve
from tests.factories import NY_SALES_TAX, make_cinema, make_priced_show
from tests.helpers import assert_api_error
from ticketing.buyers import Buyer

pytestmark = pytest.mark.django_db


@pytest.fixture
def taxed_show(db):
    return make_priced_show(NY_SALES_TAX, "15.00", "22.00")


def code(name="SAVE20", **fields):
    return PromoCode.objects.create(code=name, **{"kind": "percent", "value": Decimal("20"), **fields})


def refusal(action):
    try:
        action()
    except BookingError as error:
        return error.code
    return None


def test_a_percentage_comes_off_the_tickets_before_the_tax_and_never_off_the_fee(alice, taxed_show):
    code("save20")
    hold = hold_seats(buyer=alice, show=taxed_show, seat_ids=labelled(taxed_show, "B1", "B2"))

    held = apply_promo_code(buyer=alice, reservation_id=hold.pk, code="Save20")

    # tickets 30 - 20 % = 24, + fee 3 = 27; tax 8.875 % = 2.39625 -> 2.40; total 29.40
    breakdown = price_breakdown(held)
    assert [(line.code, line.amount) for line in breakdown.discounts] == [("save20", Decimal("6.00"))]
    assert breakdown.fees[0].amount == Decimal("3.00") and breakdown.taxes[0].amount == Decimal("2.40")
    assert breakdown.total == held.amount == Decimal("29.40")
    assert PromoCode.objects.get().used == 1


def test_taking_the_code_off_prices_the_hold_again_and_gives_the_use_back(alice, taxed_show):
    code()
    hold = hold_seats(buyer=alice, show=taxed_show, seat_ids=labelled(taxed_show, "B1", "B2"))
    apply_promo_code(buyer=alice, reservation_id=hold.pk, code="SAVE20")

    held = remove_promo_code(buyer=alice, reservation_id=hold.pk, code="save20")

    assert price_breakdown(held).discounts == () and held.amount == Decimal("35.93") == hold.amount
    assert PromoCode.objects.get().used == 0


def test_a_fixed_amount_applies_in_its_own_currency_only_and_never_below_nothing(alice, taxed_show):
    code("TENOFF", kind="fixed", value=Decimal("10"), currency="USD")
    code("RUPEES", kind="fixed", value=Decimal("100"), currency="INR")
    code("BIG", kind="fixed", value=Decimal("500"), currency="USD", stackable=True)
    hold = hold_seats(buyer=alice, show=taxed_show, seat_ids=labelled(taxed_show, "B1"))

    assert refusal(lambda: apply_promo_code(buyer=alice, reservation_id=hold.pk, code="RUPEES")) == (
        "promo_code_not_applicable"
    )
    held = apply_promo_code(buyer=alice, reservation_id=hold.pk, code="BIG")

    # the tickets' 15.00 come off, the fee (1.50) and its tax (0.13) stay
    assert price_breakdown(held).discounts[0].amount == Decimal("15.00") and held.amount == Decimal("1.63")


def test_a_code_applies_only_in_its_window_and_to_its_movies_cinemas_and_shows(alice, taxed_show):
    now = timezone.now()
    code("LATER", valid_from=now + timedelta(days=1))
    code("OVER", valid_until=now - timedelta(minutes=1))
    elsewhere = code("ELSEWHERE")
    elsewhere.cinemas.add(make_cinema())
    here = code("HERE")
    here.movies.add(taxed_show.movie)
    here.shows.add(taxed_show)
    hold = hold_seats(buyer=alice, show=taxed_show, seat_ids=labelled(taxed_show, "B1"))

    def applied(name):
        return refusal(lambda: apply_promo_code(buyer=alice, reservation_id=hold.pk, code=name))

    assert [applied(name) for name in ("NOPE", "LATER", "OVER", "ELSEWHERE", "HERE")] == [
        "promo_code_invalid",
        "promo_code_expired",
        "promo_code_expired",
        "promo_code_not_applicable",
        None,
    ]
    assert list(PromoCode.objects.filter(used=1).values_list("code", flat=True)) == ["HERE"]


def test_codes_combine_only_when_both_are_stackable(alice, taxed_show):
    code("ALONE")
    code("TEN", value=Decimal("10"), stackable=True)
    code("FIVE", value=Decimal("5"), stackable=True)
    hold = hold_seats(buyer=alice, show=taxed_show, seat_ids=labelled(taxed_show, "B1", "B2"))

    apply_promo_code(buyer=alice, reservation_id=hold.pk, code="TEN")
    assert refusal(lambda: apply_promo_code(buyer=alice, reservation_id=hold.pk, code="ALONE")) == (
        "promo_code_not_stackable"
    )
    held = apply_promo_code(buyer=alice, reservation_id=hold.pk, code="FIVE")

    # 30 - 10 % = 27, then 5 % of what is left: 1.35
    assert [(line.code, line.amount) for line in price_breakdown(held).discounts] == [
        ("TEN", Decimal("3.00")),
        ("FIVE", Decimal("1.35")),
    ]


def test_a_lapsed_or_cancelled_hold_gives_its_use_back_and_a_booking_keeps_it(alice, bob, taxed_show):
    code(max_uses=3)
    lapsing, cancelled, booked = (
        hold_seats(buyer=Buyer(None, name), show=taxed_show, seat_ids=labelled(taxed_show, seat))
        for name, seat in (("ann", "B1"), ("ben", "B2"), ("cat", "B3"))
    )
    for hold in (lapsing, cancelled, booked):
        apply_promo_code(buyer=Buyer(None, hold.session_id), reservation_id=hold.pk, code="SAVE20")
    paid = pay_for_reservation(buyer=Buyer(None, "cat"), reservation_id=booked.pk, card=parse_card(GOOD_CARD))
    cancel_hold(buyer=Buyer(None, "ben"), reservation_id=cancelled.pk)
    assert PromoCode.objects.get().used == 2

    with time_machine.travel(timezone.now() + timedelta(minutes=6)):
        release_lapsed_holds()

    assert PromoCode.objects.get().used == 1 and paid.status == "Booked"
    assert paid.amount == Decimal("14.70")  # 15 - 3 + 1.50 = 13.50, + 8.875 % (1.20): what the card paid


def test_a_buyer_may_use_a_code_only_as_often_as_it_allows(alice, bob, taxed_show):
    code(max_uses_per_buyer=1)
    first, second = (
        hold_seats(buyer=alice, show=taxed_show, seat_ids=labelled(taxed_show, seat)) for seat in ("B1", "B2")
    )
    others = hold_seats(buyer=bob, show=taxed_show, seat_ids=labelled(taxed_show, "B3"))

    apply_promo_code(buyer=alice, reservation_id=first.pk, code="SAVE20")
    assert refusal(lambda: apply_promo_code(buyer=alice, reservation_id=second.pk, code="SAVE20")) == (
        "promo_code_buyer_limit"
    )
    apply_promo_code(buyer=bob, reservation_id=others.pk, code="SAVE20")
    remove_promo_code(buyer=alice, reservation_id=first.pk, code="SAVE20")
    apply_promo_code(buyer=alice, reservation_id=second.pk, code="SAVE20")


def test_the_api_applies_and_removes_a_code_and_answers_refusals_with_its_error_body(api, taxed_show):
    code(max_uses=1)
    held = reserve(api, taxed_show, labelled(taxed_show, "B1", "B2")).json()
    other = reserve(api, taxed_show, labelled(taxed_show, "B3"), session="bob").json()
    url = f"/api/v1/reservations/{held['reservation_id']}/promo-code"

    applied = api.post(url, {"session_id": "alice", "code": "save20"}, format="json")

    assert applied.status_code == 200
    body = applied.json()
    assert body["price_breakdown"]["discounts"] == [{"code": "SAVE20", "amount": "6.00"}]
    assert body["amount"] == body["price_breakdown"]["total"] == "29.40"
    assert_api_error(
        api.post(
            f"/api/v1/reservations/{other['reservation_id']}/promo-code",
            {"session_id": "bob", "code": "SAVE20"},
            format="json",
        ),
        409,
        "promo_code_used_up",
    )
    assert_api_error(api.post(url, {"session_id": "alice", "code": "NOPE"}, format="json"), 400, "promo_code_invalid")
    assert_api_error(
        api.post(url, {"session_id": "alice", "code": "no spaces!"}, format="json"),
        400,
        "invalid_request",
        field="code",
    )
    assert api.post(url, {"session_id": "mallory", "code": "SAVE20"}, format="json").status_code == 404
    paid = pay(api, held["reservation_id"])
    assert paid.json()["amount"] == "29.40"
    assert_api_error(api.delete(f"{url}?session_id=alice&code=SAVE20"), 409, "already_booked")


def test_the_api_takes_a_code_off(api, taxed_show):
    code()
    held = reserve(api, taxed_show, labelled(taxed_show, "B1", "B2")).json()
    url = f"/api/v1/reservations/{held['reservation_id']}/promo-code"
    api.post(url, {"session_id": "alice", "code": "SAVE20"}, format="json")

    removed = api.delete(f"{url}?session_id=alice&code=save20")

    assert removed.status_code == 200 and removed.json()["price_breakdown"] == held["price_breakdown"]
    assert removed.json()["amount"] == held["amount"] == "35.93"


def test_checkout_applies_a_code_and_says_why_one_is_refused(taxed_show):
    code()
    client = Client()
    response = client.post(f"/shows/{taxed_show.pk}/hold", {"seats": labelled(taxed_show, "B1", "B2")})
    checkout = response["Location"]
    reservation_id = checkout.split("/")[2]

    refused = client.post(f"/holds/{reservation_id}/promo-code", {"code": "NOPE"})
    applied = client.post(f"/holds/{reservation_id}/promo-code", {"code": "save20"})
    page = client.get(checkout).content.decode()

    assert refused.status_code == 400 and "There is no such promo code" in refused.content.decode()
    assert applied.status_code == 302
    assert "Promo code SAVE20" in page and "−$6.00" in page and 'id="price-total">$29.40<' in page
    assert "Pay $29.40" in page and "Remove promo code SAVE20" in page
    assert Reservation.objects.get(pk=reservation_id).amount == Decimal("29.40")


def test_the_openapi_schema_documents_the_promo_code_calls_and_the_price_breakdown(tmp_path):
    schema = tmp_path / "schema.json"
    call_command("spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", "--file", str(schema))
    document = json.loads(schema.read_text())

    promo = document["paths"]["/api/v1/reservations/{reservation_id}/promo-code"]
    assert {"post", "delete"} <= set(promo)
    assert {parameter["name"] for parameter in promo["delete"]["parameters"]} >= {"session_id", "code"}
    breakdown = document["components"]["schemas"]["PriceBreakdown"]["properties"]
    assert set(breakdown) == {"seats", "fees", "taxes", "discounts", "add_ons", "total", "currency"}
    assert "price_breakdown" in document["components"]["schemas"]["Reservation"]["properties"]


def test_a_change_of_seats_keeps_the_code_and_its_percentage_follows_the_new_seats(alice, taxed_show):
    code()
    hold = hold_seats(buyer=alice, show=taxed_show, seat_ids=labelled(taxed_show, "B1", "B2"))
    apply_promo_code(buyer=alice, reservation_id=hold.pk, code="SAVE20")

    changed = change_seats(buyer=alice, reservation_id=hold.pk, seat_ids=labelled(taxed_show, "A1"))

    # 22 - 20 % (4.40) = 17.60, + fee 1.50 = 19.10, + 8.875 % (1.70) = 20.80
    breakdown = price_breakdown(Reservation.objects.get(pk=hold.pk))
    assert [(line.code, line.amount) for line in breakdown.discounts] == [("SAVE20", Decimal("4.40"))]
    assert breakdown.total == changed.amount == Decimal("20.80") and PromoCode.objects.get().used == 1


def test_the_demo_promo_codes_and_gift_card_are_made_once_and_printed(capsys):
    call_command("seed_promo_codes")
    call_command("seed_promo_codes")

    assert sorted(PromoCode.objects.values_list("code", flat=True)) == ["FIVEOFF", "WELCOME10"]
    printed = capsys.readouterr().out
    assert "Promo code WELCOME10: 10 % off the tickets, any show" in printed
    assert "Gift card DEMO-GIFT-CARD-0050: $50 for US cinemas" in printed
    card = GiftCard.objects.get()
    assert (card.balance, card.currency) == (Decimal("50.00"), "USD")
    assert gift_card_code("demo-gift-card-0050") == card.code  # as a buyer types it


def test_staff_make_a_code_scoped_to_a_movie_in_the_admin_and_a_second_in_another_case_is_refused(
    admin_client, taxed_show
):
    form = {
        "code": "Summer",
        "kind": "fixed",
        "value": "5",
        "currency": "USD",
        "valid_from_0": "",
        "valid_from_1": "",
        "valid_until_0": "",
        "valid_until_1": "",
        "max_uses": "100",
        "max_uses_per_buyer": "1",
        "movies": [taxed_show.movie_id],
        "redemptions-TOTAL_FORMS": "0",
        "redemptions-INITIAL_FORMS": "0",
    }

    made = admin_client.post("/admin/bookings/promocode/add/", form)
    again = admin_client.post("/admin/bookings/promocode/add/", {**form, "code": "SUMMER"})

    assert made.status_code == 302
    summer = PromoCode.objects.get()
    assert (summer.code, summer.max_uses, list(summer.movies.all())) == ("Summer", 100, [taxed_show.movie])
    assert again.status_code == 200 and PromoCode.objects.count() == 1
    assert "A promo code with this code already exists (in any case)." in str(again.context["adminform"].form.errors)
