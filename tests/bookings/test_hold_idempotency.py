"""ReserveSeats with an Idempotency-Key (API.md "Additions"): a partner's retried hold never holds twice.

The same key with the same body answers the first answer again (its status and bytes, Idempotent-Replayed:
true), another body is 409 idempotency_mismatch, and calls racing with one key hold once: the rule is the one
paying uses (bookings_begin_idempotent_request, claimed in its own row before the hold runs). Calls go in both
ways, on the lean front and through Django, as real ASGI requests; the race is real concurrent clients on
PostgreSQL, with a negative control that drops the guard and sees the double hold.
"""

import time

import httpx
import pytest

from bookings.models import IdempotentRequest, Reservation
from bookings.services import cancel_hold, hold_seats
from tests.conftest import redis_keys_of_its_own, serving
from tests.factories import make_api_key, make_hall, make_show
from tests.helpers import on_the_front, run_at_once, sql_function_replaced
from ticketing.asgi import django_asgi_app
from ticketing.buyers import Buyer
from ticketing.faults import CRASH_EXIT_CODE

pytestmark = pytest.mark.django_db(transaction=True)

WAYS_IN = {"front": None, "django": django_asgi_app}
RACERS = 8  # each a one-seat hold: within the session's cap of ten, so a double hold would go through


@pytest.fixture
def show(db):
    return make_show(hall=make_hall(plan="\n".join(["RRRRRRRRRR"] * 2)))


@pytest.fixture
def key():
    return make_api_key()


def seats_of(show):
    return list(show.hall.seats.order_by("y", "x").values_list("id", flat=True))


def hold_body(show, *, seats=None, best=None, session="alice"):
    body = {"session_id": session, "movie_id": show.movie_id, "show_id": show.pk}
    if best:
        body["best_available"] = {"count": best}
    else:
        body["seats_to_reserve"] = seats
    return body


def hold_call(key, body, idempotency_key=None):
    headers = {"X-API-Key": key}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    return ("POST", "/api/v1/reservations", {"json": body, "headers": headers})


def held_seats(show):
    return Reservation.objects.filter(show=show, status=Reservation.Status.RESERVED).count()


@pytest.mark.parametrize("way_in", WAYS_IN)
def test_a_retry_with_the_same_key_answers_the_first_hold_again_and_holds_nothing_more(way_in, show, key):
    body = hold_body(show, best=2)
    first, retry = on_the_front(hold_call(key, body, "hold-1"), hold_call(key, body, "hold-1"), app=WAYS_IN[way_in])

    assert first.status_code == retry.status_code == 201
    assert retry.content == first.content  # the same reservation_id, seats and clock, byte for byte
    assert retry.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert int(retry.headers["ratelimit-remaining"]) < int(first.headers["ratelimit-remaining"])  # a replay counts
    assert str(Reservation.objects.get().pk) == first.json()["reservation_id"]


@pytest.mark.parametrize("way_in", WAYS_IN)
def test_the_same_key_with_another_body_is_409_idempotency_mismatch(way_in, show, key):
    seats = seats_of(show)
    first, other = on_the_front(
        hold_call(key, hold_body(show, seats=seats[:1]), "hold-1"),
        hold_call(key, hold_body(show, seats=seats[1:2]), "hold-1"),
        app=WAYS_IN[way_in],
    )

    assert first.status_code == 201
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_mismatch"
    assert Reservation.objects.count() == 1


def test_keys_are_each_api_keys_and_sessions_own(show, key):
    seats = seats_of(show)
    other_partner = make_api_key()
    answers = on_the_front(
        hold_call(key, hold_body(show, seats=seats[:1]), "hold-1"),
        hold_call(key, hold_body(show, seats=seats[1:2], session="bob"), "hold-1"),
        hold_call(other_partner, hold_body(show, seats=seats[2:3]), "hold-1"),
    )

    assert [answer.status_code for answer in answers] == [201, 201, 201]
    assert len({answer.json()["reservation_id"] for answer in answers}) == 3


