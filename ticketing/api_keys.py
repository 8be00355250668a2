"""API keys on the public API: who is calling (authentication) and how often they may (quota)."""

import math
import time

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.throttling import BaseThrottle

from ticketing.models import ApiKey, hash_api_key

API_KEY_HEADER = "X-API-Key"
API_KEY_PARAMETER = "api_dev_key"


MISSING_KEY_MESSAGE = f"Send your API key in the {API_KEY_HEADER} header or the {API_KEY_PARAMETER} parameter."
UNKNOWN_KEY_MESSAGE = "This API key is not known."
REVOKED_KEY_MESSAGE = "This API key has been revoked."

# key hash -> (ApiKey, when it was read on the monotonic clock). Every call names its key; reading it from
# the database each time cost a query per request for a row that changes a few times a year.
_keys_read = {}


def find_api_key(raw_key):
    """The ApiKey with this raw key, or None; read at most every TICKETING_API_KEY_CACHE_SECONDS per process.

    Unknown keys are not remembered, so a key made a moment ago works at once.
    """
    api_key = remembered_api_key(raw_key)
    if api_key is None:
        api_key = ApiKey.objects.filter(key_hash=hash_api_key(raw_key)).first()
        if api_key is not None:
            _keys_read[api_key.key_hash] = (api_key, time.monotonic())
    return api_key


def remembered_api_key(raw_key):
    """The ApiKey if this process read it less than TICKETING_API_KEY_CACHE_SECONDS ago, else None (no query)."""
    known = _keys_read.get(hash_api_key(raw_key))
    if known is not None and time.monotonic() - known[1] < settings.TICKETING_API_KEY_CACHE_SECONDS:
        return known[0]
    return None


def forget_api_key(key_hash=None):
    """Drop one remembered key (or all): the next call with it reads it afresh."""
    if key_hash is None:
        _keys_read.clear()
    else:
        _keys_read.pop(key_hash, None)


def raw_key_from(request):
    """The key from the header, the query string or the JSON body, in that order."""
    raw_key = request.headers.get(API_KEY_HEADER) or request.query_params.get(API_KEY_PARAMETER)
    if not raw_key and request.content_type.startswith("application/json"):
        try:
            body = request.data
        except exceptions.ParseError:
            body = None  # the view reports the malformed body once the key is known
        if isinstance(body, dict) and isinstance(body.get(API_KEY_PARAMETER), str):
            raw_key = body[API_KEY_PARAMETER]
    return raw_key


class ApiKeyAuthentication(BaseAuthentication):
    """Missing or unknown key: 401. Revoked key: 403."""

    def authenticate(self, request):
        raw_key = raw_key_from(request)
        if not raw_key:
            return None
        api_key = find_api_key(raw_key)
        if api_key is None:
            raise exceptions.AuthenticationFailed(UNKNOWN_KEY_MESSAGE, code="invalid_api_key")
        if api_key.is_revoked:
            raise exceptions.PermissionDenied(REVOKED_KEY_MESSAGE, code="revoked_api_key")
        return (None, api_key)

    def authenticate_header(self, request):
        # Naming a scheme makes DRF answer 401 (not 403) to a call without a usable key.
        return API_KEY_HEADER


class HasApiKey(BasePermission):
    def has_permission(self, request, view):
        if isinstance(request.auth, ApiKey):
            return True
        raise exceptions.NotAuthenticated(MISSING_KEY_MESSAGE, code="missing_api_key")


QUOTA_WINDOW_SECONDS = 60
# A window's counter outlives it, so a call at the window's last instant still finds it.
QUOTA_KEY_TTL = 2 * QUOTA_WINDOW_SECONDS


