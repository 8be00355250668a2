"""One price breakdown (issue 18, point 2: money): computed by bookings_price_breakdown in the hold's own call,
stored with the hold (its total is the amount paying charges) and shown the same on checkout, the ticket, the
mail, the API and the admin; every amount in the show's cinema's currency, rounded to that currency's decimals.
"""

from decimal import Decimal

import pytest
from babel.numbers import get_currency_precision, list_currencies
from django.db import connection
from django.test import Client
from django.utils import translation
from django.utils.translation import gettext

from bookings.models import OutgoingMail, Payment, Reservation
from bookings.providers import get_provider
from bookings.services import cancel_hold, change_seats, hold_seats, price_breakdown
from bookings.services.mail import compose_mail
from tests.bookings.helpers import labelled, pay, reserve
from tests.factories import NY_SALES_TAX, make_priced_show
from ticketing.buyers import Buyer
from ticketing.templatetags.site_format import money_text
from waiting.services import join_waiting_line, serve_waiting_line

pytestmark = pytest.mark.django_db

CARD = {"card_number": "4242 4242 4242 4242", "exp_month": "12", "exp_year": "2035", "cvc": "123"}
GST_INR = {
    "currency": "INR",
    "tax_name": "GST",
    "tax_rate": Decimal("18"),
    "tax_included": True,
    "convenience_fee": Decimal("30"),
}
YEN = {
    "currency": "JPY",
    "tax_name": "Consumption tax",
    "tax_rate": Decimal("10"),
    "tax_included": True,
    "convenience_fee": Decimal("100"),
}


def test_gst_is_included_in_rupee_prices_and_the_fee(api):
    show = make_priced_show(GST_INR, "250.00", "450.00")
    seats = labelled(show, "A1", "A2")

    body = reserve(api, show, seats).json()

    # tickets 900 + fee 2 x 30 = 960, of which GST 18 %: 960 - 960 / 1.18 = 146.44
    assert body["price_breakdown"] == {
        "seats": [
            {"id": seats[0], "type": "Premium", "price": "450.00"},
            {"id": seats[1], "type": "Premium", "price": "450.00"},
        ],
        "fees": [{"name": "Convenience fee", "amount": "60.00"}],
        "taxes": [{"name": "GST", "rate": "18", "amount": "146.44", "included": True}],
        "discounts": [],
        "add_ons": [],
        "total": "960.00",
        "currency": "INR",
    }
    assert body["amount"] == "960.00" and body["currency"] == "INR"
    assert Reservation.objects.get(pk=body["reservation_id"]).amount == Decimal("960.00")


def test_us_sales_tax_is_added_on_top_of_tickets_and_fee_and_the_total_is_what_the_provider_charges(api):
    show = make_priced_show(NY_SALES_TAX, "15.00", "22.00")
    held = reserve(api, show, labelled(show, "B1", "B2", "A1")).json()

    paid = pay(api, held["reservation_id"])

    # tickets 15 + 15 + 22 = 52, fee 3 x 1.50 = 4.50; tax 8.875 % of 56.50 = 5.014375 -> 5.01
    assert held["price_breakdown"]["fees"] == [{"name": "Convenience fee", "amount": "4.50"}]
    assert held["price_breakdown"]["taxes"] == [
        {"name": "Sales tax", "rate": "8.875", "amount": "5.01", "included": False}
    ]
    assert held["amount"] == held["price_breakdown"]["total"] == "61.51"
    assert paid.status_code == 200
    assert paid.json()["price_breakdown"] == held["price_breakdown"] and paid.json()["amount"] == "61.51"
    charge = Payment.objects.get(reservation_id=held["reservation_id"], kind="charge")
    assert (charge.amount, charge.currency) == (Decimal("61.51"), "USD")
    (at_provider,) = [found for found in get_provider().charges() if found.idempotency_key == str(charge.pk)]
    assert (at_provider.amount, at_provider.currency) == (Decimal("61.51"), "USD")
    assert (
        api.get(f"/api/v1/reservations/{held['reservation_id']}", {"session_id": "alice"}).json()["price_breakdown"]
        == held["price_breakdown"]
    )


def test_a_currency_without_decimals_is_priced_in_whole_yen(api):
    show = make_priced_show(YEN, "1800.00", "2400.50")

    body = reserve(api, show, labelled(show, "A1", "B1")).json()

    # tickets 2401 (2400.50 rounds half up) + 1800, fee 200: 4401; tax included 4401 - 4401 / 1.1 = 400.09 -> 400
    breakdown = body["price_breakdown"]
    assert [seat["price"] for seat in breakdown["seats"]] == ["2401", "1800"]
    assert breakdown["fees"][0]["amount"] == "200" and breakdown["taxes"][0]["amount"] == "400"
    assert body["amount"] == breakdown["total"] == "4401" and breakdown["currency"] == "JPY"


def test_a_cancelled_hold_answers_with_the_breakdown_it_had(api):
    show = make_priced_show(NY_SALES_TAX, "15.00", "22.00")
    held = reserve(api, show, labelled(show, "B1")).json()

    cancelled = api.delete(f"/api/v1/reservations/{held['reservation_id']}?session_id=alice").json()

    assert cancelled["status"] == "Cancelled" and cancelled["price_breakdown"] == held["price_breakdown"]


