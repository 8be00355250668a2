"""Nothing lives only in a process: kill the web server outright and every hold, booking and payment is there."""

import httpx
import pytest

from bench.harness.processes import kill_now
from bookings.models import Payment, Reservation
from tests.bookings.helpers import GOOD_CARD, seat_ids
from tests.conftest import serving
from tests.factories import make_api_key


@pytest.mark.django_db(transaction=True)
def test_holds_bookings_and_payments_survive_a_kill_9_of_the_web_server(show, settings):
    api_key = make_api_key()
    headers = {"X-API-Key": api_key}
    seats = seat_ids(show)

    def reserve(client, session, picks):
        body = {"session_id": session, "movie_id": show.movie_id, "show_id": show.pk, "seats_to_reserve": picks}
        response = client.post("/api/v1/reservations", json=body, headers=headers)
        assert response.status_code == 201
        return response.json()["reservation_id"]

    with serving(settings) as (url, server):
        with httpx.Client(base_url=url, timeout=10) as client:
            held = reserve(client, "alice", seats[:2])
            booked = reserve(client, "bob", seats[2:4])
            paid = client.post(
                f"/api/v1/reservations/{booked}/pay",
                json={"session_id": "bob", "payment": GOOD_CARD},
                headers={**headers, "Idempotency-Key": "restart-1"},
            )
            assert paid.status_code == 200
            first_answer = paid.content
        kill_now(server)  # no shutdown, no cleanup: the process group is gone

    with serving(settings) as (url, _), httpx.Client(base_url=url, timeout=10) as client:
        hold = client.get(f"/api/v1/reservations/{held}", params={"session_id": "alice"}, headers=headers).json()
        booking = client.get(f"/api/v1/reservations/{booked}", params={"session_id": "bob"}, headers=headers).json()
        seat_map = client.get(f"/api/v1/shows/{show.pk}/seats", headers=headers).json()
        replay = client.post(
            f"/api/v1/reservations/{booked}/pay",
            json={"session_id": "bob", "payment": GOOD_CARD},
            headers={**headers, "Idempotency-Key": "restart-1"},
        )

    assert hold["status"] == "Reserved" and [seat["id"] for seat in hold["seats"]] == seats[:2]
    assert booking["status"] == "Booked" and booking["booking_code"]
    status_of = {seat["id"]: seat["status"] for seat in seat_map["seats"]}
    assert [status_of[seat] for seat in seats[:4]] == ["held", "held", "booked", "booked"]
    assert replay.status_code == 200 and replay.content == first_answer  # the key's answer outlived the process
    assert Payment.objects.filter(kind="charge", status="succeeded").count() == 1
    assert Reservation.objects.count() == 2
