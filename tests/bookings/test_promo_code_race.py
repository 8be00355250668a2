"""Real concurrent buyers redeem one promo code on PostgreSQL: the database, not the application, keeps its
limits (bookings migration 0017), with negative controls that show the races would catch an over-redemption."""

import contextlib
from decimal import Decimal

import pytest
from django.db import connection

from bookings.models import PromoCode, PromoRedemption, Reservation
from bookings.services import BookingError, apply_promo_code, hold_seats
from tests.factories import make_hall, make_show
from tests.helpers import run_at_once, sql_function_replaced, sql_function_with
from ticketing.buyers import Buyer

pytestmark = pytest.mark.django_db(transaction=True)

BUYERS = 24
LIMIT = 5
PER_BUYER = 2
HOLDS_OF_ONE_BUYER = 8


@pytest.fixture
def holds():
    """BUYERS holds of one seat each, by as many buyers."""
    show = make_show(hall=make_hall(plan="R" * 15 + "\n" + "R" * 15))
    seats = list(show.hall.seats.order_by("id").values_list("id", flat=True))
    return [
        (Buyer(None, f"buyer-{number}"), hold_seats(buyer=Buyer(None, f"buyer-{number}"), show=show, seat_ids=[seat]))
        for number, seat in enumerate(seats[:BUYERS])
    ]


@pytest.fixture
def one_buyers_holds():
    """HOLDS_OF_ONE_BUYER holds of one seat each, all alice's."""
    show = make_show(hall=make_hall(plan="R" * 10))
    alice = Buyer(None, "alice")
    seats = list(show.hall.seats.order_by("id").values_list("id", flat=True))
    return [(alice, hold_seats(buyer=alice, show=show, seat_ids=[seat])) for seat in seats[:HOLDS_OF_ONE_BUYER]]


def redeem_at_once(holds, code):
    """Every hold's buyer applies `code` at the same moment; returns how many were granted, and the refusals."""

    def redeem(buyer, hold):
        def action():
            try:
                apply_promo_code(buyer=buyer, reservation_id=hold.pk, code=code)
            except BookingError as refusal:
                return refusal.code
            return "granted"

        return action

    outcomes = run_at_once([redeem(buyer, hold) for buyer, hold in holds])
    return outcomes.count("granted"), sorted(set(outcomes) - {"granted"})


def discounted_holds():
    return sum(
        1 for breakdown in Reservation.objects.values_list("price_breakdown", flat=True) if breakdown["discounts"]
    )


@contextlib.contextmanager
def constraint_dropped(table, name):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = %s AND conrelid = %s::regclass",
            [name, table],
        )
        (definition,) = cursor.fetchone()
        cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition} NOT VALID")


def count_function_with(old, new):
    """bookings_count_promo_use's definition (the count applying a code makes) with `old` replaced by `new`
    (which must be in it once)."""
    return sql_function_with("bookings_count_promo_use", old, new)


def test_many_buyers_redeeming_a_code_at_once_get_exactly_its_total_uses(holds):
    PromoCode.objects.create(code="HOT", kind="percent", value=Decimal("50"), max_uses=LIMIT)

    granted, refusals = redeem_at_once(holds, "hot")

    assert granted == LIMIT and refusals == ["promo_code_used_up"]
    assert PromoCode.objects.get().used == LIMIT == discounted_holds()
    assert PromoRedemption.objects.filter(released_at__isnull=True).count() == LIMIT


def test_negative_control_without_the_conditional_count_and_its_check_every_buyer_gets_the_code(holds):
    """Proves the race above would catch an over-redemption: counted unconditionally, with the CHECK dropped,
    the code is redeemed by every buyer."""
    PromoCode.objects.create(code="HOT", kind="percent", value=Decimal("50"), max_uses=LIMIT)
    unconditional = count_function_with("(code.max_uses IS NULL OR code.used < code.max_uses)", "true")

    with (
        constraint_dropped("bookings_promocode", "bookings_promocode_within_max_uses"),
        sql_function_replaced("bookings_count_promo_use", unconditional),
    ):
        granted, _ = redeem_at_once(holds, "HOT")
        PromoCode.objects.update(used=0)  # so that the CHECK can come back

    assert granted == BUYERS > LIMIT and discounted_holds() == BUYERS


def test_one_buyer_redeeming_a_code_on_many_holds_at_once_gets_exactly_its_uses_per_buyer(one_buyers_holds):
    PromoCode.objects.create(code="TWICE", kind="fixed", value=Decimal("1"), currency="USD", max_uses_per_buyer=2)

    granted, refusals = redeem_at_once(one_buyers_holds, "TWICE")

    assert granted == PER_BUYER and refusals == ["promo_code_buyer_limit"]
    assert PromoCode.objects.get().used == PER_BUYER == discounted_holds()


def test_negative_control_without_the_per_buyer_condition_one_buyer_gets_it_on_every_hold(one_buyers_holds):
    """Proves the race above would catch it: without the upsert's condition, every hold gets the code."""
    PromoCode.objects.create(code="TWICE", kind="fixed", value=Decimal("1"), currency="USD", max_uses_per_buyer=2)
    unconditional = count_function_with(
        "p_promo.max_uses_per_buyer IS NULL OR uses.used < p_promo.max_uses_per_buyer", "true"
    )

    with sql_function_replaced("bookings_count_promo_use", unconditional):
        granted, _ = redeem_at_once(one_buyers_holds, "TWICE")

    assert granted == HOLDS_OF_ONE_BUYER > PER_BUYER
