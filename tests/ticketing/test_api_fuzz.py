"""Bad input, generated: schemathesis over the OpenAPI schema, every operation (TEST-PLAN.md S1).

Schemathesis reads the schema the site serves (/api/v1/schema/) and has Hypothesis generate requests for each
operation: valid ones, and ones that break the schema's types, formats and bounds. Each goes to the real
application (in-process, on the test database, with a partner's key and one show to find). The checks: no
answer is a 5xx, and every error is API.md's error body.
"""

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings

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

    assert response.status_code < 500, (case.as_curl_command(), response.text[:500])
    if response.status_code >= 400:
        error = response.json()["error"]
        assert isinstance(error["code"], str) and error["code"], response.text[:500]
        assert isinstance(error["message"], str) and error["message"], response.text[:500]
        assert isinstance(error["fields"], dict), response.text[:500]


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
