"""Bad input, generated: schemathesis over the OpenAPI schema, every operation (TEST-PLAN.md S1).

Schemathesis reads the schema the site serves (/api/v1/schema/) and has Hypothesis generate requests for each
operation: valid ones, and ones that break the schema's types, formats and bounds. Each goes to the real
application (in-process, on the test database, with a partner's key and one show to find). The checks: no
answer is a 5xx, and every error is API.md's error body.

Two more runs aim at the classes of input that once answered 500 (issue 15): the same schema with values swapped
for extreme ones (numbers past bigint and past Python's int digit limit, the calendar's ends, NUL and control
characters), and raw bodies no JSON serializer makes (nested past the decoder's depth, huge number literals,
bodies past the upload limit). tests/ticketing/test_site_fuzz.py does the same for the website's pages and forms.
"""

import json

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cinemas.models import Show
from tests.factories import make_api_key, make_hall, make_show

schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", get_wsgi_application())
EXAMPLES_PER_OPERATION = 100


@pytest.fixture
def partner_key(transactional_db):
    make_show(hall=make_hall())  # show 1's seats and prices exist for the ids Hypothesis tries
    return make_api_key(rate_per_minute=1_000_000)


@pytest.mark.serial  # schemathesis's operations are one test id, which pytest-xdist would run once
@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    # The same examples on every run, so CI's answer depends on the code alone. Random runs found the `city=²`
    # and page-overflow 500s fixed since; drop this line to explore afresh.
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_generated_request_gets_a_5xx_and_every_error_is_the_error_body(case, partner_key):
    response = case.call(headers={"X-API-Key": partner_key})

    assert_is_an_answer(response, case.as_curl_command())


# The calls on the lean path (ticketing.lean) are answered by uvicorn's event loop before Django: the run above
# reaches their endpoints through Django (the same code on Django's connection); this one sends the calls that
# use the async pool as served, the waiting line's poll among them. (Paying is on the lean path too, but runs the
# sync service on a thread: its answers on the front are checked in tests/ticketing/test_lean_path.py, its
# inputs by the run above.)
LEAN_OPERATIONS = {
    "GET /api/v1/shows/{show_id}/seats",
    "POST /api/v1/reservations",
    "PUT /api/v1/reservations/{reservation_id}",
    "DELETE /api/v1/reservations/{reservation_id}",
    "GET /api/v1/waitlist/{waiter_id}",
}


def test_the_lean_operations_as_uvicorn_serves_them_answer_no_5xx_and_every_error_is_the_error_body(asgi_server):
    make_show(hall=make_hall())
    key = make_api_key(rate_per_minute=1_000_000)
    served = schemathesis.openapi.from_url(f"{asgi_server}/api/v1/schema/")
    operations = [result.ok() for result in served.get_all_operations() if result.ok().label in LEAN_OPERATIONS]
    assert {operation.label for operation in operations} == LEAN_OPERATIONS

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def answers(case):
            response = case.call(base_url=asgi_server, headers={"X-API-Key": key})
            assert_is_an_answer(response, case.as_curl_command())

        answers()


def test_the_fuzzing_covers_every_operation_api_md_lists_and_its_additions():
    labels = {result.ok().label for result in schema.get_all_operations()}

    assert labels == OPERATION_LABELS


