"""Promo codes' uses moving between databases (migration 0036, bookings.services.promo_codes), at the level of its
SQL functions, called as a process of the site would on its own connections: this database plays the home (a use
counted and sent; uses coming back) or a shard (a use received for the copy of a home's code, applied, and sent
back when unused). Moves between two real primaries are tested end to end in tests/ticketing/test_show_shards.py.
"""

import uuid
from decimal import Decimal

import pytest
from django.utils import timezone
from psycopg.types.json import Jsonb

from bookings.models import PromoBuyerUses, PromoCode, PromoUseTransfer
from bookings.services import hold_seats
from tests.bookings.test_hold_functions import database, refusal
from tests.factories import make_hall, make_show
from tests.helpers import run_at_once, sql_function_replaced, sql_function_with
from ticketing.buyers import Buyer

pytestmark = pytest.mark.django_db(transaction=True)


def send(db, code, session):
    """bookings_send_promo_use from here (the home) to "shard2", for the website's buyer `session`."""
    return db.execute(
        "SELECT * FROM bookings_send_promo_use(%s, NULL, %s, 'default', 'shard2', %s)", [code, session, timezone.now()]
    ).fetchone()


def receive(db, transfer, terms, buyer="site:alice"):
    """Deliver a use of the home's code (`terms`) here, as a shard."""
    return db.execute(
        "SELECT bookings_receive_promo_use(%s, %s, %s, 'default', 'shard2', %s)",
        [transfer, Jsonb(terms), buyer, timezone.now()],
    ).fetchone()[0]


def receive_back(db, transfer, code, buyer, uses):
    """Deliver uses a shard sends back here, as the home."""
    return db.execute(
        "SELECT bookings_receive_promo_uses(%s, %s, %s, %s, 'shard2', 'default', %s)",
        [transfer, code, buyer, uses, timezone.now()],
    ).fetchone()[0]


def terms_of_a_home_code(code="HOME20", **terms):
    """The terms bookings_send_promo_use sends for a code of the home's that this database has not."""
    return {
        "code": code,
        "kind": "percent",
        "value": "20.00",
        "currency": "",
        "valid_from": None,
        "valid_until": None,
        "stackable": False,
        "movies": [],
        "cinemas": [],
        "shows": [],
        **terms,
    }


def counts(code):
    """(the code's count here, {buyer: (used, granted)})."""
    promo = PromoCode.objects.get(code=code)
    buyers = PromoBuyerUses.objects.filter(promo_code=promo)
    return promo.used, {row.buyer: (row.used, row.granted) for row in buyers}


# The home's side.


def test_a_use_sent_to_a_shard_is_counted_at_home_within_the_codes_limits_with_its_terms():
    PromoCode.objects.create(code="Spring", kind="percent", value=Decimal("20"), max_uses=2, max_uses_per_buyer=1)
    with database() as db:
        transfer, buyer, terms = send(db, "spring", "alice")
        assert refusal(lambda: send(db, "SPRING", "alice")) == "promo_code_buyer_limit"
        send(db, "SPRING", "bob")
        assert refusal(lambda: send(db, "SPRING", "carol")) == "promo_code_used_up"
        assert refusal(lambda: send(db, "AUTUMN", "carol")) == "promo_code_invalid"

    assert buyer == "site:alice" and terms == terms_of_a_home_code("Spring", value=20.00)
    assert counts("Spring") == (2, {"site:alice": (1, 0), "site:bob": (1, 0)})
    assert PromoUseTransfer.objects.get(pk=transfer).landed_at is None  # in flight until the shard has it


def test_buyers_racing_to_send_a_codes_last_uses_get_no_more_than_its_limit():
    """The count is bookings_count_promo_use, the one applying a code at home makes (its negative controls are in
    test_promo_code_race.py)."""
    PromoCode.objects.create(code="LAST3", kind="percent", value=Decimal("20"), max_uses=3)

    def sending(session):
        def send_one():
            with database() as db:
                return refusal(lambda: send(db, "LAST3", session))

        return send_one

    refusals = run_at_once([sending(f"buyer-{n}") for n in range(8)])

    assert sorted(refusals, key=str) == [None] * 3 + ["promo_code_used_up"] * 5
    assert PromoCode.objects.get(code="LAST3").used == 3 == PromoUseTransfer.objects.count()


def test_uses_coming_back_are_taken_off_the_homes_counts_once_however_often_delivered():
    PromoCode.objects.create(code="BACK", kind="percent", value=Decimal("20"))
    with database() as db:
        for _ in range(3):
            send(db, "BACK", "alice")
        back = uuid.uuid4()
        assert [receive_back(db, back, "BACK", "site:alice", 2) for _ in range(3)] == [True, False, False]

    assert counts("BACK") == (1, {"site:alice": (1, 0)})