def quota_window(api_key, now):
    """`(counter name, seconds left)`: the cache counter of the key's calls in the current one-minute window."""
    window = int(now // QUOTA_WINDOW_SECONDS)
    return f"api-quota:{api_key.pk}:{window}", QUOTA_WINDOW_SECONDS - (now % QUOTA_WINDOW_SECONDS)


def seconds_to_reset(seconds_left):
    """Whole seconds until the window ends (at least 1): RateLimit-Reset, and Retry-After past the quota."""
    return max(1, math.ceil(seconds_left))


def rate_limit_headers(limit, used, seconds_left):
    """The RateLimit-Limit, -Remaining and -Reset headers of an answer to a key allowed `limit` calls a window,
    `used` of them counted (this call included) in the window that has `seconds_left`.

    The one rule for both ways in (the DRF views, through ApiKeyQuota and ticketing.middleware, and the lean
    path, ticketing.lean), from the count the quota already made: no extra round trip. Remaining is 0 on a 429.
    """
    return {
        "RateLimit-Limit": str(limit),
        "RateLimit-Remaining": str(max(0, limit - used)),
        "RateLimit-Reset": str(seconds_to_reset(seconds_left)),
    }


def count_in_cache(counter, ttl=QUOTA_KEY_TTL):
    """Count one call on the shared cache's counter; returns the calls counted so far in its window.

    An atomic increment (Redis in production), so concurrent requests can't slip past the quota. `ttl`: how long
    the counter is kept, longer than its window.
    """
    try:
        return cache.incr(counter)
    except ValueError:  # the window's first call (incr first: one round trip on every other call)
        return 1 if cache.add(counter, 1, timeout=ttl) else cache.incr(counter)


def over_quota_message(retry_after):
    return f"This API key is over its quota; retry in {retry_after} seconds."


class ApiKeyQuota(BaseThrottle):
    """Each key's requests per minute, counted in fixed one-minute windows in the shared cache.

    Leaves the answer's RateLimit-* headers on the request (`rate_limit`), for ticketing.middleware to add to
    whatever the view answers, a refusal or this throttle's 429 included.
    """

    def allow_request(self, request, view):
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            return True
        counter, self.seconds_left = quota_window(api_key, timezone.now().timestamp())
        used = count_in_cache(counter)
        request._request.rate_limit = rate_limit_headers(api_key.rate_per_minute, used, self.seconds_left)
        return used <= api_key.rate_per_minute

    def wait(self):
        return seconds_to_reset(self.seconds_left)


class ApiKeySchemeExtension(OpenApiAuthenticationExtension):
    """Tells the OpenAPI schema how partners authenticate (drf-spectacular finds it by its target class)."""

    target_class = "ticketing.api_keys.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": API_KEY_HEADER,
            "description": f"Your API key; also accepted as the {API_KEY_PARAMETER} query or JSON parameter.",
        }


RATE_LIMIT_DESCRIPTIONS = {
    "RateLimit-Limit": "Calls this API key may make in a one-minute window.",
    "RateLimit-Remaining": "Calls left in the current window after this one (0 once over the quota).",
    "RateLimit-Reset": "Whole seconds until the window ends and the count starts again (at least 1).",
}


def describe_rate_limit_headers(result, generator, request, public):
    """drf-spectacular postprocessing hook: the RateLimit-* headers on every answer of an operation that takes
    an API key (not the 401 and 403 of a key that is missing, unknown or revoked), and its 429."""
    headers = result.setdefault("components", {}).setdefault("headers", {})
    for name, description in RATE_LIMIT_DESCRIPTIONS.items():
        headers[name] = {"schema": {"type": "integer", "minimum": 0}, "description": description}
    headers["Retry-After"] = {"schema": {"type": "integer", "minimum": 1}, "description": "Seconds to wait."}
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict) or not any("ApiKey" in way for way in operation.get("security", [])):
                continue
            operation["responses"].setdefault(
                "429",
                {"description": "Over this API key's quota (error body, quota_exceeded): see Retry-After."},
            )
            for status_code, response in operation["responses"].items():
                if status_code in ("401", "403"):
                    continue
                answer_headers = response.setdefault("headers", {})
                for name in RATE_LIMIT_DESCRIPTIONS:
                    answer_headers[name] = {"$ref": f"#/components/headers/{name}"}
                if status_code == "429":
                    answer_headers["Retry-After"] = {"$ref": "#/components/headers/Retry-After"}
    return result