OPERATION_LABELS = {
    "GET /api/v1/cities",
    "GET /api/v1/cities/{city_id}/movies",
    "GET /api/v1/movies/{movie_id}/shows",
    "GET /api/v1/movies/search",
    "GET /api/v1/shows/{show_id}",
    "GET /api/v1/shows/{show_id}/seats",
    "POST /api/v1/reservations",
    "GET /api/v1/reservations/{reservation_id}",
    "PUT /api/v1/reservations/{reservation_id}",
    "DELETE /api/v1/reservations/{reservation_id}",
    "POST /api/v1/reservations/{reservation_id}/pay",
    "PUT /api/v1/reservations/{reservation_id}/add-ons",
    "GET /api/v1/shows/{show_id}/menu",
    "POST /api/v1/reservations/{reservation_id}/extend",
    "POST /api/v1/reservations/{reservation_id}/cancel",
    "POST /api/v1/reservations/{reservation_id}/promo-code",
    "DELETE /api/v1/reservations/{reservation_id}/promo-code",
    "POST /api/v1/shows/{show_id}/waitlist",
    "GET /api/v1/waitlist/{waiter_id}",
    "DELETE /api/v1/waitlist/{waiter_id}",
    "GET /api/v1/on-sales/{on_sale_id}/room",
    "POST /api/v1/on-sales/{on_sale_id}/room",
    "GET /api/v1/room/{visitor_id}",
    "DELETE /api/v1/room/{visitor_id}",
    "GET /api/v1/webhooks",
    "POST /api/v1/webhooks",
    "GET /api/v1/webhooks/{endpoint_id}",
    "DELETE /api/v1/webhooks/{endpoint_id}",
}


# --- Extreme values: the classes of bad input that once answered 500 (tests/ticketing/test_bad_input.py) ---------
# Hypothesis rarely puts one of these where it bites (a real id in the path, the rest valid, one value extreme), so
# this run is systematic: for every operation, a valid request on real rows (a hold, a place in line), then the
# same request with each parameter in turn (path, query, body, card) swapped for each extreme value. Numbers past
# bigint and past Python's 4,300-digit int(str) limit, the calendar's ends, NUL and other control characters.
EXTREME_VALUES = [
    "9" * 5000, "9" * 25, "-9223372036854775809", "²", "\x00", "a\x00b", "\x01\x08\x1b\x7f", "\u202e\ufeff",
    "9999-12-31", "0001-01-01", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "NaN", "1e309", "",
    2**63, -(2**63) - 1, 10**4000, 1e308, -0.0, True, None, [], {},
]  # fmt: skip