def test_a_change_of_seats_is_priced_again_on_the_terms_the_hold_was_made_on(alice):
    show = make_priced_show(NY_SALES_TAX, "15.00", "22.00")
    hold = hold_seats(buyer=alice, show=show, seat_ids=labelled(show, "B1"))
    show.hall.cinema.__class__.objects.filter(pk=show.hall.cinema_id).update(convenience_fee=Decimal("9.00"))

    changed = change_seats(buyer=alice, reservation_id=hold.pk, seat_ids=labelled(show, "A1", "A2"))

    breakdown = price_breakdown(Reservation.objects.get(pk=hold.pk))
    assert breakdown.fees[0].amount == Decimal("3.00")  # 2 x 1.50, the fee when the hold was made
    assert breakdown.total == changed.amount == Reservation.objects.get(pk=hold.pk).amount == Decimal("51.17")
    assert [(line.type, line.count, line.amount) for line in breakdown.categories] == [("Premium", 2, Decimal("44.00"))]


def test_holds_are_in_their_cinemas_currency_and_so_are_the_shows_prices(api):
    pounds = make_priced_show({"currency": "GBP", "tax_name": "VAT", "tax_rate": Decimal("20")}, "12.50", "17.50")
    dollars = make_priced_show({}, "15.00", "22.00")

    in_pounds = reserve(api, pounds, labelled(pounds, "B1")).json()
    in_dollars = reserve(api, dollars, labelled(dollars, "B1"), session="bob").json()

    assert (in_pounds["currency"], in_dollars["currency"]) == ("GBP", "USD")
    detail = api.get(f"/api/v1/shows/{pounds.pk}").json()
    assert detail["currency"] == "GBP" and detail["price_range"] == {"min": "12.50", "max": "17.50", "currency": "GBP"}
    assert api.get(f"/api/v1/shows/{pounds.pk}/seats").json()["currency"] == "GBP"
    assert "£12.50" in Client().get(f"/shows/{pounds.pk}/").content.decode()


@pytest.mark.parametrize(
    ("language", "amount", "currency", "shown"),
    [
        ("en", "450", "INR", "₹450.00"),
        ("en", "12.5", "GBP", "£12.50"),
        ("en", "15", "USD", "$15.00"),
        ("es", "12", "EUR", "12,00\xa0€"),
        ("en", "1800.5", "JPY", "¥1,801"),
        ("en", "3.5", "KWD", "KWD3.500"),
    ],
)
def test_amounts_are_written_in_the_readers_language_with_the_currencys_symbol_and_decimals(
    language, amount, currency, shown
):
    with translation.override(language):
        assert money_text(Decimal(amount), currency) == shown


def test_the_currencies_decimals_in_the_database_are_babels():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT code, bookings_currency_exponent(code) FROM unnest(%s::text[]) code", [sorted(list_currencies())]
        )
        assert dict(cursor.fetchall()) == {code: get_currency_precision(code) for code in list_currencies()}


def test_checkout_the_ticket_the_mail_and_the_admin_show_the_same_lines(admin_client):
    show = make_priced_show(GST_INR, "250.00", "450.00")
    client = Client()
    response = client.post(f"/shows/{show.pk}/hold", {"seats": labelled(show, "A1", "A2", "B1")})
    reservation_id = response["Location"].split("/")[2]

    checkout = client.get(f"/holds/{reservation_id}/").content.decode()
    client.post(f"/holds/{reservation_id}/pay", {**CARD, "email": "ann@example.com"})
    ticket = client.get(f"/tickets/{reservation_id}/").content.decode()
    mail = compose_mail(OutgoingMail.objects.get(reservation_id=reservation_id)).body
    admin = admin_client.get(f"/admin/bookings/reservation/{reservation_id}/change/").content.decode()

    lines = [
        "2 × Premium ₹450.00",
        "₹900.00",
        "1 × Regular ₹250.00",
        "Convenience fee",
        "₹90.00",
        "Includes GST 18 %",
        "₹189.15",
        "₹1,240.00",
    ]
    for page in (checkout, ticket, mail, admin):
        assert all(line in page for line in lines), [line for line in lines if line not in page]
    assert 'id="price-total">₹1,240.00<' in checkout and "Pay ₹1,240.00" in checkout
    assert "Total: ₹1,240.00" in mail


def test_the_spanish_checkout_writes_the_lines_in_spanish():
    show = make_priced_show(
        {"currency": "EUR", "tax_name": "IVA", "tax_rate": Decimal("10"), "convenience_fee": "1"}, "12", "17"
    )
    client = Client(headers={"accept-language": "es"})
    with translation.override("es"):  # and back to the test's language after the requests activated Spanish
        response = client.post(f"/shows/{show.pk}/hold", {"seats": labelled(show, "B1", "B2")})
        page = client.get(response["Location"]).content.decode()
        fee = gettext("Convenience fee")

    assert "2 × Normal 12,00\xa0€" in page and fee in page and "Incluye IVA 10 %" in page
    assert 'id="price-total">26,00\xa0€<' in page


def test_a_hold_made_for_the_head_of_the_waiting_line_is_priced_like_any_other():
    show = make_priced_show({**GST_INR, "tax_rate": Decimal("0")}, "250.00", "450.00")
    open_seats = show.hall.seats.filter(seat_type__in=["Regular", "Premium"]).order_by("-seat_type", "y", "x")
    others = [
        hold_seats(buyer=Buyer(None, f"holder-{seat}"), show=show, seat_ids=[seat])
        for seat in open_seats.values_list("id", flat=True)
    ]
    join_waiting_line(buyer=Buyer(None, "waiter"), show=show, seats_wanted=1)
    cancel_hold(buyer=Buyer(None, others[0].session_id), reservation_id=others[0].pk)  # a Regular seat

    serve_waiting_line(show_id=show.pk)

    served = Reservation.objects.get(session_id="waiter")
    assert (served.currency, served.amount) == ("INR", Decimal("280.00"))  # 250 and the 30 fee
    assert price_breakdown(served).fees[0].amount == Decimal("30.00")
