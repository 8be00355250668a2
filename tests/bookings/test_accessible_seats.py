"""Wheelchair spaces and companion seats go only to buyers who say they need them (issue 18, point 5).

One rule (bookings_refuse_reserved_seats, in the hold functions: bookings migration 0025) for every hold and
change, the website's, the API's (through Django and on the lean path) and best available of those types: a
wheelchair space needs the buyer's confirmation; a companion seat needs it and a wheelchair space in the same
hold, until the cinema's companion_release_minutes before the show, when free companion seats open to everyone.
"""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from bookings.models import Reservation
from bookings.services import BestAvailable, BookingError, change_seats, hold_seats
from cinemas.models import Cinema
from cinemas.on_sales import gate_for
from cinemas.services import catalog_changed
from tests.bookings.helpers import labelled, reserve
from tests.helpers import assert_api_error
from ticketing.buyers import Buyer
from ticketing.error_codes import ERROR_CODES

# tests.factories.SMALL_PLAN: row D is "WC.R": D1 a wheelchair space, D2 its companion seat.
BUYER = Buyer(None, "wheelchair user")


def refused(code, action):
    with pytest.raises(BookingError) as refusal:
        action()
    assert refusal.value.code == code
    return refusal.value


def holds_of(show):
    return Reservation.objects.filter(show=show).count()


class TestChosenSeats:
    def test_a_wheelchair_space_is_held_only_for_a_buyer_who_confirms_they_need_it(self, show):
        wheelchair = labelled(show, "D1")

        refused("accessible_seat_needs_confirmation", lambda: hold_seats(buyer=BUYER, show=show, seat_ids=wheelchair))
        assert holds_of(show) == 0

        hold = hold_seats(buyer=BUYER, show=show, seat_ids=wheelchair, accessible_confirmed=True)
        assert hold.seat_labels() == ["D1"]

    def test_a_companion_seat_goes_only_with_a_wheelchair_space_in_the_same_hold(self, show):
        companion = labelled(show, "D2")

        refused("accessible_seat_needs_confirmation", lambda: hold_seats(buyer=BUYER, show=show, seat_ids=companion))
        refused(
            "companion_seat_needs_wheelchair",
            lambda: hold_seats(buyer=BUYER, show=show, seat_ids=companion, accessible_confirmed=True),
        )
        assert holds_of(show) == 0

        hold = hold_seats(buyer=BUYER, show=show, seat_ids=labelled(show, "D1", "D2"), accessible_confirmed=True)
        assert hold.seat_labels() == ["D1", "D2"]

    def test_other_seats_need_no_confirmation(self, show):
        assert hold_seats(buyer=BUYER, show=show, seat_ids=labelled(show, "B1", "B2")).seat_labels() == ["B1", "B2"]

    def test_a_change_into_a_wheelchair_space_needs_the_confirmation_and_keeps_the_old_seats_without_it(self, show):
        hold = hold_seats(buyer=BUYER, show=show, seat_ids=labelled(show, "C2"))

        refused(
            "accessible_seat_needs_confirmation",
            lambda: change_seats(buyer=BUYER, reservation_id=hold.pk, seat_ids=labelled(show, "D1")),
        )
        assert Reservation.objects.get(pk=hold.pk).seat_labels() == ["C2"]

        refused(
            "companion_seat_needs_wheelchair",
            lambda: change_seats(
                buyer=BUYER, reservation_id=hold.pk, seat_ids=labelled(show, "D2", "D3"), accessible_confirmed=True
            ),
        )
        changed = change_seats(
            buyer=BUYER, reservation_id=hold.pk, seat_ids=labelled(show, "D1", "D2"), accessible_confirmed=True
        )
        assert changed.seat_labels() == ["D1", "D2"]


class TestBestAvailable:
    def test_best_available_of_wheelchair_spaces_needs_the_confirmation(self, show):
        refused(
            "accessible_seat_needs_confirmation",
            lambda: hold_seats(buyer=BUYER, show=show, best_available=BestAvailable(1, "Wheelchair")),
        )
        hold = hold_seats(
            buyer=BUYER, show=show, best_available=BestAvailable(1, "Wheelchair"), accessible_confirmed=True
        )
        assert hold.seat_labels() == ["D1"]

    def test_best_available_of_companion_seats_alone_is_refused_until_they_open_to_everyone(self, show):
        refused(
            "companion_seat_needs_wheelchair",
            lambda: hold_seats(
                buyer=BUYER, show=show, best_available=BestAvailable(1, "Companion"), accessible_confirmed=True
            ),
        )
        with time_machine.travel(show.starts_at - timedelta(minutes=60), tick=False):
            assert hold_seats(buyer=BUYER, show=show, best_available=BestAvailable(1, "Companion")).seat_labels() == [
                "D2"
            ]

    def test_best_available_without_a_type_never_gives_them_and_asks_nothing(self, show):
        hold = hold_seats(buyer=BUYER, show=show, best_available=BestAvailable(2))
        assert {seat.seat_type for seat in hold.seats_held} <= {"Regular", "Premium"}


