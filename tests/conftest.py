import uuid

import pytest
from rest_framework.test import APIClient

from tests.factories import make_api_key


@pytest.fixture(autouse=True)
def _own_cache_namespace(settings):
    """Quota counters live in the shared cache (Redis): each test counts under its own key prefix.

    A prefix instead of a flush, so tests never wipe what other processes keep in the same Redis.
    """
    caches = {alias: dict(config) for alias, config in settings.CACHES.items()}
    for config in caches.values():
        config["KEY_PREFIX"] = f"test-{uuid.uuid4().hex}"
    settings.CACHES = caches


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Staff logins in tests need no slow, brute-force-resistant hash (the default still checks older ones)."""
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]


@pytest.fixture
def api(db):
    """A partner's API client, sending its key in the X-API-Key header."""
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=make_api_key())
    return client
