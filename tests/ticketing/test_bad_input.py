"""No input answers 500: one test per class of bad input that once did, on the API, the pages and WebSockets.

Each class was found by trying the site from outside (issue 15); the generated-input runs in test_api_fuzz.py and
test_site_fuzz.py keep the classes fixed for inputs nobody wrote down here.
"""

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.test import Client, override_settings

from bookings.models import Reservation
from bookings.services import hold_seats
from tests.bookings.helpers import seat_ids as all_seat_ids
from tests.helpers import assert_api_error
from ticketing.buyers import Buyer
from waiting.models import Waiter

pytestmark = pytest.mark.django_db

TOO_MANY_DIGITS = "9" * 5000  # past Python's 4,300-digit limit on int(str)
PAST_BIGINT = "9" * 25
SESSION = "alice-session"


def seat_ids(show, count):
    return all_seat_ids(show)[:count]


def reserve(api, show, seats, session_id=SESSION):
    response = api.post(
        "/api/v1/reservations",
        {"session_id": session_id, "movie_id": show.movie_id, "show_id": show.pk, "seats_to_reserve": seats},
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


class TestADeeplyNestedJsonBody:
    BODY = "[" * 10_000 + "]" * 10_000

    def test_is_refused_with_the_error_body_before_the_key_is_known(self, client):
        response = client.post("/api/v1/reservations", self.BODY, content_type="application/json")

        assert_api_error(response, 401, "missing_api_key")  # the body is looked into for api_dev_key

    def test_is_a_400_with_a_key(self, api):
        response = api.generic("POST", "/api/v1/reservations", self.BODY, content_type="application/json")

        assert_api_error(response, 400, "parse_error")

    def test_nested_in_a_card_is_a_400(self, api, show):
        hold = reserve(api, show, seat_ids(show, 1))
        deep = '{{"session_id": "{}", "payment": {}}}'.format(SESSION, "[" * 5000 + "]" * 5000)
        response = api.generic(
            "POST", f"/api/v1/reservations/{hold['reservation_id']}/pay", deep,
            content_type="application/json", HTTP_IDEMPOTENCY_KEY="k1",
        )  # fmt: skip

        assert response.status_code == 400, response.content


class TestNumbersPastPythonsDigitLimit:
    def test_a_json_number_literal_of_5000_digits_is_a_parse_error(self, api, show):
        body = f'{{"session_id": "a", "movie_id": 1, "show_id": {TOO_MANY_DIGITS}, "seats_to_reserve": [1]}}'
        response = api.generic("POST", "/api/v1/reservations", body, content_type="application/json")

        assert_api_error(response, 400, "parse_error")

    def test_a_card_expiry_of_5000_digits_is_an_invalid_card(self, api, show):
        hold = reserve(api, show, seat_ids(show, 1))
        card = {"card_number": "4242424242424242", "exp_month": TOO_MANY_DIGITS, "exp_year": TOO_MANY_DIGITS}
        response = api.post(
            f"/api/v1/reservations/{hold['reservation_id']}/pay",
            {"session_id": SESSION, "payment": {**card, "cvc": "123"}},
            format="json",
            HTTP_IDEMPOTENCY_KEY="k2",
        )

        body = assert_api_error(response, 400, "invalid_card")
        assert {"exp_month", "exp_year"} <= set(body["error"]["fields"]["payment"])

    @pytest.mark.parametrize("city", [TOO_MANY_DIGITS, PAST_BIGINT])
    def test_the_search_page_takes_a_city_of_any_length_as_no_city(self, client, show, city):
        response = client.get("/search/", {"q": show.movie.title, "city": city})

        assert response.status_code == 200
        assert show.movie.title in response.content.decode()

    @pytest.mark.parametrize("number", [TOO_MANY_DIGITS, PAST_BIGINT])
    def test_the_websites_hold_refuses_such_seats_and_counts_and_holds_nothing(self, client, show, number):
        chosen = client.post(f"/shows/{show.pk}/hold", {"seats": [number]})
        best = client.post(f"/shows/{show.pk}/hold", {"best": "1", "count": number})

        assert chosen.status_code == 400 and best.status_code == 400
        assert not Reservation.objects.exists()

    def test_the_waiting_form_refuses_such_a_count(self, client, show):
        response = client.post(f"/shows/{show.pk}/waitlist", {"seats_wanted": TOO_MANY_DIGITS})

        assert response.status_code < 500
        assert not Waiter.objects.exists()

    @pytest.mark.parametrize("parameter", ["wait", "version"])
    def test_the_waiting_pages_poll_reads_such_numbers_as_absent(self, client, show, parameter):
        everything = [seat.pk for seat in show.hall.seats.all()][:10]
        hold_seats(buyer=Buyer(None, "someone"), show=show, seat_ids=everything)
        client.post(f"/shows/{show.pk}/waitlist", {"seats_wanted": "4"})
        waiter = Waiter.objects.get()

        response = client.get(f"/waiting/{waiter.pk}/poll", {parameter: TOO_MANY_DIGITS})

        assert response.status_code == 200
        assert response.json()["waiter_id"] == str(waiter.pk)


class TestNulCharacters:
    @pytest.mark.parametrize("query", ["\x00", "a\x00b"])
    def test_the_search_page_answers_a_page_a_person_understands(self, client, show, query):
        response = client.get("/search/", {"q": query})

        assert response.status_code == 400
        assert "text/html" in response["Content-Type"]

    def test_a_form_field_with_nul_is_a_400_and_changes_nothing(self, client, show):
        response = client.post(f"/shows/{show.pk}/hold", {"seats": [str(seat_ids(show, 1)[0])], "action": "x\x00"})

        assert response.status_code == 400
        assert not Reservation.objects.exists()

    def test_the_api_answers_its_error_body(self, api):
        response = api.get("/api/v1/cities", {"search": "\x00"})

        assert_api_error(response, 400, "invalid_request")

    def test_the_admins_search_box_answers_a_page(self, admin_client):
        response = admin_client.get("/admin/cinemas/movie/", {"q": "\x00"})

        assert response.status_code == 400

    def test_a_session_cookie_holding_nul_reads_as_no_session(self, client, show):
        client.cookies["sessionid"] = "\x00" * 32

        response = client.get(f"/shows/{show.pk}/")

        assert response.status_code == 200


class TestDatesAtTheEndOfTheCalendar:
    @pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
    def test_a_citys_movies_on_such_a_date_are_a_400(self, api, show, day):
        response = api.get(f"/api/v1/cities/{show.hall.cinema.city_id}/movies", {"date": day})

        assert_api_error(response, 400, "invalid_request", field="date")

    @pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
    def test_a_movies_shows_on_such_a_date_are_a_400(self, api, show, day):
        response = api.get(f"/api/v1/movies/{show.movie_id}/shows", {"city": show.hall.cinema.city_id, "date": day})

        assert_api_error(response, 400, "invalid_request", field="date")

    @pytest.mark.parametrize(
        ("parameter", "value"),
        [("start_datetime", "9999-12-31T23:59:59-05:00"), ("end_datetime", "0001-01-01T00:00:00+05:00")],
    )
    def test_search_times_that_overflow_in_utc_are_a_400(self, api, show, parameter, value):
        response = api.get("/api/v1/movies/search", {parameter: value})

        assert_api_error(response, 400, "invalid_request", field=parameter)

    def test_the_showtimes_page_on_such_a_date_shows_the_first_day(self, client, show):
        cinema = show.hall.cinema
        response = client.get(f"/cities/{cinema.city_id}/movies/{show.movie_id}/", {"date": "9999-12-31"})

        assert response.status_code == 200


class TestChangingAHoldToTheSeatsItHas:
    def test_through_the_api_answers_the_hold_unchanged(self, api, show, django_capture_on_commit_callbacks):
        seats = seat_ids(show, 2)
        hold = reserve(api, show, seats)

        with django_capture_on_commit_callbacks(execute=True):
            response = api.put(
                f"/api/v1/reservations/{hold['reservation_id']}",
                {"session_id": SESSION, "seats_to_reserve": seats},
                format="json",
            )

        assert response.status_code == 200, response.content
        assert sorted(seat["id"] for seat in response.json()["seats"]) == sorted(seats)

    def test_on_the_website_takes_the_buyer_back_to_the_hold(self, client, show, django_capture_on_commit_callbacks):
        seats = [str(seat) for seat in seat_ids(show, 2)]
        client.post(f"/shows/{show.pk}/hold", {"seats": seats})

        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(f"/shows/{show.pk}/hold", {"seats": seats, "action": "choose"})

        assert response.status_code == 302
        assert Reservation.objects.get().status == Reservation.Status.RESERVED


class TestWebSocketsToUnknownPlaces:
    @pytest.mark.parametrize(
        "path",
        ["/ws/nothing/", "/ws/", "/", f"/ws/shows/{PAST_BIGINT}/", f"/ws/shows/{TOO_MANY_DIGITS}/", "/ws/waitlist/x/"],
    )
    def test_close_the_handshake_cleanly(self, path):
        from ticketing.asgi import application

        async def handshake():
            communicator = WebsocketCommunicator(
                application, path, headers=[(b"host", b"127.0.0.1"), (b"origin", b"http://127.0.0.1")]
            )
            connected, _ = await communicator.connect(timeout=3)
            await communicator.disconnect()
            return connected

        assert async_to_sync(handshake)() is False


class TestRefusalsDjangoMakesBeforeOurCode:
    @override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
    def test_a_body_over_the_upload_limit_is_a_413_with_the_error_body(self, api, show):
        body = {"session_id": "x" * 2000, "movie_id": 1, "show_id": show.pk, "seats_to_reserve": [1]}
        response = api.post("/api/v1/reservations", body, format="json")

        assert_api_error(response, 413, "request_too_large")

    def test_a_host_that_is_not_ours_is_a_400_with_the_error_body(self, api):
        response = api.get("/api/v1/cities", HTTP_HOST="evil.example")

        assert_api_error(response, 400, "bad_request")

    @override_settings(DATA_UPLOAD_MAX_NUMBER_FIELDS=10)
    def test_too_many_form_fields_on_the_api_are_a_400_with_the_error_body(self, api):
        fields = "&".join(f"f{n}=1" for n in range(50))
        response = api.generic("POST", "/api/v1/reservations", fields, "application/x-www-form-urlencoded")

        assert response.status_code in (400, 415)
        assert response.json()["error"]["code"]

    def test_malformed_json_is_a_400_with_the_error_body(self, api):
        response = api.generic("POST", "/api/v1/reservations", '{"session_id": ', content_type="application/json")

        assert_api_error(response, 400, "parse_error")

    @override_settings(DATA_UPLOAD_MAX_NUMBER_FIELDS=10, DEBUG=False)
    def test_too_many_fields_on_the_website_are_a_400_page(self, show):
        client = Client()
        response = client.post(f"/shows/{show.pk}/hold", {f"f{n}": "1" for n in range(50)})

        assert response.status_code == 400
        assert "text/html" in response["Content-Type"]
        assert not Reservation.objects.exists()
