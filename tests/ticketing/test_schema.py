import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_the_openapi_schema_generates_and_validates_without_a_single_warning(tmp_path):
    schema = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(schema))
    text = schema.read_text()
    for path in ["/api/v1/reservations:", "/api/v1/reservations/{reservation_id}/pay:", "/api/v1/movies/search:"]:
        assert path in text
    assert "X-API-Key" in text