def test_negative_control_a_home_without_the_moves_row_as_proof_takes_a_redelivered_return_off_twice():
    """Proves the check above would catch it: the code then counts fewer uses than are out."""
    PromoCode.objects.create(code="BACK", kind="percent", value=Decimal("20"))
    unguarded = sql_function_with(
        "bookings_receive_promo_uses",
        "    ON CONFLICT (id) DO NOTHING;\n    IF NOT FOUND THEN\n        RETURN false;\n    END IF;\n",
        "    ON CONFLICT (id) DO NOTHING;\n",
    )
    with database() as db:
        for _ in range(3):
            send(db, "BACK", "alice")
        back = uuid.uuid4()
        with sql_function_replaced("bookings_receive_promo_uses", unguarded):
            receive_back(db, back, "BACK", "site:alice", 1)
            receive_back(db, back, "BACK", "site:alice", 1)

    assert counts("BACK") == (1, {"site:alice": (1, 0)})  # 2 with the guard


# A shard's side.


@pytest.fixture
def show(db):
    return make_show(hall=make_hall(plan="RRRRRRRRRR"))


def test_a_use_received_makes_the_copy_with_the_homes_terms_and_no_limits_and_is_granted_once(show):
    terms = terms_of_a_home_code(shows=[show.pk], movies=[show.movie_id], valid_until="2100-01-01T00:00:00+00:00")
    move = uuid.uuid4()
    with database() as db:
        assert [receive(db, move, terms) for _ in range(3)] == [True, False, False]

    copy = PromoCode.objects.get(code="HOME20")
    assert (copy.max_uses, copy.max_uses_per_buyer, copy.valid_until.year) == (None, None, 2100)
    assert list(copy.shows.all()) == [show] and list(copy.movies.all()) == [show.movie]
    assert counts("HOME20") == (0, {"site:alice": (0, 1)})


def test_two_processes_delivering_one_use_at_once_grant_it_once():
    move = uuid.uuid4()

    def deliver():
        with database() as db:
            return receive(db, move, terms_of_a_home_code())

    assert sorted(run_at_once([deliver] * 4)) == [False, False, False, True]
    assert counts("HOME20") == (0, {"site:alice": (0, 1)})


def test_a_moved_use_applied_to_a_hold_counts_on_the_copy_and_one_refused_leaves_the_use_unreceived(show):
    alice = Buyer(None, "alice")
    seats = list(show.hall.seats.order_by("id").values_list("id", flat=True))
    hold = hold_seats(buyer=alice, show=show, seat_ids=seats[:2])
    elsewhere = hold_seats(buyer=alice, show=show, seat_ids=seats[2:3])
    at = timezone.now()
    applying = "SELECT * FROM bookings_apply_moved_promo_code(%s, %s, 'default', 'shard2', %s, NULL, 'alice', %s)"
    with database() as db:
        breakdown, amount = db.execute(applying, [uuid.uuid4(), Jsonb(terms_of_a_home_code()), hold.pk, at]).fetchone()
        other_show_only = Jsonb(terms_of_a_home_code("OTHER10", shows=[show.pk + 1000]))
        assert refusal(lambda: db.execute(applying, [uuid.uuid4(), other_show_only, elsewhere.pk, at])) == (
            "promo_code_not_applicable"
        )

    assert breakdown["terms"]["discounts"][0]["code"] == "HOME20" and amount < hold.amount
    assert counts("HOME20") == (1, {"site:alice": (1, 1)})
    assert not PromoCode.objects.filter(code="OTHER10").exists()  # the copy, the grant and its row rolled back
    assert PromoUseTransfer.objects.filter(code="OTHER10").count() == 0


def test_uses_granted_and_no_longer_used_are_sent_back_once(show):
    alice = Buyer(None, "alice")
    seats = list(show.hall.seats.order_by("id").values_list("id", flat=True))
    applying = "SELECT * FROM bookings_apply_moved_promo_code(%s, %s, 'default', 'shard2', %s, NULL, 'alice', %s)"
    holds = [hold_seats(buyer=alice, show=show, seat_ids=[seat]) for seat in seats[:3]]
    sending_back = "SELECT transfers FROM bookings_send_promo_uses_back(%s, 'shard2', 'default', %s)"
    with database() as db:
        for hold in holds:
            db.execute(applying, [uuid.uuid4(), Jsonb(terms_of_a_home_code()), hold.pk, timezone.now()])
        receive(db, uuid.uuid4(), terms_of_a_home_code())  # a use that came and was never applied
        db.execute(
            "SELECT * FROM bookings_remove_promo_code(%s, NULL, 'alice', 'home20', %s)", [holds[0].pk, timezone.now()]
        )
        (sent,) = db.execute(sending_back, ["HOME20", timezone.now()]).fetchone()
        (again,) = db.execute(sending_back, [None, timezone.now()]).fetchone()

    assert [(one["code"], one["buyer"], one["uses"]) for one in sent] == [("HOME20", "site:alice", 2)]
    assert again == []
    assert counts("HOME20") == (2, {"site:alice": (2, 2)})
    assert PromoUseTransfer.objects.get(pk=sent[0]["transfer"]).landed_at is None  # until the home has it
