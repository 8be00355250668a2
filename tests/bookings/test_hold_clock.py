"""The hold clock, tested by moving time (time_machine), never by sleeping."""

from datetime import timedelta

import pytest
import time_machine

from bookings.models import Reservation, SeatClaim
from bookings.services import hold_seats, release_lapsed_holds
from tests.bookings.helpers import (
    DECLINED_CARD,
    finished_in_thread,
    pay,
    reserve,
    row_locked_elsewhere,
    seat_ids,
    seat_map,
    statuses,
)
from tests.factories import make_hall, make_show
from tests.helpers import run_at_once
from ticketing.buyers import Buyer


def hold_at(api, show, moment, seats, session="alice"):
    with time_machine.travel(moment, tick=False):
        response = reserve(api, show, seats, session=session)
    assert response.status_code == 201, response.content
    return response.json()["reservation_id"]


@pytest.fixture
def start(show):
    return show.starts_at - timedelta(hours=5)


@pytest.mark.django_db
class TestPayingAgainstTheClock:
    def test_paying_at_4_59_books_the_seats(self, api, show, start):
        reservation_id = hold_at(api, show, start, seat_ids(show)[:2])
        with time_machine.travel(start + timedelta(minutes=4, seconds=59), tick=False):
            response = pay(api, reservation_id)
        assert response.status_code == 200 and response.json()["status"] == "Booked"

    def test_paying_in_the_grace_seconds_after_the_countdown_still_books(self, api, show, start):
        reservation_id = hold_at(api, show, start, seat_ids(show)[:2])
        with time_machine.travel(start + timedelta(minutes=5, seconds=3), tick=False):
            assert pay(api, reservation_id).status_code == 200

    def test_paying_at_5_06_is_refused_as_gone_and_charges_nothing(self, api, show, start):
        from bookings.providers import get_provider

        reservation_id = hold_at(api, show, start, seat_ids(show)[:2])
        charges_before = len(get_provider().charges())
        with time_machine.travel(start + timedelta(minutes=5, seconds=6), tick=False):
            response = pay(api, reservation_id)
        assert response.status_code == 410 and response.json()["error"]["code"] == "hold_expired"
        assert len(get_provider().charges()) == charges_before
        assert Reservation.objects.get(pk=reservation_id).payments.count() == 0

    def test_a_card_declined_at_4_59_gives_the_hold_back_its_own_clock(self, api, show, start):
        seats = seat_ids(show)[:2]
        reservation_id = hold_at(api, show, start, seats)
        with time_machine.travel(start + timedelta(minutes=4, seconds=59), tick=False):
            assert pay(api, reservation_id, card=DECLINED_CARD).status_code == 402
        # The seats were kept 30 s longer while the provider answered; a decline ends that at once.
        with time_machine.travel(start + timedelta(minutes=5, seconds=6), tick=False):
            assert {statuses(api, show)[seat] for seat in seats} == {"available"}
            assert pay(api, reservation_id, key="key-2").status_code == 410


@pytest.mark.django_db
class TestALapsedHoldIsFreeBeforeTheSweepRuns:
    def test_reads_show_its_seats_available_and_the_hold_expired(self, api, show, start):
        seats = seat_ids(show)[:2]
        reservation_id = hold_at(api, show, start, seats)
        with time_machine.travel(start + timedelta(minutes=5, seconds=5), tick=False):
            assert {statuses(api, show)[seat] for seat in seats} == {"available"}
            assert seat_map(api, show)["counts"]["held"] == 0
            body = api.get(f"/api/v1/reservations/{reservation_id}", {"session_id": "alice"}).json()
            assert body["status"] == "Expired"
        assert Reservation.objects.get(pk=reservation_id).status == "Reserved"  # the sweep hasn't run

    def test_the_seats_are_still_held_during_the_grace_seconds(self, api, show, start):
        seats = seat_ids(show)[:2]
        hold_at(api, show, start, seats)
        with time_machine.travel(start + timedelta(minutes=5, seconds=4), tick=False):
            assert {statuses(api, show)[seat] for seat in seats} == {"held"}
            assert reserve(api, show, seats, session="bob").status_code == 409

    def test_a_new_buyer_claims_them_at_once_and_the_old_hold_is_expired(self, api, show, start):
        seats = seat_ids(show)[:3]
        first = hold_at(api, show, start, seats)
        second = hold_at(api, show, start + timedelta(minutes=5, seconds=5), seats[1:], session="bob")
        assert Reservation.objects.get(pk=first).status == "Expired"
        assert Reservation.objects.get(pk=second).status == "Reserved"
        live = SeatClaim.objects.filter(show=show, released_at__isnull=True)
        assert sorted(live.values_list("seat_id", flat=True)) == seats[1:]
        with time_machine.travel(start + timedelta(minutes=5, seconds=6), tick=False):
            assert statuses(api, show)[seats[0]] == "available"

    def test_the_lapsed_buyer_can_no_longer_pay_or_change_seats(self, api, show, start):
        seats = seat_ids(show)
        reservation_id = hold_at(api, show, start, seats[:1])
        with time_machine.travel(start + timedelta(minutes=6), tick=False):
            change = api.put(
                f"/api/v1/reservations/{reservation_id}",
                {"session_id": "alice", "seats_to_reserve": seats[1:2]},
                format="json",
            )
            assert change.status_code == 410
            assert pay(api, reservation_id).status_code == 410


