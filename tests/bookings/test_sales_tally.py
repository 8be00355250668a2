"""The sales tally the staff's report reads (ShowSales, bookings migration 0032): kept by the database as sales
happen, it always equals a recount from the reservations and refunds themselves; a hold never touches it; buyers
of one show, each in their own session, are all counted without waiting on each other's tally row; and folding a
show's rows into one (0033) keeps its sums and never waits for a sale (real concurrent clients on PostgreSQL, with
negative controls)."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import DatabaseError, connection, transaction
from django.db.models import Sum
from django.utils import timezone

from bookings.models import Payment, PromoCode, Reservation, ShowSales
from bookings.providers import parse_card
from bookings.services import (
    PaidBy,
    apply_promo_code,
    cancel_booking,
    cancel_hold,
    cancel_own_booking,
    fold_sales_tally,
    hold_at_box_office,
    hold_house_seats,
    hold_seats,
    pay_for_reservation,
    release_house_seats,
    release_lapsed_holds,
    sell_at_box_office,
)
from bookings.services.box_office import CASH, counter_buyer
from bookings.services.payments import pay_in_person
from cinemas.models import RefundPolicy, StaffRole
from tests.bookings.helpers import GOOD_CARD
from tests.factories import NY_SALES_TAX, make_api_key, make_cinema, make_hall, make_show, make_staff_member
from tests.helpers import run_at_once, sql_function_replaced, sql_function_with
from ticketing.buyers import Buyer
from ticketing.models import ApiKey

COUNTS = ("website", "partners", "box_office", "house")
AMOUNTS = ("gross_online", "gross_box_office", "fees", "taxes", "discounts", "refunds")
BUYERS = 16


def tally(show):
    """The show's tally: the sum of its sessions' rows."""
    sums = ShowSales.objects.filter(show=show).aggregate(**{name: Sum(name) for name in COUNTS + AMOUNTS})
    return {name: sums[name] or (0 if name in COUNTS else Decimal(0)) for name in COUNTS + AMOUNTS}


def recount(show):
    """The show's figures counted from its reservations and refunds, by bookings.sales's definitions."""
    figures = dict.fromkeys(COUNTS, 0) | {name: Decimal(0) for name in AMOUNTS}
    for reservation in Reservation.objects.filter(show=show):
        breakdown = reservation.price_breakdown
        if reservation.status == Reservation.Status.BOOKED:
            seats = len(breakdown["seats"]) if breakdown else reservation.seat_claims().count()
            channel = reservation.channel
            if channel == Reservation.Channel.ONLINE:
                channel = "partners" if reservation.api_key_id else "website"
            figures[channel] += seats
        if reservation.booked_at is not None and reservation.channel != Reservation.Channel.HOUSE:
            figures[f"gross_{reservation.channel}"] += reservation.amount
            for lines in ("fees", "taxes", "discounts"):
                figures[lines] += sum((Decimal(line["amount"]) for line in breakdown[lines]), Decimal(0))
    refunds = Payment.objects.filter(
        kind=Payment.Kind.REFUND, status=Payment.Status.SUCCEEDED, reservation__show=show
    ).exclude(reservation__channel=Reservation.Channel.HOUSE)
    figures["refunds"] = refunds.aggregate(total=Sum("amount"))["total"] or Decimal(0)
    return figures


def seat_ids(show, *labels):
    by_label = {f"{seat.row_label}{seat.number}": seat.pk for seat in show.hall.seats.all()}
    return [by_label[label] for label in labels]


def book(show, *labels, session, api_key_id=None, code=None):
    buyer = Buyer(api_key_id, session)
    hold = hold_seats(buyer=buyer, show=show, seat_ids=seat_ids(show, *labels))
    if code:
        apply_promo_code(buyer=buyer, reservation_id=hold.pk, code=code)
    return pay_for_reservation(buyer=buyer, reservation_id=hold.pk, card=parse_card(GOOD_CARD))


@pytest.mark.django_db
def test_the_tally_equals_a_recount_after_every_kind_of_sale_refund_and_cancellation(
    django_capture_on_commit_callbacks,
):
    cinema = make_cinema(refund_policy=RefundPolicy.PARTIAL, refund_percent=50, **NY_SALES_TAX)
    show = make_show(hall=make_hall(cinema=cinema, plan="PPPPPP\nRRRRRRRRRRRRRRRR"))
    seller = make_staff_member(roles=[(cinema, StaffRole.MANAGER)])
    PromoCode.objects.create(code="SAVE20", kind="percent", value=Decimal("20"))
    make_api_key(name="partner-tally")
    partner = ApiKey.objects.get(name="partner-tally")
    with django_capture_on_commit_callbacks(execute=True):
        book(show, "A1", "A2", session="alice", code="SAVE20")
        book(show, "B1", session="partner-buyer", api_key_id=partner.pk)
        counter = hold_at_box_office(user=seller, show=show, seat_ids=seat_ids(show, "B2", "B3"))
        sell_at_box_office(user=seller, reservation_id=counter.pk, paid_by=PaidBy.CASH, tendered=Decimal(50))
        by_card = hold_at_box_office(user=seller, show=show, seat_ids=seat_ids(show, "B4"))
        sell_at_box_office(user=seller, reservation_id=by_card.pk, paid_by=PaidBy.CARD)
        hold_house_seats(user=seller, show=show, seat_ids=seat_ids(show, "B5", "B6"), note="Press")
        released = hold_house_seats(user=seller, show=show, seat_ids=seat_ids(show, "B7"), note="Guest")
        release_house_seats(user=seller, reservation_id=released.pk)
        cancel_booking(reservation_id=book(show, "B8", session="dave").pk)  # refunded in full
        cancel_own_booking(reservation_id=book(show, "B9", "B10", session="erin").pk)  # half the tickets back
        cancel_booking(reservation_id=by_card.pk)  # the counter's card sale, refunded
        hold_seats(buyer=Buyer(None, "frank"), show=show, seat_ids=seat_ids(show, "B11"))  # a live hold

    counted = recount(show)
    assert tally(show) == counted
    # The scene's figures are all there: every channel, house seats, discounts and refunds, full and partial.
    assert counted["website"] == 2 and counted["partners"] == 1 and counted["box_office"] == 2
    assert counted["house"] == 2 and counted["discounts"] > 0 and counted["gross_box_office"] > 0
    partial = Payment.objects.get(kind=Payment.Kind.REFUND, reservation__session_id="erin").amount
    assert counted["refunds"] > partial > 0


@pytest.mark.django_db
def test_rows_written_around_the_functions_are_tallied_and_untallied_too():
    """Benchmarks and tests write booked rows and refunds without the functions: the tally sees them, and their
    deletion."""
    booked = book(make_show(), "A1", session="alice")
    show, now = booked.show, timezone.now()
    copy = Reservation.objects.create(
        show=show, session_id="copy", status=Reservation.Status.BOOKED, amount=booked.amount, currency="USD",
        price_breakdown=booked.price_breakdown, created_at=now, expires_at=now, held_until=now,
        booking_code="COPY0001", booked_at=now,
    )  # fmt: skip
    Payment.objects.create(
        reservation=copy, kind=Payment.Kind.REFUND, status=Payment.Status.SUCCEEDED, amount=Decimal("1.00"),
        currency="USD", provider="fake", created_at=now, updated_at=now,
    )  # fmt: skip
    assert tally(show) == recount(show)
    assert tally(show)["website"] == 2 and tally(show)["refunds"] == Decimal("1.00")

    Payment.objects.filter(reservation=copy).delete()
    copy.delete()

    assert tally(show) == recount(show)
    assert tally(show)["website"] == 1 and tally(show)["refunds"] == 0


def tally_function_calls():
    """How often this transaction has run the tally's trigger functions (PostgreSQL's count, track_functions)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(pg_stat_get_xact_function_calls('bookings_tally_reservation'::regproc), 0)"
            " + coalesce(pg_stat_get_xact_function_calls('bookings_tally_refund'::regproc), 0)"
        )
        return cursor.fetchone()[0]


