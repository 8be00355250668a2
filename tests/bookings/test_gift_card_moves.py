"""Gift cards' money moving between databases (migration 0035, bookings.services.gift_cards), at the level of its
SQL functions, called as a process of the site would on its own connections: this database is the sender of a
move (the home sending a card's money to a shard) or its receiver (a shard, whose copy of the home's card a move
from elsewhere makes and pays). Moves between two real primaries are tested end to end in
tests/ticketing/test_show_shards.py."""

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from bookings.models import GiftCard, GiftCardTransfer
from bookings.services.gift_cards import issue_gift_card
from tests.bookings.test_hold_functions import database, refusal
from tests.helpers import run_at_once, sql_function_replaced, sql_function_with

pytestmark = pytest.mark.django_db(transaction=True)

HOME_CARD = "HOMECARD00000001"  # a card of another database's, which this one receives moves of
TERMS = ("USD", Decimal("100.00"), None, timezone.now())  # its currency, initial value, expiry and creation


@pytest.fixture
def card(db):
    return issue_gift_card(currency="USD", value=Decimal("100.00"))


def send(db, code, amount, *, unmoved_since=None):
    """bookings_send_gift_card to "shard2": (transfer id, sent, currency, initial value, expires at, created at)."""
    return db.execute(
        "SELECT * FROM bookings_send_gift_card(%s, %s, 'default', 'shard2', %s, %s)",
        [code, amount, unmoved_since, timezone.now()],
    ).fetchone()


def receive(db, transfer, amount):
    """Deliver move `transfer` of HOME_CARD, sent from the home, here (a shard: its copy made if need be)."""
    return db.execute(
        "SELECT bookings_receive_gift_card(%s, %s, %s, %s, %s, %s, %s, 'default', 'shard2', true, %s)",
        [transfer, HOME_CARD, amount, *TERMS, timezone.now()],
    ).fetchone()[0]


def balance(code):
    return GiftCard.objects.values_list("balance", flat=True).get(code=code)


def received(code):
    """The sum of the distinct moves this database has a landed row of: what its copy must have been paid."""
    rows = GiftCardTransfer.objects.filter(code=code, landed_at__isnull=False)
    return sum(rows.values_list("amount", flat=True), Decimal(0))


def test_a_move_takes_at_most_the_balance_and_refuses_a_card_the_sender_has_not(card):
    with database() as db:
        first = send(db, card.code, Decimal("30.00"))
        rest = send(db, card.code, Decimal("500.00"))
        nothing = send(db, card.code, Decimal("10.00"))
        assert refusal(lambda: send(db, "NOSUCHCARD000000", Decimal("1"))) == "gift_card_invalid"

    assert (first[1], rest[1], nothing[1]) == (Decimal("30.00"), Decimal("70.00"), Decimal("0.00"))
    assert nothing[0] is None and first[2:4] == ("USD", Decimal("100.00"))
    assert balance(card.code) == 0
    unlanded = GiftCardTransfer.objects.filter(code=card.code, landed_at__isnull=True)
    assert sum(unlanded.values_list("amount", flat=True)) == Decimal("100.00")  # in flight, to be received


def test_a_move_received_makes_the_copy_with_the_senders_terms_and_pays_it_once_however_often_delivered():
    move = uuid.uuid4()
    with database() as db:
        assert [receive(db, move, Decimal("30.00")) for _ in range(3)] == [True, False, False]

    copy = GiftCard.objects.get(code=HOME_CARD)
    assert (copy.currency, copy.initial_value, copy.balance) == ("USD", Decimal("100.00"), Decimal("30.00"))
    assert received(HOME_CARD) == Decimal("30.00")


def test_two_processes_delivering_one_move_at_once_pay_it_once():
    """The paying process and beat's redelivery racing: one of them lands it."""
    move = uuid.uuid4()

    def deliver():
        with database() as db:
            return receive(db, move, Decimal("30.00"))

    assert sorted(run_at_once([deliver] * 4)) == [False, False, False, True]
    assert balance(HOME_CARD) == received(HOME_CARD) == Decimal("30.00")


def test_negative_control_a_receiver_without_the_moves_row_as_proof_pays_a_redelivered_move_twice():
    """Proves the checks above would catch it: the copy then holds more than the moves it was sent."""
    unguarded = sql_function_with(
        "bookings_receive_gift_card",
        "    ON CONFLICT (id) DO NOTHING;\n    IF NOT FOUND THEN\n        RETURN false;\n    END IF;\n",
        "    ON CONFLICT (id) DO NOTHING;\n",
    )
    move = uuid.uuid4()
    with database() as db, sql_function_replaced("bookings_receive_gift_card", unguarded):
        receive(db, move, Decimal("30.00"))
        receive(db, move, Decimal("30.00"))

    assert balance(HOME_CARD) == Decimal("60.00") != received(HOME_CARD)


def test_a_card_moved_since_a_moment_sends_nothing_when_asked_for_money_unmoved_since_then():
    """Beat sends home only a copy's money that lay unmoved: a payment that just brought some keeps it to redeem."""
    with database() as db:
        receive(db, uuid.uuid4(), Decimal("30.00"))
        moved_at = GiftCard.objects.get(code=HOME_CARD).moved_at
        kept = send(db, HOME_CARD, Decimal("30.00"), unmoved_since=moved_at - timedelta(seconds=1))
        sent = send(db, HOME_CARD, Decimal("30.00"), unmoved_since=moved_at)

    assert (kept[0], kept[1]) == (None, 0) and sent[1] == Decimal("30.00")
    assert balance(HOME_CARD) == 0
