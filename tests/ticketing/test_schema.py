import pytest
from django.core.management import call_command
from drf_spectacular.generators import SchemaGenerator


@pytest.mark.django_db
def test_the_openapi_schema_generates_and_validates_without_a_single_warning(tmp_path):
    schema = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(schema))
    text = schema.read_text()
    for path in ["/api/v1/reservations:", "/api/v1/reservations/{reservation_id}/pay:", "/api/v1/movies/search:"]:
        assert path in text
    assert "X-API-Key" in text


@pytest.mark.django_db
def test_the_schema_tells_partners_the_rate_limit_headers_and_the_holds_optional_idempotency_key():
    schema = SchemaGenerator().get_schema(request=None, public=True)

    reserve = schema["paths"]["/api/v1/reservations"]["post"]
    [key] = [parameter for parameter in reserve["parameters"] if parameter["name"] == "Idempotency-Key"]
    assert key["in"] == "header" and not key.get("required") and "Idempotent-Replayed" in key["description"]
    for status in ("201", "409", "429"):
        assert set(reserve["responses"][status]["headers"]) >= {
            "RateLimit-Limit",
            "RateLimit-Remaining",
            "RateLimit-Reset",
        }
    assert "Retry-After" in reserve["responses"]["429"]["headers"]
    cities = schema["paths"]["/api/v1/cities"]["get"]
    assert "RateLimit-Remaining" in cities["responses"]["200"]["headers"]
    assert schema["components"]["headers"]["RateLimit-Reset"]["schema"]["type"] == "integer"