@pytest.fixture
def counting_function_calls():
    with connection.cursor() as cursor:
        cursor.execute("SET track_functions = 'pl'")
    yield
    with connection.cursor() as cursor:
        cursor.execute("RESET track_functions")


@pytest.mark.django_db
def test_a_hold_its_lapse_and_a_cancelled_hold_run_no_tally_function_and_change_no_row(
    django_capture_on_commit_callbacks, counting_function_calls
):
    show = make_show()
    book(show, "A1", session="alice")
    assert tally_function_calls() == 1  # the booking: the count works
    before = list(ShowSales.objects.filter(show=show).values())
    with django_capture_on_commit_callbacks(execute=True):
        lapsing = hold_seats(buyer=Buyer(None, "bob"), show=show, seat_ids=seat_ids(show, "A2"))
        given_up = hold_seats(buyer=Buyer(None, "carol"), show=show, seat_ids=seat_ids(show, "A3"))
        cancel_hold(buyer=Buyer(None, "carol"), reservation_id=given_up.pk)
    with time_machine.travel(lapsing.held_until + timedelta(seconds=1)):
        assert release_lapsed_holds() == 1
    assert Reservation.objects.get(pk=lapsing.pk).status == Reservation.Status.EXPIRED
    assert tally_function_calls() == 1
    assert list(ShowSales.objects.filter(show=show).values()) == before