@pytest.mark.parametrize("way_in", WAYS_IN)
@pytest.mark.parametrize("idempotency_key", ["", "   ", "k" * 256])
def test_an_empty_or_too_long_key_is_400_and_holds_nothing(way_in, idempotency_key, show, key):
    (answer,) = on_the_front(hold_call(key, hold_body(show, best=1), idempotency_key), app=WAYS_IN[way_in])

    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "invalid_idempotency_key" and error["message"] and error["fields"] == {}
    assert not Reservation.objects.exists() and not IdempotentRequest.objects.exists()


def test_a_hold_without_a_key_writes_no_idempotency_record(show, key):
    (answer,) = on_the_front(hold_call(key, hold_body(show, best=1)))

    assert answer.status_code == 201 and "idempotent-replayed" not in answer.headers
    assert not IdempotentRequest.objects.exists()


def test_a_final_refusal_is_the_keys_answer_but_a_retry_later_refusal_is_not(show, key):
    """ "Seats Unavailable" is an answer: replayed as it was. "Retry" asks the client to come back: the same
    key then runs again, and holds once the seats came free."""
    seats = seats_of(show)
    holder = Buyer(None, "holder")
    hold_seats(buyer=holder, show=show, seat_ids=seats[:1])
    gone, replayed = on_the_front(
        hold_call(key, hold_body(show, seats=seats[:1]), "gone"),
        hold_call(key, hold_body(show, seats=seats[:1]), "gone"),
    )
    assert gone.status_code == 409 and gone.json()["status"] == "Reservation Failed - Seats Unavailable"
    assert replayed.headers["idempotent-replayed"] == "true" and replayed.content == gone.content

    small_show = make_show(hall=make_hall(plan="RRRR"))
    everything = hold_seats(buyer=holder, show=small_show, seat_ids=seats_of(small_show))
    (wait,) = on_the_front(hold_call(key, hold_body(small_show, best=2), "later"))
    assert wait.status_code == 409 and wait.json()["error"]["code"] == "retry" and "retry-after" in wait.headers

    cancel_hold(buyer=holder, reservation_id=everything.pk)
    (held,) = on_the_front(hold_call(key, hold_body(small_show, best=2), "later"))
    assert held.status_code == 201 and "idempotent-replayed" not in held.headers


# --- Retries racing each other ------------------------------------------------------------------------------


def racing_retries(show, key, way_in):
    """RACERS calls of one hold with one Idempotency-Key, sent at the same moment: on the front all on one event
    loop (the async pool gives each its own connection), through Django each from its own thread."""
    call = hold_call(key, hold_body(show, best=1), "the-one-key")
    if way_in == "front":
        return on_the_front(*[call] * RACERS, at_once=True)
    return run_at_once([lambda: on_the_front(call, app=django_asgi_app)[0]] * RACERS)


def assert_held_once(answers, show):
    held = {answer.json()["reservation_id"] for answer in answers if answer.status_code == 201}
    refused = [answer.json()["error"]["code"] for answer in answers if answer.status_code != 201]
    assert len(held) == 1 and set(refused) <= {"idempotency_in_flight"}, (held, refused)
    assert held_seats(show) == 1


@pytest.mark.parametrize("way_in", WAYS_IN)
def test_retries_racing_with_one_key_hold_once(way_in, show, key):
    answers = racing_retries(show, key, way_in)

    assert_held_once(answers, show)
    in_flight = [answer for answer in answers if answer.status_code == 409]
    assert all(answer.headers["retry-after"] == "2" for answer in in_flight)
    # Once the first has answered, each retry gets that answer.
    (late,) = on_the_front(hold_call(key, hold_body(show, best=1), "the-one-key"))
    assert late.status_code == 201 and late.headers["idempotent-replayed"] == "true"
    assert held_seats(show) == 1


# The key claimed by nobody: each call goes ahead as if it were the first (finishing it updates no row).
NO_GUARD = """
CREATE OR REPLACE FUNCTION bookings_begin_idempotent_request(
    p_api_key bigint, p_session text, p_key text, p_fingerprint text, p_takeover_after interval,
    p_at timestamptz, p_reservation uuid,
    OUT request_id bigint, OUT resumed boolean, OUT response_status int, OUT response_body text
) LANGUAGE plpgsql AS $$
BEGIN
    request_id := 0;
    resumed := false;
END $$;
"""


