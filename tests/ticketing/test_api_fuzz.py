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

from tests.factories import make_api_key, make_hall, make_show

schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", get_wsgi_application())
EXAMPLES_PER_OPERATION = 100


@pytest.fixture
def partner_key(transactional_db):
    make_show(hall=make_hall())  # show 1's seats and prices exist for the ids Hypothesis tries
    return make_api_key(rate_per_minute=1_000_000)


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


def test_the_fuzzing_covers_every_operation_api_md_lists():
    labels = {result.ok().label for result in schema.get_all_operations()}

    assert labels == {
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
        "POST /api/v1/shows/{show_id}/waitlist",
        "GET /api/v1/waitlist/{waiter_id}",
        "DELETE /api/v1/waitlist/{waiter_id}",
    }


# --- Extreme values: the classes of bad input that once answered 500 (tests/ticketing/test_bad_input.py) ---------
# A second run over the same schema, with each generated value sometimes swapped for one of these: numbers past
# bigint and past Python's 4,300-digit int(str) limit, calendar ends, NUL and other control characters.
EXTREME_TEXT = st.sampled_from(
    [
        "9" * 5000,
        "9" * 25,
        "-9223372036854775809",
        "²",
        "\x00",
        "a\x00b",
        "\x01\x08\x1b\x7f",
        "\u202e\ufeff",
        "\ud7ff\U0010ffff",
        "9999-12-31",
        "0001-01-01",
        "9999-12-31T23:59:59-23:59",
        "0001-01-01T00:00:00+23:59",
        "NaN",
        "1e309",
        "",
    ]
)
EXTREME_NUMBERS = st.sampled_from([2**63, -(2**63) - 1, 10**4000, 10**-400, 1e308, -0.0])
EXTREME = st.one_of(EXTREME_TEXT, EXTREME_NUMBERS, st.text(alphabet=st.characters(max_codepoint=0x1F), min_size=1))

extreme_schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", get_wsgi_application())


def _sometimes_extreme(value):
    """`value` with each of its leaves (at any depth) kept or swapped for an extreme one."""
    if isinstance(value, dict):
        items = {key: _sometimes_extreme(inner) for key, inner in value.items()}
        return st.fixed_dictionaries(items)
    if isinstance(value, list):
        return st.tuples(*(_sometimes_extreme(inner) for inner in value)).map(list)
    return st.one_of(st.just(value), EXTREME)


@extreme_schema.hook("flatmap_query")
def extreme_query(context, query):
    return _sometimes_extreme(query or {})


@extreme_schema.hook("flatmap_path_parameters")
def extreme_path(context, path_parameters):
    return _sometimes_extreme(path_parameters or {})


@extreme_schema.hook("flatmap_body")
def extreme_body(context, body):
    return _sometimes_extreme(body)


@extreme_schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION // 2,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_request_with_extreme_values_gets_a_5xx_and_every_error_is_the_error_body(case, partner_key):
    response = case.call(headers={"X-API-Key": partner_key})

    assert_is_an_answer(response, case.as_curl_command())


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
    ("POST", "/api/v1/shows/1/waitlist"),
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