# Real concurrent clients: each thread its own connection, committed.


@pytest.fixture
def holds_of_one_show():
    """BUYERS buyers' holds of one or two seats each of one show."""
    show = make_show(hall=make_hall(plan="R" * 20 + "\n" + "R" * 20))
    seats = list(show.hall.seats.order_by("id").values_list("id", flat=True))
    holds = []
    for number in range(BUYERS):
        buyer = Buyer(None, f"buyer-{number}")
        wanted = seats[2 * number : 2 * number + 1 + number % 2]
        holds.append((buyer, hold_seats(buyer=buyer, show=show, seat_ids=wanted)))
    return show, holds


def pay_all_at_once(holds):
    def pay(buyer, hold):
        return lambda: pay_for_reservation(buyer=buyer, reservation_id=hold.pk, card=parse_card(GOOD_CARD)).status

    return run_at_once([pay(buyer, hold) for buyer, hold in holds])


def trigger_function_with(old, new):
    """bookings_tally_reservation's definition with `old` replaced by `new` (which must be in it once)."""
    return sql_function_with("bookings_tally_reservation", old, new)


@pytest.mark.django_db(transaction=True)
def test_many_buyers_of_one_show_paying_at_once_are_all_counted_exactly(holds_of_one_show):
    show, holds = holds_of_one_show

    assert pay_all_at_once(holds) == [Reservation.Status.BOOKED] * BUYERS

    assert tally(show) == recount(show)
    assert tally(show)["website"] == sum(1 + number % 2 for number in range(BUYERS))


@pytest.mark.django_db(transaction=True)
def test_negative_control_a_tally_read_then_written_in_one_row_loses_concurrent_sales(holds_of_one_show):
    """Proves the race above would catch a miscount: a trigger that reads the show's one row and writes it back
    (the wait widened a little) loses sales made at the same time."""
    show, holds = holds_of_one_show
    read_then_written = trigger_function_with(
        "BEGIN\n",
        """DECLARE
    v_website int := (SELECT coalesce(sum(website), 0) FROM bookings_showsales WHERE show_id = NEW.show_id);
BEGIN
    PERFORM pg_sleep(0.2);
    INSERT INTO bookings_showsales (show_id, backend, website, partners, box_office, house, gross_online,
                                    gross_box_office, fees, taxes, discounts, refunds)
    VALUES (NEW.show_id, 0, v_website + 1, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    ON CONFLICT (show_id, backend) DO UPDATE SET website = EXCLUDED.website;
    RETURN NULL;
""",
    )

    with sql_function_replaced("bookings_tally_reservation", read_then_written):
        assert pay_all_at_once(holds) == [Reservation.Status.BOOKED] * BUYERS

    assert tally(show)["website"] < BUYERS


def book_at_the_counter_while_another_sale_is_open(show, seller):
    """Two counter sales of `show` in two sessions: the first books and keeps its transaction open while the
    second books and commits with a lock timeout of 2 s. Returns the second's outcome ("booked" or the error)."""
    first, second = (
        hold_at_box_office(user=seller, show=show, seat_ids=[seat])
        for seat in show.hall.seats.order_by("id").values_list("id", flat=True)[:2]
    )
    first_booked, second_done = threading.Event(), threading.Event()

    def open_sale():
        with transaction.atomic():
            pay_in_person(buyer=counter_buyer(first), reservation_id=first.pk, means=CASH)
            first_booked.set()
            second_done.wait(timeout=10)

    def second_sale():
        first_booked.wait(timeout=10)
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '2s'")
                pay_in_person(buyer=counter_buyer(second), reservation_id=second.pk, means=CASH)
            return "booked"
        except DatabaseError as error:
            return type(error).__name__
        finally:
            second_done.set()

    return run_at_once([open_sale, second_sale])[1]