@pytest.fixture
def real_rows(partner_key):
    """Valid values for every parameter of every operation, naming real rows of this partner's session "fuzz"."""
    from rest_framework.test import APIClient

    from tests.bookings.helpers import DECLINED_CARD, reserve
    from tests.waiting.rooms import on_sale_of

    show = Show.objects.get()
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=partner_key)
    seats = list(show.hall.seats.order_by("y", "x").values_list("pk", flat=True))
    hold = reserve(client, show, seats[:2], session="fuzz").json()
    for number, start in enumerate(range(2, len(seats), 10)):  # the rest held by others: the line can be joined
        reserve(client, show, seats[start : start + 10], session=f"other-{number}", accessible_seating_confirmed=True)
    waiter = client.post(f"/api/v1/shows/{show.pk}/waitlist", {"session_id": "fuzz", "seats_wanted": 1}, format="json")
    hooks = {"url": "https://partner.example/hooks", "events": ["booking.created"]}
    endpoint = client.post("/api/v1/webhooks", hooks, format="json").json()
    on_sale = on_sale_of()  # a show of its own behind a waiting room, and the session's place in it
    visitor = client.post(f"/api/v1/on-sales/{on_sale.pk}/room", {"session_id": "fuzz"}, format="json").json()
    ids = {
        "on_sale_id": on_sale.pk,
        "visitor_id": visitor["visitor_id"],
        "endpoint_id": endpoint["id"],
        "city_id": show.hall.cinema.city_id,
        "movie_id": show.movie_id,
        "show_id": show.pk,
        "reservation_id": hold["reservation_id"],
        "waiter_id": waiter.json()["waiter_id"],
    }
    session = {"session_id": "fuzz"}
    return {
        "key": partner_key,
        "path": ids,
        "GET /api/v1/cities": {"query": {"search": "City", "page": 1}},
        "GET /api/v1/cities/{city_id}/movies": {"query": {"date": "2026-12-07"}},
        "GET /api/v1/movies/{movie_id}/shows": {"query": {"city": ids["city_id"], "date": "2026-12-07"}},
        "GET /api/v1/movies/search": {
            "query": {
                "keyword": "Movie",
                "city": ids["city_id"],
                "lat_long": "40.7,-73.9",
                "radius": 50,
                "start_datetime": "2026-12-01T00:00:00Z",
                "end_datetime": "2027-01-01T00:00:00Z",
                "postal_code": "10001",
                "include_spellcheck": "yes",
                "results_per_page": 5,
                "page": 1,
                "sorting_order": "distance,asc",
            },
        },  # fmt: skip
        "GET /api/v1/shows/{show_id}": {},
        "GET /api/v1/shows/{show_id}/seats": {},
        "POST /api/v1/reservations": {
            "body": {
                **session,
                "movie_id": ids["movie_id"],
                "show_id": ids["show_id"],
                "seats_to_reserve": seats[:1],
                "best_available": {"count": 1, "type": "Regular"},
            },
        },  # fmt: skip
        "GET /api/v1/reservations/{reservation_id}": {"query": session},
        "PUT /api/v1/reservations/{reservation_id}": {"body": {**session, "seats_to_reserve": seats[:2]}},
        "DELETE /api/v1/reservations/{reservation_id}": {"query": session},
        "POST /api/v1/reservations/{reservation_id}/pay": {
            "body": {**session, "payment": dict(DECLINED_CARD)},
            "headers": {"Idempotency-Key": "fuzz"},
        },
        "PUT /api/v1/reservations/{reservation_id}/add-ons": {"body": {**session, "items": [{"id": 1, "quantity": 1}]}},
        "GET /api/v1/shows/{show_id}/menu": {},
        "POST /api/v1/reservations/{reservation_id}/extend": {"body": session},
        "POST /api/v1/reservations/{reservation_id}/cancel": {"body": session},
        "POST /api/v1/reservations/{reservation_id}/promo-code": {"body": {**session, "code": "FUZZ10"}},
        "DELETE /api/v1/reservations/{reservation_id}/promo-code": {"query": {**session, "code": "FUZZ10"}},
        "POST /api/v1/shows/{show_id}/waitlist": {"body": {**session, "seats_wanted": 1}},
        "GET /api/v1/waitlist/{waiter_id}": {"query": {**session, "version": 0, "wait": 0}},
        "DELETE /api/v1/waitlist/{waiter_id}": {"query": session},
        "GET /api/v1/on-sales/{on_sale_id}/room": {},
        "POST /api/v1/on-sales/{on_sale_id}/room": {"body": {**session, "email": "fuzz@example.com"}},
        "GET /api/v1/room/{visitor_id}": {"query": {**session, "version": 0, "wait": 0}},
        "DELETE /api/v1/room/{visitor_id}": {"query": session},
        "GET /api/v1/webhooks": {"query": {"api_dev_key": partner_key}},  # it has no parameter of its own
        "POST /api/v1/webhooks": {"body": hooks},
        "GET /api/v1/webhooks/{endpoint_id}": {},
        "DELETE /api/v1/webhooks/{endpoint_id}": {},
    }


def one_extreme_at_a_time(request):
    """(where, name, request): `request` itself, then with every parameter swapped for every extreme value in turn."""
    yield "valid", "", request
    for part in ("path", "query", "body"):
        fields = request.get(part) or {}
        for name, value in fields.items():
            for extreme in EXTREME_VALUES:
                if part == "path" and not isinstance(extreme, str):
                    continue  # a path is text
                yield part, name, {**request, part: {**fields, name: extreme}}
                for inner_name in value if isinstance(value, dict) else ():  # a card's fields, best_available's
                    inner = {**value, inner_name: extreme}
                    yield part, f"{name}.{inner_name}", {**request, part: {**fields, name: inner}}