@pytest.mark.django_db
class TestTheSweep:
    def test_it_expires_lapsed_holds_and_frees_their_seats(self, api, show, start):
        lapsed = hold_at(api, show, start, seat_ids(show)[:2])
        live = hold_at(api, show, start + timedelta(minutes=4), seat_ids(show)[2:4], session="bob")
        released = release_lapsed_holds(at=start + timedelta(minutes=5, seconds=5))
        assert released == 1
        assert Reservation.objects.get(pk=lapsed).status == "Expired"
        assert Reservation.objects.get(pk=live).status == "Reserved"
        assert SeatClaim.objects.filter(reservation_id=lapsed, released_at__isnull=True).count() == 0

    def test_running_it_twice_does_nothing_the_second_time(self, api, show, start):
        hold_at(api, show, start, seat_ids(show)[:2])
        moment = start + timedelta(minutes=6)
        assert release_lapsed_holds(at=moment) == 1
        versions = list(SeatClaim.objects.values_list("version", "released_at"))
        assert release_lapsed_holds(at=moment) == 0
        assert list(SeatClaim.objects.values_list("version", "released_at")) == versions

    def test_it_works_in_batches(self, show, start):
        # A hold per seat, but the companion seat's, which goes with the wheelchair space's (D1, D2).
        seats = seat_ids(show)
        for number, held in enumerate([[seat] for seat in seats[:10]] + [seats[10:12], seats[12:]]):
            hold_seats(
                buyer=Buyer(None, f"buyer-{number}"), show=show, seat_ids=held, at=start, accessible_confirmed=True
            )
        assert release_lapsed_holds(at=start + timedelta(minutes=6), batch_size=5) == 12
        assert not Reservation.objects.filter(status="Reserved").exists()

    def test_the_beat_task_runs_the_sweep(self, api, show, start):
        from bookings.tasks import release_lapsed_holds_task

        hold_at(api, show, start, seat_ids(show)[:1])
        with time_machine.travel(start + timedelta(minutes=6), tick=False):
            assert release_lapsed_holds_task.apply().get() == 1


@pytest.mark.django_db(transaction=True)
def test_two_workers_sweeping_at_once_expire_each_hold_exactly_once(start):
    holds = 200
    big = make_show(hall=make_hall(plan="\n".join(["R" * 20] * 10)))
    for number, seat in enumerate(seat_ids(big)[:holds]):
        hold_seats(buyer=Buyer(None, f"buyer-{number}"), show=big, seat_ids=[seat], at=start)
    moment = start + timedelta(minutes=6)
    released = run_at_once([lambda: release_lapsed_holds(at=moment, batch_size=20)] * 2)
    # Each worker counts the holds it expired: a hold expired by both would make the sum exceed 200.
    assert sum(released) == holds
    assert Reservation.objects.filter(status="Expired").count() == holds
    assert SeatClaim.objects.filter(released_at=moment).count() == holds
    assert release_lapsed_holds(at=moment) == 0


@pytest.mark.django_db(transaction=True)
def test_a_lapsed_hold_locked_by_another_transaction_is_skipped_and_the_sweep_expires_the_others(start):
    show = make_show(hall=make_hall(plan="R" * 7))
    holds = [
        hold_seats(buyer=Buyer(None, f"buyer-{number}"), show=show, seat_ids=[seat], at=start)
        for number, seat in enumerate(seat_ids(show))
    ]
    locked, others = holds[3], holds[:3] + holds[4:]
    moment = start + timedelta(minutes=6)
    # E.g. a late payment of that hold, mid-transaction: the sweep must not wait for it (FOR UPDATE SKIP
    # LOCKED), in any batch. Waiting, it would give up at PostgreSQL's lock_timeout (or never return).
    with row_locked_elsewhere(locked):
        outcome = finished_in_thread(lambda: release_lapsed_holds(at=moment, batch_size=2))
        assert outcome == ("returned", 6)
        assert set(Reservation.objects.filter(status="Expired").values_list("pk", flat=True)) == {
            hold.pk for hold in others
        }
        locked.refresh_from_db()
        assert locked.status == "Reserved" and locked.claims.filter(released_at__isnull=True).count() == 1
    # Left for a later sweep, once nobody holds it.
    assert release_lapsed_holds(at=moment) == 1
    locked.refresh_from_db()
    assert locked.status == "Expired" and not SeatClaim.objects.filter(released_at__isnull=True).exists()
