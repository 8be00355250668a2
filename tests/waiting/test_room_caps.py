"""A waiting room's caps under real concurrent joins on PostgreSQL: one network address takes at most the
on-sale's joins_per_address places (one conditional upsert in waiting_join_room decides), one email one
place (the unique constraint decides), and a partner's sessions, many behind one server, are not counted by
address."""

from collections import Counter
from datetime import timedelta

import pytest

from tests.helpers import run_at_once, sql_function_replaced, sql_function_with
from tests.waiting.rooms import on_sale_of, visitor
from ticketing.services import create_api_key
from waiting.models import RoomAddress, RoomVisitor
from waiting.rooms import JOIN_FUNCTION, RoomError, join_room

pytestmark = pytest.mark.django_db(transaction=True)

ADDRESS = "198.51.100.7"
CAP = 20
RACERS = 30


def joining(on_sale, buyer, *, at=None, email=""):
    """A join to run on its own thread: the visitor's id, or the refusal's code."""

    def join():
        try:
            return join_room(buyer=buyer, on_sale=on_sale, email=email, at=at)[0].pk
        except RoomError as refusal:
            return refusal.code

    return join


def race(on_sale, buyers, **kwargs):
    return Counter(
        "joined" if not isinstance(outcome, str) else outcome
        for outcome in run_at_once([joining(on_sale, buyer, **kwargs) for buyer in buyers])
    )


def when(on_sale, moment):
    """`at` for a join before the opening (the room's share lock: joins side by side) or after (one at a time)."""
    return None if moment == "before the opening" else on_sale.opens_at + timedelta(seconds=1)


@pytest.mark.parametrize("moment", ["before the opening", "after the opening"])
def test_thirty_browsers_behind_one_address_joining_at_once_get_exactly_the_caps_twenty_places(moment):
    on_sale = on_sale_of(opens_in=600, joins_per_address=CAP)

    outcomes = race(on_sale, [visitor(f"nat-{n}", ADDRESS) for n in range(RACERS)], at=when(on_sale, moment))

    assert outcomes == {"joined": CAP, "room_address_cap": RACERS - CAP}
    assert RoomVisitor.objects.filter(room_id=on_sale.pk, client_address=ADDRESS).count() == CAP
    assert RoomAddress.objects.get(room_id=on_sale.pk, address=ADDRESS).joins == CAP
    # Another address is not held back by this one.
    assert join_room(buyer=visitor("elsewhere", "203.0.113.1"), on_sale=on_sale, at=when(on_sale, moment))[1]


COUNT = "INSERT INTO waiting_roomaddress AS counted"
CHECK_FIRST = (
    "IF COALESCE((SELECT joins FROM waiting_roomaddress WHERE room_id = p_on_sale AND address = p_address), 0)"
    " >= v_sale.joins_per_address THEN PERFORM bookings_refuse('room_address_cap'); END IF;"
    " PERFORM pg_sleep(0.05); "  # as long as a busy server may take between the read and the count
)
CONDITION = "WHERE counted.joins < v_sale.joins_per_address;"


def test_the_negative_control_a_cap_checked_apart_from_its_count_lets_more_than_the_cap_in():
    """The race above would catch a cap checked apart from its count: read first and counted unconditionally
    after, racers that read at once all pass the check."""
    variant = sql_function_with(JOIN_FUNCTION, COUNT, CHECK_FIRST + COUNT).replace(CONDITION, ";")
    on_sale = on_sale_of(opens_in=600, joins_per_address=CAP)

    with sql_function_replaced(JOIN_FUNCTION, variant):
        outcomes = race(on_sale, [visitor(f"nat-{n}", ADDRESS) for n in range(RACERS)])

    assert outcomes["joined"] > CAP
    assert RoomVisitor.objects.filter(room_id=on_sale.pk, client_address=ADDRESS).count() > CAP


@pytest.mark.parametrize("moment", ["before the opening", "after the opening"])
def test_ten_browsers_joining_with_one_email_at_once_get_one_place(moment):
    on_sale = on_sale_of(opens_in=600)
    buyers = [visitor(f"mail-{n}", f"192.0.2.{n}") for n in range(10)]

    outcomes = race(on_sale, buyers, at=when(on_sale, moment), email=" Fan@Example.com ")

    assert outcomes == {"joined": 1, "email_in_room": 9}
    assert RoomVisitor.objects.filter(room_id=on_sale.pk, email="fan@example.com").count() == 1


def test_a_partners_sessions_behind_one_address_are_not_capped_by_address():
    api_key, _ = create_api_key(name="Big partner")
    on_sale = on_sale_of(opens_in=600, joins_per_address=5)

    outcomes = race(on_sale, [visitor(f"partner-{n}", ADDRESS, api_key_id=api_key.pk) for n in range(12)])

    assert outcomes == {"joined": 12}
    assert not RoomAddress.objects.filter(room_id=on_sale.pk).exists()
    # The website behind that address is still counted, from its first join.
    website = race(on_sale, [visitor(f"site-{n}", ADDRESS) for n in range(8)])
    assert website == {"joined": 5, "room_address_cap": 3}