class TestCompanionRelease:
    """Companion seats still free Cinema.companion_release_minutes before the show are anyone's."""

    @pytest.mark.parametrize(("minutes_before", "open_to_all"), [(61, False), (60.01, False), (60, True), (5, True)])
    def test_a_companion_seat_alone_is_held_without_a_word_only_from_the_release_time(
        self, show, minutes_before, open_to_all
    ):
        with time_machine.travel(show.starts_at - timedelta(minutes=minutes_before), tick=False):
            if open_to_all:
                assert hold_seats(buyer=BUYER, show=show, seat_ids=labelled(show, "D2")).seat_labels() == ["D2"]
            else:
                refused(
                    "accessible_seat_needs_confirmation",
                    lambda: hold_seats(buyer=BUYER, show=show, seat_ids=labelled(show, "D2")),
                )

    def test_the_release_time_is_the_cinemas_and_a_change_of_it_counts_at_once(self, show):
        Cinema.objects.filter(halls=show.hall).update(companion_release_minutes=15)
        catalog_changed()
        with time_machine.travel(show.starts_at - timedelta(minutes=30), tick=False):
            refused(
                "accessible_seat_needs_confirmation",
                lambda: hold_seats(buyer=BUYER, show=show, seat_ids=labelled(show, "D2")),
            )
        with time_machine.travel(show.starts_at - timedelta(minutes=15), tick=False):
            assert hold_seats(buyer=BUYER, show=show, seat_ids=labelled(show, "D2")).seat_labels() == ["D2"]

    def test_a_wheelchair_space_needs_the_confirmation_even_after_the_release(self, show):
        with time_machine.travel(show.starts_at - timedelta(minutes=10), tick=False):
            refused(
                "accessible_seat_needs_confirmation",
                lambda: hold_seats(buyer=BUYER, show=show, seat_ids=labelled(show, "D1")),
            )


class TestTheApi:
    def test_reserve_seats_refuses_a_wheelchair_space_without_the_field_with_the_error_body(self, api, show):
        response = reserve(api, show, labelled(show, "D1"))

        assert_api_error(response, 400, "accessible_seat_needs_confirmation")
        assert ERROR_CODES["accessible_seat_needs_confirmation"].status == 400
        assert holds_of(show) == 0

        held = reserve(api, show, labelled(show, "D1", "D2"), accessible_seating_confirmed=True)
        assert held.status_code == 201
        assert [seat["type"] for seat in held.json()["seats"]] == ["Wheelchair", "Companion"]

    def test_reserve_seats_refuses_a_companion_seat_alone(self, api, show):
        response = reserve(api, show, labelled(show, "D2"), accessible_seating_confirmed=True)
        assert_api_error(response, 400, "companion_seat_needs_wheelchair")

    def test_best_available_of_a_wheelchair_space_needs_the_field(self, api, show):
        response = reserve(api, show, best_available={"count": 1, "type": "Wheelchair"})
        assert_api_error(response, 400, "accessible_seat_needs_confirmation")
        held = reserve(api, show, best_available={"count": 1, "type": "Wheelchair"}, accessible_seating_confirmed=True)
        assert held.status_code == 201

    def test_change_seats_takes_the_field_too(self, api, show):
        held = reserve(api, show, labelled(show, "C2")).json()
        url = f"/api/v1/reservations/{held['reservation_id']}"
        body = {"session_id": "alice", "seats_to_reserve": labelled(show, "D1")}

        assert_api_error(api.put(url, body, format="json"), 400, "accessible_seat_needs_confirmation")
        changed = api.put(url, {**body, "accessible_seating_confirmed": True}, format="json")
        assert changed.status_code == 200 and [seat["type"] for seat in changed.json()["seats"]] == ["Wheelchair"]

    def test_the_field_must_be_a_boolean(self, api, show):
        response = reserve(api, show, labelled(show, "D1"), accessible_seating_confirmed="perhaps")
        assert_api_error(response, 400, "invalid_request", "accessible_seating_confirmed")

    def test_the_schema_documents_the_field(self, api):
        schema = api.get("/api/v1/schema/", {"format": "json"}).content.decode()
        assert "accessible_seating_confirmed" in schema
        assert "accessible_seat_needs_confirmation" in schema