@pytest.mark.parametrize("label", sorted(OPERATION_LABELS))
def test_no_request_with_one_extreme_value_gets_a_5xx_and_every_error_is_the_error_body(label, real_rows):
    operation = next(result.ok() for result in schema.get_all_operations() if result.ok().label == label)
    names = {parameter.name for parameter in operation.path_parameters}
    valid = {"path": {name: real_rows["path"][name] for name in names}, **real_rows[label]}
    sent = 0
    for part, name, request in one_extreme_at_a_time(valid):
        body = {"body": request["body"], "media_type": "application/json"} if "body" in request else {}
        case = operation.Case(
            path_parameters=request.get("path"),
            query=request.get("query"),
            headers={**request.get("headers", {}), "X-API-Key": real_rows["key"]},
            **body,
        )
        response = case.call()
        assert_is_an_answer(response, f"{label} {part} {name}: {case.as_curl_command()[:300]}")
        sent += 1

    assert sent >= sum(isinstance(value, str) for value in EXTREME_VALUES)  # at least a path's worth went out


# --- Raw bodies the JSON serializer can't make: nested past the decoder's depth, numbers past int's digit limit,
# raw NULs, and bodies past the upload limit. Sent to every operation that takes a body.
def _nested(depth, inner="1"):
    return "[" * depth + inner + "]" * depth


RAW_BODIES = st.one_of(
    st.integers(min_value=900, max_value=50_000).map(_nested),
    st.integers(min_value=900, max_value=20_000).map(lambda depth: '{"a":' * depth + "1" + "}" * depth),
    st.integers(min_value=4_301, max_value=20_000).map(
        lambda digits: '{"session_id": "a", "show_id": ' + "9" * digits + "}"
    ),
    st.sampled_from(['{"session_id": "a\\u0000"}', '{"session_id": "\\ud800"}', "\x00", '{"a": NaN}', "[", "\ufeff{}"]),
    st.integers(min_value=2_621_441, max_value=3_000_000).map(lambda size: '{"session_id": "' + "x" * size + '"}'),
)
BODY_OPERATIONS = [
    ("POST", "/api/v1/reservations"),
    ("PUT", "/api/v1/reservations/00000000-0000-0000-0000-000000000000"),
    ("POST", "/api/v1/reservations/00000000-0000-0000-0000-000000000000/pay"),
    ("PUT", "/api/v1/reservations/00000000-0000-0000-0000-000000000000/add-ons"),
    ("POST", "/api/v1/reservations/00000000-0000-0000-0000-000000000000/extend"),
    ("POST", "/api/v1/reservations/00000000-0000-0000-0000-000000000000/cancel"),
    ("POST", "/api/v1/reservations/00000000-0000-0000-0000-000000000000/promo-code"),
    ("POST", "/api/v1/shows/1/waitlist"),
    ("POST", "/api/v1/webhooks"),
]


@pytest.mark.parametrize(("method", "path"), BODY_OPERATIONS)
@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=RAW_BODIES)
def test_no_raw_body_gets_a_5xx_and_every_error_is_the_error_body(method, path, body, partner_key):
    from rest_framework.test import APIClient

    client = APIClient()
    response = client.generic(
        method, path, body.encode("utf-8", "surrogatepass"), content_type="application/json",
        HTTP_X_API_KEY=partner_key, HTTP_IDEMPOTENCY_KEY="raw-body",
    )  # fmt: skip

    assert_is_an_answer(response, f"{method} {path} {body[:200]!r}")


def assert_is_an_answer(response, request):
    status = getattr(response, "status_code", None)
    text = response.text if hasattr(response, "text") else response.content.decode()
    assert status < 500, (request, text[:500])
    if status >= 400:
        error = json.loads(text)["error"]
        assert isinstance(error["code"], str) and error["code"], text[:500]
        assert isinstance(error["message"], str) and error["message"], text[:500]
        assert isinstance(error["fields"], dict), text[:500]