@pytest.mark.parametrize("way_in", WAYS_IN)
def test_negative_control_without_the_keys_claim_the_racing_retries_hold_again_and_again(way_in, show, key):
    with sql_function_replaced("bookings_begin_idempotent_request", NO_GUARD):
        answers = racing_retries(show, key, way_in)

    assert held_seats(show) > 1
    with pytest.raises(AssertionError):
        assert_held_once(answers, show)


# --- A process that dies between the hold and storing its answer -------------------------------------------

TAKEOVER_SECONDS = 1


def hold_then_die_then_retry(settings, show, key):
    """A hold with a key whose web process dies (kill -9, ticketing/faults.py) once the hold has committed and
    before its answer is stored; then, on a fresh process, the partner's retry with the same key once the key can
    be taken over. Returns the retry's answer."""
    body = hold_body(show, best=2)
    environment = {**redis_keys_of_its_own(), "TICKETING_IDEMPOTENCY_TAKEOVER_SECONDS": str(TAKEOVER_SECONDS)}
    headers = {"X-API-Key": key, "Idempotency-Key": "hold-once"}
    with serving(settings, workers=1, environment={**environment, "TICKETING_CRASH_AT": "after_hold"}) as (url, web):
        with httpx.Client(base_url=url, headers=headers, timeout=10) as client, pytest.raises(httpx.TransportError):
            client.post("/api/v1/reservations", json=body)
        assert web.wait(timeout=10) == CRASH_EXIT_CODE
    assert held_seats(show) == 1  # the hold committed before the process died
    with (
        serving(settings, workers=1, environment=environment) as (url, _),
        httpx.Client(base_url=url, headers=headers, timeout=10) as client,
    ):
        deadline = time.monotonic() + 10 * TAKEOVER_SECONDS
        while (retry := client.post("/api/v1/reservations", json=body)).status_code == 409:
            assert time.monotonic() < deadline, retry.text  # in flight until the key can be taken over
            time.sleep(0.2)
    return retry


def test_a_retry_after_the_process_died_unanswered_answers_the_hold_it_made_and_holds_nothing_more(settings, show):
    key = make_api_key()

    retry = hold_then_die_then_retry(settings, show, key)

    assert retry.status_code == 201, retry.text
    (reservation,) = Reservation.objects.filter(show=show)
    assert retry.json()["reservation_id"] == str(reservation.pk)
    assert IdempotentRequest.objects.get(key="hold-once").reservation_id == reservation.pk


# The hold without its mark on the key's row: a retry that takes the key over cannot know it held.
HOLD_UNMARKED = """
CREATE OR REPLACE FUNCTION bookings_hold_seats_once(
    p_request bigint,
    p_show bigint, p_movie bigint, p_api_key bigint, p_session text, p_address inet, p_cap int,
    p_count int, p_seats bigint[], p_best boolean, p_seat_type text, p_check_line boolean,
    p_open_types text[], p_max_seats int, p_hold interval, p_grace interval, p_at timestamptz,
    p_accessible_confirmed boolean,
    OUT reservation_id uuid, OUT version bigint, OUT amount numeric, OUT seats jsonb, OUT freed jsonb,
    OUT breakdown jsonb
) LANGUAGE sql AS $$
    SELECT * FROM bookings_hold_seats(
        p_show, p_movie, p_api_key, p_session, p_address, p_cap, p_count, p_seats, p_best, p_seat_type,
        p_check_line, p_open_types, p_max_seats, p_hold, p_grace, p_at, p_accessible_confirmed
    )
$$;
"""


def test_negative_control_without_the_hold_marked_on_the_key_the_retry_after_the_crash_holds_again(settings, show):
    key = make_api_key()

    with sql_function_replaced("bookings_hold_seats_once", HOLD_UNMARKED):
        retry = hold_then_die_then_retry(settings, show, key)

    # The retry held two more seats: the partner's one hold is two.
    assert retry.status_code == 201
    assert Reservation.objects.filter(show=show).count() == 2
    assert IdempotentRequest.objects.get(key="hold-once").reservation_id is None
