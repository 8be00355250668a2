"""One table of refusals (ticketing.error_codes): every code a service or a hold function can say is in it, the API
and the website answer its status, and where they differ the table says why."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.utils.functional import Promise
from django.utils.translation import override

from tests.bookings.helpers import reserve, seat_ids
from tests.helpers import assert_api_error
from ticketing.error_codes import ERROR_CODES, error_message, site_status

APPS = ("bookings", "waiting", "cinemas", "ticketing")
RAISED_IN_PYTHON = re.compile(r"(?:BookingError|WaitingError|RoomError)\(\s*\"([a-z_]+)\"")
REFUSED_IN_SQL = re.compile(r"bookings_refuse\('([a-z_]+)'|RETURN '([a-z_]+)';")


def codes_in_the_source():
    codes = set()
    for app in APPS:
        for path in Path(settings.BASE_DIR, app).rglob("*.py"):
            text = path.read_text()
            codes |= set(RAISED_IN_PYTHON.findall(text))
            codes |= {word for pair in REFUSED_IN_SQL.findall(text) for word in pair if word}
    return codes - {"_"}


def test_every_code_a_service_or_a_hold_function_says_is_in_the_table():
    codes = codes_in_the_source()
    assert {"client_hold_cap", "show_full", "retry", "ticket_used", "bad_count", "payment_failed"} <= codes
    assert codes - set(ERROR_CODES) == set()


def test_every_sentence_is_translatable_and_says_what_it_was_raised_with():
    assert all(isinstance(error_code.message, Promise) for error_code in ERROR_CODES.values())
    with override("en"):
        assert error_message("too_many_seats") == f"A hold takes at most {settings.TICKETING_MAX_SEATS} seats."
        assert "in 42 s" in error_message("client_hold_cap", retry_after=42)


def test_the_site_answers_as_the_api_does_unless_the_table_says_why_not():
    differing = {code: error_code for code, error_code in ERROR_CODES.items() if error_code.site_status}
    assert set(differing) == {"show_started"}
    assert all(error_code.why for error_code in differing.values())
    assert site_status("show_started") == 410 and ERROR_CODES["show_started"].status == 400
    assert site_status("client_hold_cap") == ERROR_CODES["client_hold_cap"].status == 429


@pytest.mark.django_db
def test_a_hold_past_the_session_cap_gets_the_tables_status_and_sentence_from_the_api(api, show):
    seats = seat_ids(show)
    assert reserve(api, show, seats[:10]).status_code == 201
    response = reserve(api, show, seats[12:13])  # the last seat, D3 (D1 and D2 would need a confirmation)
    assert_api_error(response, ERROR_CODES["session_seat_cap"].status, "session_seat_cap")
    assert response.json()["error"]["message"] == error_message("session_seat_cap")


@pytest.mark.django_db
def test_a_refused_hold_carries_its_status_words_beside_the_error_body(api, show):
    seats = seat_ids(show)
    assert reserve(api, show, seats[:2], session="alice").status_code == 201
    response = reserve(api, show, seats[:2], session="bob")
    assert response.status_code == ERROR_CODES["seats_unavailable"].status
    assert response.json()["status"] == ERROR_CODES["seats_unavailable"].status_words