@pytest.mark.django_db(transaction=True)
def test_the_lean_path_applies_the_same_rule_to_holds_and_changes(show):
    from tests.factories import make_api_key
    from tests.helpers import on_the_front
    from tests.ticketing.test_lean_path import hold_body

    headers = {"X-API-Key": make_api_key()}
    wheelchair = labelled(show, "D1")
    unconfirmed, held = on_the_front(
        ("POST", "/api/v1/reservations", {"json": hold_body(show, wheelchair), "headers": headers}),
        ("POST", "/api/v1/reservations", {"json": hold_body(show, labelled(show, "C2")), "headers": headers}),
    )
    url = f"/api/v1/reservations/{held.json()['reservation_id']}"
    change = {"session_id": "alice", "seats_to_reserve": labelled(show, "D2", "D3")}
    alone, confirmed = on_the_front(
        ("PUT", url, {"json": {**change, "accessible_seating_confirmed": True}, "headers": headers}),
        (
            "PUT",
            url,
            {
                "json": {**change, "seats_to_reserve": wheelchair, "accessible_seating_confirmed": True},
                "headers": headers,
            },
        ),
    )

    assert unconfirmed.status_code == 400
    assert unconfirmed.json()["error"]["code"] == "accessible_seat_needs_confirmation"
    assert alone.status_code == 400 and alone.json()["error"]["code"] == "companion_seat_needs_wheelchair"
    assert confirmed.status_code == 200 and [seat["type"] for seat in confirmed.json()["seats"]] == ["Wheelchair"]


def test_the_map_tells_its_script_when_companion_seats_are_open_to_everyone(client, show):
    with time_machine.travel(show.starts_at - timedelta(minutes=61), tick=False):
        assert "data-companions-open" not in client.get(f"/shows/{show.pk}/").content.decode()
    with time_machine.travel(show.starts_at - timedelta(minutes=60), tick=False):
        assert 'data-companions-open="1"' in client.get(f"/shows/{show.pk}/").content.decode()


@pytest.mark.django_db(transaction=True)
def test_another_sessions_hold_is_never_revealed_by_the_rule_on_either_path(show):
    from tests.factories import make_api_key
    from tests.helpers import on_the_front
    from tests.ticketing.test_lean_path import hold_body
    from ticketing.asgi import django_asgi_app

    headers = {"X-API-Key": make_api_key()}
    (held,) = on_the_front(
        ("POST", "/api/v1/reservations", {"json": hold_body(show, labelled(show, "C2")), "headers": headers})
    )
    url = f"/api/v1/reservations/{held.json()['reservation_id']}"
    change = (
        "PUT",
        url,
        {"json": {"session_id": "mallory", "seats_to_reserve": labelled(show, "D1")}, "headers": headers},
    )

    (on_front,) = on_the_front(change)
    (through_django,) = on_the_front(change, app=django_asgi_app)

    for answer in (on_front, through_django):
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"
    assert Reservation.objects.get().seat_labels() == ["C2"]


def test_the_rule_is_the_hold_functions_own_and_a_refused_hold_is_one_statement(show):
    """The database decides (bookings_refuse_reserved_seats): a hold written around the services is refused too,
    and the service's refusal is the hold's one statement."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    with pytest.raises(Exception) as refusal, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT * FROM bookings_hold_seats(%s, NULL, NULL, 'direct', NULL, NULL, 1, %s, false, NULL, true, "
            "ARRAY['Premium', 'Regular'], 10, interval '5 minutes', interval '5 seconds', now())",
            [show.pk, labelled(show, "D1")],
        )
    assert "accessible_seat_needs_confirmation" in str(refusal.value)
    wheelchair = labelled(show, "D1")
    gate_for(show.pk, timezone.now())  # the rooms in force: read once per GATE_SECONDS, not per hold
    with CaptureQueriesContext(connection) as queries:
        refused(
            "accessible_seat_needs_confirmation",
            lambda: hold_seats(buyer=BUYER, show=show, seat_ids=wheelchair),
        )
    statements = [query["sql"].split("(")[0] for query in queries if "SAVEPOINT" not in query["sql"]]
    assert statements == ["SELECT * FROM bookings_hold_seats"]  # (in a test's transaction, in a savepoint)
