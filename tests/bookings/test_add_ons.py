"""Food and drink at checkout: taken from the cinema's stock while the hold lives, given back when it ends unpaid or
the booking is cancelled, and never sold past the stock, however many buyers race for the last ones."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from bookings.models import Payment, Reservation, ReservationAddOn
from bookings.providers import parse_card
from bookings.services import (
    BookingError,
    cancel_booking,
    cancel_hold,
    hold_seats,
    pay_for_reservation,
    release_lapsed_holds,
)
from bookings.services.add_ons import choose_add_ons, pickup, pickup_lines
from bookings.services.gift_cards import issue_gift_card, redeem_gift_card
from bookings.services.prices import price_breakdown
from cinemas.models import STOCK_CHECK, MenuItem
from tests.bookings.helpers import GOOD_CARD, reserve, seat_ids
from tests.factories import make_api_key, make_cinema, make_hall, make_show
from tests.helpers import assert_api_error, get_ok, run_at_once
from ticketing.buyers import Buyer


def popcorn(cinema, stock=10, **fields):
    fields.setdefault("name", "Popcorn")
    return MenuItem.objects.create(cinema=cinema, price=Decimal("6.50"), stock=stock, **fields)


def stock_of(item):
    return MenuItem.objects.values_list("stock", flat=True).get(pk=item.pk)


def holding(show, buyer, seat):
    return hold_seats(buyer=buyer, show=show, seat_ids=[seat])


@pytest.fixture
def alice():
    return Buyer(None, "alice")


@pytest.fixture
def hall(db):
    return make_hall(plan="R" * 30)


@pytest.fixture
def show(hall):
    return make_show(hall=hall)


@pytest.mark.django_db
class TestChoosingAddOns:
    def test_adding_takes_from_the_stock_at_the_price_of_the_day(self, show, alice):
        item = popcorn(show.hall.cinema)
        hold = holding(show, alice, seat_ids(show)[0])
        choose_add_ons(buyer=alice, reservation_id=hold.pk, quantities={item.pk: 3})
        assert stock_of(item) == 7
        assert pickup_lines(hold) == [(3, "Popcorn", Decimal("6.50"))]

    def test_changing_the_quantity_takes_or_gives_back_only_the_difference(self, show, alice):
        item = popcorn(show.hall.cinema)
        hold = holding(show, alice, seat_ids(show)[0])
        choose_add_ons(buyer=alice, reservation_id=hold.pk, quantities={item.pk: 3})
        choose_add_ons(buyer=alice, reservation_id=hold.pk, quantities={item.pk: 5})
        assert stock_of(item) == 5
        choose_add_ons(buyer=alice, reservation_id=hold.pk, quantities={item.pk: 0})
        assert stock_of(item) == 10
        assert not ReservationAddOn.objects.exists()

    def test_an_order_past_the_stock_is_refused_whole_and_says_how_many_are_left(self, show, alice):
        cinema = show.hall.cinema
        drink, snack = popcorn(cinema, name="Cola", stock=10), popcorn(cinema, name="Nachos", stock=2)
        hold = holding(show, alice, seat_ids(show)[0])
        with pytest.raises(BookingError) as refusal:
            choose_add_ons(buyer=alice, reservation_id=hold.pk, quantities={drink.pk: 2, snack.pk: 3})
        assert refusal.value.code == "add_on_sold_out"
        assert "Nachos" in refusal.value.message and "2 left" in refusal.value.message
        assert (stock_of(drink), stock_of(snack)) == (10, 2)
        assert not ReservationAddOn.objects.exists()

    def test_another_cinemas_menu_and_items_off_sale_are_refused(self, show, alice):
        elsewhere = popcorn(make_cinema())
        withdrawn = popcorn(show.hall.cinema, on_sale=False)
        hold = holding(show, alice, seat_ids(show)[0])
        for item in (elsewhere, withdrawn):
            with pytest.raises(BookingError) as refusal:
                choose_add_ons(buyer=alice, reservation_id=hold.pk, quantities={item.pk: 1})
            assert refusal.value.code == "add_on_unknown"
            assert stock_of(item) == 10

    def test_more_than_ten_of_one_item_or_a_negative_count_is_refused(self, show, alice):
        item = popcorn(show.hall.cinema, stock=50)
        hold = holding(show, alice, seat_ids(show)[0])
        for quantity in (11, -1):
            with pytest.raises(BookingError) as refusal:
                choose_add_ons(buyer=alice, reservation_id=hold.pk, quantities={item.pk: quantity})
            assert refusal.value.code == "too_many_add_ons"
        assert stock_of(item) == 50

    def test_only_the_holder_may_add_and_only_to_a_live_hold(self, show, alice):
        item = popcorn(show.hall.cinema)
        hold = holding(show, alice, seat_ids(show)[0])
        with pytest.raises(BookingError) as refusal:
            choose_add_ons(buyer=Buyer(None, "mallory"), reservation_id=hold.pk, quantities={item.pk: 1})
        assert refusal.value.code == "not_found"
        later = timezone.now() + timedelta(minutes=10)
        with pytest.raises(BookingError) as refusal:
            choose_add_ons(buyer=alice, reservation_id=hold.pk, quantities={item.pk: 1}, at=later)
        assert refusal.value.code == "hold_expired"
        assert stock_of(item) == 10


@pytest.mark.django_db
class TestTheStockComesBack:
    def test_when_the_hold_lapses_and_the_sweep_expires_it(self, show, alice):
        item = popcorn(show.hall.cinema)
        hold = holding(show, alice, seat_ids(show)[0])
        choose_add_ons(buyer=alice, reservation_id=hold.pk, quantities={item.pk: 4})
        release_lapsed_holds(at=timezone.now() + timedelta(minutes=10))
        assert stock_of(item) == 10

    def test_when_the_buyer_gives_the_hold_up(self, show, alice):
        item = popcorn(show.hall.cinema)
        hold = holding(show, alice, seat_ids(show)[0])
        choose_add_ons(buyer=alice, reservation_id=hold.pk, quantities={item.pk: 4})
        cancel_hold(buyer=alice, reservation_id=hold.pk)
        assert stock_of(item) == 10

    def test_when_another_buyer_takes_over_the_lapsed_holds_seat(self, show, alice):
        item = popcorn(show.hall.cinema)
        seat = seat_ids(show)[0]
        hold = holding(show, alice, seat)
        choose_add_ons(buyer=alice, reservation_id=hold.pk, quantities={item.pk: 4})
        hold_seats(buyer=Buyer(None, "bob"), show=show, seat_ids=[seat], at=timezone.now() + timedelta(minutes=10))
        assert stock_of(item) == 10

    def test_not_when_it_is_paid_but_when_the_booking_is_cancelled(self, show, alice):
        item = popcorn(show.hall.cinema)
        hold = holding(show, alice, seat_ids(show)[0])
        choose_add_ons(buyer=alice, reservation_id=hold.pk, quantities={item.pk: 4})
        pay_for_reservation(buyer=alice, reservation_id=hold.pk, card=parse_card(GOOD_CARD))
        release_lapsed_holds(at=timezone.now() + timedelta(minutes=10))
        assert stock_of(item) == 6
        cancel_booking(reservation_id=hold.pk)
        assert stock_of(item) == 10


LAST_ONES = 5
BUYERS = 20


def race_for_the_last_ones(show, item):
    """BUYERS buyers, each with a hold of their own, order one of the item at the same moment; their outcomes."""
    seats = seat_ids(show)
    holds = [holding(show, Buyer(None, f"buyer-{n}"), seats[n]) for n in range(BUYERS)]

    def order(n):
        def attempt():
            try:
                choose_add_ons(buyer=Buyer(None, f"buyer-{n}"), reservation_id=holds[n].pk, quantities={item.pk: 1})
            except BookingError as refusal:
                return refusal.code
            return "ordered"

        return attempt

    return sorted(run_at_once([order(n) for n in range(BUYERS)]))


@pytest.mark.django_db(transaction=True)
class TestTheLastOnesRace:
    def test_negative_control_without_the_stock_check_racing_buyers_sell_more_than_there_is(self, show):
        """Proves the race can see an oversale: without the CHECK, every buyer gets one and the stock goes below 0."""
        item = popcorn(show.hall.cinema, stock=LAST_ONES)
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE cinemas_menuitem DROP CONSTRAINT {STOCK_CHECK}")
        try:
            outcomes = race_for_the_last_ones(show, item)
            assert outcomes == ["ordered"] * BUYERS
            assert stock_of(item) == LAST_ONES - BUYERS
        finally:
            MenuItem.objects.filter(pk=item.pk).update(stock=0)
            with connection.cursor() as cursor:
                cursor.execute(f"ALTER TABLE cinemas_menuitem ADD CONSTRAINT {STOCK_CHECK} CHECK (stock >= 0)")

    def test_with_the_real_schema_exactly_the_stock_is_sold(self, show):
        item = popcorn(show.hall.cinema, stock=LAST_ONES)
        outcomes = race_for_the_last_ones(show, item)
        assert outcomes == ["add_on_sold_out"] * (BUYERS - LAST_ONES) + ["ordered"] * LAST_ONES
        assert stock_of(item) == 0
        assert sum(ReservationAddOn.objects.values_list("quantity", flat=True)) == LAST_ONES


def checkout_with_a_hold(client, show):
    response = client.post(f"/shows/{show.pk}/hold", {"seats": seat_ids(show)[:2]})
    assert response.status_code == 302
    return response["Location"], response["Location"].split("/")[2]


@pytest.mark.django_db
class TestCheckoutsFoodAndDrink:
    def test_checkout_lists_the_cinemas_menu_on_sale_and_sets_the_order_from_it(self, client, show):
        cinema = show.hall.cinema
        item = popcorn(cinema)
        popcorn(cinema, name="Old stock", on_sale=False)
        popcorn(make_cinema(), name="Elsewhere")
        checkout, reservation_id = checkout_with_a_hold(client, show)
        page = client.get(checkout).content.decode()
        assert "Popcorn" in page and "Old stock" not in page and "Elsewhere" not in page
        response = client.post(f"/holds/{reservation_id}/add-ons", {f"item-{item.pk}": "2"})
        assert response.status_code == 302 and response["Location"] == checkout
        assert stock_of(item) == 8
        assert f'name="item-{item.pk}" value="2"' in client.get(checkout).content.decode()

    def test_a_count_that_is_no_number_is_refused_and_changes_nothing(self, client, show):
        item = popcorn(show.hall.cinema)
        _, reservation_id = checkout_with_a_hold(client, show)
        for bad in ("two", "-1", "1.5", "99999999999999999999999"):
            response = client.post(f"/holds/{reservation_id}/add-ons", {f"item-{item.pk}": bad})
            assert response.status_code == 400
            assert "Order between 0 and 10 of each item." in response.content.decode()
        assert stock_of(item) == 10

    def test_ordering_more_than_is_left_says_how_many_are_left(self, client, show):
        item = popcorn(show.hall.cinema, stock=1)
        _, reservation_id = checkout_with_a_hold(client, show)
        response = client.post(f"/holds/{reservation_id}/add-ons", {f"item-{item.pk}": "3"})
        assert response.status_code == 409
        assert "Popcorn is sold out for now: 1 left." in response.content.decode()
        assert stock_of(item) == 1

    def test_another_browser_cannot_order_on_someone_elses_hold(self, client, show):
        item = popcorn(show.hall.cinema)
        _, reservation_id = checkout_with_a_hold(client, show)
        response = Client().post(f"/holds/{reservation_id}/add-ons", {f"item-{item.pk}": "1"})
        assert response.status_code == 404
        assert stock_of(item) == 10


@pytest.mark.django_db
class TestTheTicketsPickup:
    def test_the_ticket_page_and_mail_list_the_order_with_one_pickup_code(
        self, client, show, mailoutbox, django_capture_on_commit_callbacks
    ):
        item = popcorn(show.hall.cinema)
        checkout, reservation_id = checkout_with_a_hold(client, show)
        client.post(f"/holds/{reservation_id}/add-ons", {f"item-{item.pk}": "2"})
        card = {"card_number": "4242 4242 4242 4242", "exp_month": "12", "exp_year": "2035", "cvc": "123"}
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(f"/holds/{reservation_id}/pay", {**card, "email": "ann@example.com"})
        page = client.get(response["Location"]).content.decode()
        code = re.search(r'Pickup code at the counter: <strong class="booking-code">(\w{6})</strong>', page).group(1)
        assert "2 × Popcorn" in page
        (message,) = mailoutbox
        assert f"pickup code at the counter: {code}" in message.body and "2 × Popcorn" in message.body

    def test_the_pickup_code_is_not_the_booking_code_and_differs_between_bookings(self, show, alice):
        item = popcorn(show.hall.cinema)
        codes = set()
        for seat in seat_ids(show)[:2]:
            hold = holding(show, alice, seat)
            choose_add_ons(buyer=alice, reservation_id=hold.pk, quantities={item.pk: 1})
            booked = pay_for_reservation(buyer=alice, reservation_id=hold.pk, card=parse_card(GOOD_CARD))
            code, _ = pickup(Reservation.objects.get(pk=booked.pk))
            assert code != booked.booking_code[:6]
            codes.add(code)
        assert len(codes) == 2


@pytest.mark.django_db
class TestTheApi:
    @pytest.fixture
    def partner(self):
        api = APIClient()
        api.credentials(HTTP_X_API_KEY=make_api_key())
        return api

    def test_a_shows_menu_lists_its_cinemas_items_on_sale_with_what_is_left(self, partner, show):
        item = popcorn(show.hall.cinema, stock=7)
        popcorn(show.hall.cinema, name="Gone", on_sale=False)
        menu = get_ok(partner, f"/api/v1/shows/{show.pk}/menu")
        assert menu == {
            "show_id": show.pk,
            "currency": "USD",
            "items": [{"id": item.pk, "name": "Popcorn", "description": "", "price": "6.50", "available": 7}],
        }
        assert_api_error(partner.get("/api/v1/shows/999999/menu"), 404, "not_found")

    def test_partners_set_a_holds_add_ons_and_see_them_in_the_answer(self, partner, show):
        item = popcorn(show.hall.cinema)
        hold = reserve(partner, show, seat_ids(show)[:1], session="s1").json()
        response = partner.put(
            f"/api/v1/reservations/{hold['reservation_id']}/add-ons",
            {"session_id": "s1", "items": [{"id": item.pk, "quantity": 3}]},
            format="json",
        )
        assert response.status_code == 200
        assert response.json()["add_ons"] == [{"id": item.pk, "name": "Popcorn", "quantity": 3, "unit_price": "6.50"}]
        assert stock_of(item) == 7

    @pytest.mark.parametrize(
        "items",
        [
            [{"id": 1, "quantity": -1}],
            [{"id": 1, "quantity": 1}, {"id": 1, "quantity": 2}],
            [{"id": "popcorn", "quantity": 1}],
            "popcorn",
        ],
    )
    def test_a_malformed_order_is_a_400_and_changes_nothing(self, partner, show, items):
        item = popcorn(show.hall.cinema)
        hold = reserve(partner, show, seat_ids(show)[:1], session="s1").json()
        response = partner.put(
            f"/api/v1/reservations/{hold['reservation_id']}/add-ons",
            {"session_id": "s1", "items": items},
            format="json",
        )
        assert_api_error(response, 400, "invalid_request", field="items")
        assert stock_of(item) == 10

    def test_a_sold_out_item_is_a_409_and_another_sessions_hold_a_404(self, partner, show):
        item = popcorn(show.hall.cinema, stock=1)
        hold = reserve(partner, show, seat_ids(show)[:1], session="s1").json()
        url = f"/api/v1/reservations/{hold['reservation_id']}/add-ons"
        order = {"items": [{"id": item.pk, "quantity": 2}]}
        assert_api_error(partner.put(url, {"session_id": "s1", **order}, format="json"), 409, "add_on_sold_out")
        assert_api_error(partner.put(url, {"session_id": "s2", **order}, format="json"), 404, "not_found")
        assert stock_of(item) == 1


@pytest.mark.django_db
class TestFoodAndDrinkInThePrice:
    """The one price breakdown (bookings_price_breakdown) has a line per item, taxes it with the tickets and the
    fee, and its total is the hold's amount: what paying charges."""

    def test_add_ons_are_lines_of_the_breakdown_and_in_the_amount_paying_charges(self, show, alice):
        item = popcorn(show.hall.cinema)
        hold = holding(show, alice, seat_ids(show)[0])
        reservation = choose_add_ons(buyer=alice, reservation_id=hold.pk, quantities={item.pk: 2})
        breakdown = price_breakdown(reservation)
        assert [(line.name, line.quantity, line.amount) for line in breakdown.add_ons] == [
            ("Popcorn", 2, Decimal("13.00"))
        ]
        assert reservation.amount == breakdown.total == Decimal("23.00")
        assert breakdown.as_api()["add_ons"] == [{"id": item.pk, "name": "Popcorn", "quantity": 2, "amount": "13.00"}]
        paid = pay_for_reservation(buyer=alice, reservation_id=hold.pk, card=parse_card(GOOD_CARD))
        charge = Payment.objects.get(reservation_id=paid.pk, kind=Payment.Kind.CHARGE)
        assert charge.amount == Decimal("23.00")

    def test_tax_on_top_is_charged_on_food_and_drink_too(self, alice):
        cinema = make_cinema(tax_name="Sales tax", tax_rate=Decimal("10"), tax_included=False)
        show = make_show(hall=make_hall(cinema=cinema, plan="R" * 10))
        item = popcorn(cinema)
        hold = holding(show, alice, seat_ids(show)[0])
        reservation = choose_add_ons(buyer=alice, reservation_id=hold.pk, quantities={item.pk: 2})
        (tax,) = price_breakdown(reservation).taxes
        assert (tax.amount, reservation.amount) == (Decimal("2.30"), Decimal("25.30"))  # 10 % of 10.00 + 13.00

    def test_taking_them_off_prices_the_hold_as_before(self, show, alice):
        item = popcorn(show.hall.cinema)
        hold = holding(show, alice, seat_ids(show)[0])
        choose_add_ons(buyer=alice, reservation_id=hold.pk, quantities={item.pk: 2})
        reservation = choose_add_ons(buyer=alice, reservation_id=hold.pk, quantities={item.pk: 0})
        assert reservation.amount == Decimal("10.00") and price_breakdown(reservation).add_ons == ()

    def test_a_gift_card_that_paid_for_them_gets_back_what_the_hold_no_longer_costs(self, show, alice):
        item = popcorn(show.hall.cinema)
        hold = holding(show, alice, seat_ids(show)[0])
        choose_add_ons(buyer=alice, reservation_id=hold.pk, quantities={item.pk: 2})
        card = issue_gift_card(currency="USD", value=Decimal("50.00"))
        assert redeem_gift_card(buyer=alice, reservation_id=hold.pk, code=card.code) == (Decimal("23.00"), 0)
        choose_add_ons(buyer=alice, reservation_id=hold.pk, quantities={item.pk: 0})
        card.refresh_from_db()
        assert card.balance == Decimal("40.00")  # it pays the 10.00 ticket only
        assert sum(r.amount for r in card.redemptions.filter(returned_at__isnull=True)) == Decimal("10.00")

    def test_nothing_is_added_while_a_payment_is_in_flight(self, show, alice):
        item = popcorn(show.hall.cinema)
        hold = holding(show, alice, seat_ids(show)[0])
        Payment.objects.create(
            reservation_id=hold.pk, kind="charge", status="pending", amount=hold.amount, currency="USD",
            provider="sandbox", created_at=timezone.now(), updated_at=timezone.now(),
        )  # fmt: skip
        with pytest.raises(BookingError) as refusal:
            choose_add_ons(buyer=alice, reservation_id=hold.pk, quantities={item.pk: 1})
        assert refusal.value.code == "payment_in_progress"
        assert stock_of(item) == 10