@pytest.mark.django_db(transaction=True)
def test_a_sale_never_waits_for_another_sessions_open_sale_of_the_same_show():
    cinema = make_cinema()
    show = make_show(hall=make_hall(cinema=cinema, plan="RRRR"))
    seller = make_staff_member(roles=[(cinema, StaffRole.STAFF)])

    assert book_at_the_counter_while_another_sale_is_open(show, seller) == "booked"
    assert tally(show)["box_office"] == 2 == recount(show)["box_office"]


@pytest.mark.django_db(transaction=True)
def test_negative_control_one_row_for_every_session_makes_the_second_sale_wait():
    """Proves the test above would catch a shared row: with every session's change added to one row (backend 0),
    the second sale waits for the first's commit and gives up after its lock timeout."""
    cinema = make_cinema()
    show = make_show(hall=make_hall(cinema=cinema, plan="RRRR"))
    seller = make_staff_member(roles=[(cinema, StaffRole.STAFF)])
    one_row = trigger_function_with("SELECT show_id, pg_backend_pid(),", "SELECT show_id, 0,")

    with sql_function_replaced("bookings_tally_reservation", one_row):
        outcome = book_at_the_counter_while_another_sale_is_open(show, seller)

    assert outcome == "OperationalError"


@pytest.mark.django_db(transaction=True)
def test_folding_leaves_one_row_a_show_with_the_same_sums(holds_of_one_show):
    show, holds = holds_of_one_show
    pay_all_at_once(holds)
    counted = recount(show)
    assert ShowSales.objects.filter(show=show).count() > 1  # one row per session that sold it

    assert fold_sales_tally() == 1

    assert ShowSales.objects.filter(show=show).count() == 1 and tally(show) == counted
    assert fold_sales_tally() == 0


def fold_while_a_sale_is_open(show, seller):
    """One session sells at the counter and commits, then sells again and keeps that transaction open while
    another session folds the tally with a lock timeout of 2 s. Returns how many shows the fold folded, or its
    error's name."""
    sales = [
        hold_at_box_office(user=seller, show=show, seat_ids=[seat])
        for seat in show.hall.seats.order_by("id").values_list("id", flat=True)[:2]
    ]
    second_open, fold_done = threading.Event(), threading.Event()

    def seller_session():
        with transaction.atomic():
            pay_in_person(buyer=counter_buyer(sales[0]), reservation_id=sales[0].pk, means=CASH)
        with transaction.atomic():
            pay_in_person(buyer=counter_buyer(sales[1]), reservation_id=sales[1].pk, means=CASH)
            second_open.set()
            fold_done.wait(timeout=10)

    def fold():
        second_open.wait(timeout=10)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SET lock_timeout = '2s'")
            return fold_sales_tally()
        except DatabaseError as error:
            return type(error).__name__
        finally:
            fold_done.set()

    return run_at_once([seller_session, fold])[1]


@pytest.fixture
def show_sold_at_the_counter_before():
    """A show, its cinema's seller, and a counter sale of it already tallied in another (ended) session."""
    cinema = make_cinema()
    show = make_show(hall=make_hall(cinema=cinema, plan="RRRR"))
    seller = make_staff_member(roles=[(cinema, StaffRole.STAFF)])
    earlier = hold_at_box_office(user=seller, show=show, seat_ids=[show.hall.seats.order_by("-id")[0].pk])
    sell_at_box_office(user=seller, reservation_id=earlier.pk, paid_by=PaidBy.CASH, tendered=Decimal(100))
    return show, seller


@pytest.mark.django_db(transaction=True)
def test_folding_skips_the_row_of_a_sale_in_progress_and_never_waits_for_it(show_sold_at_the_counter_before):
    show, seller = show_sold_at_the_counter_before

    assert fold_while_a_sale_is_open(show, seller) == 1

    # The open sale's session kept its row (folded on a later run); the sums are all there.
    assert ShowSales.objects.filter(show=show).count() == 2
    assert tally(show) == recount(show) and tally(show)["box_office"] == 3


@pytest.mark.django_db(transaction=True)
def test_negative_control_folding_without_skip_locked_waits_for_the_open_sale(show_sold_at_the_counter_before):
    """Proves the test above would catch a fold that waits: locking without SKIP LOCKED, it gives up after its
    lock timeout."""
    show, seller = show_sold_at_the_counter_before
    waiting = sql_function_with("bookings_fold_show_sales", "FOR UPDATE OF tally SKIP LOCKED", "FOR UPDATE OF tally")

    with sql_function_replaced("bookings_fold_show_sales", waiting):
        assert fold_while_a_sale_is_open(show, seller) == "OperationalError"

    assert tally(show) == recount(show)
