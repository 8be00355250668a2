import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from tests.factories import make_api_key


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Quota counters live in the shared cache: every test starts with none."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api(db):
    """A partner's API client, sending its key in the X-API-Key header."""
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=make_api_key())
    return client
