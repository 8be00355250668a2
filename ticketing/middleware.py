"""Request text that no page, form or API call may pass on: refused at the door, once for all of them; and the
language a request is answered in."""

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.http import JsonResponse
from django.middleware.locale import LocaleMiddleware
from django.urls import Resolver404, resolve
from django.utils import translation
from django.utils.translation import gettext, gettext_noop
from rest_framework import status

from ticketing import db_routers, shards
from ticketing.errors import error_body, is_api_request, refusal_page

NUL = "\x00"
NUL_MESSAGE = gettext_noop("This contains a NUL character, which no field accepts.")


def refuse_nul_characters(get_response):
    """A NUL in any query or form field is a 400; a cookie holding one is dropped (a session cookie so read
    is no session).

    PostgreSQL's text can't hold NUL and psycopg refuses such a parameter before the query runs, so every field
    that reaches a query answered 500 (`/search/?q=%00`, the admin's search box). API serializers refuse NUL
    too, but pages read parameters directly; checked here, no view has to remember it.
    """

    def middleware(request):
        for name in [name for name, value in request.COOKIES.items() if NUL in name or NUL in value]:
            del request.COOKIES[name]
        # request.POST is empty without reading the body for anything but a form (the API's JSON included).
        fields = sorted(
            {name for values in (request.GET, request.POST) for name, value in values.lists() if _has_nul(name, value)}
        )
        if fields:
            if is_api_request(request):
                names = {name.replace(NUL, "\\0"): [NUL_MESSAGE] for name in fields}
                body = error_body("invalid_request", "Some parameters are not valid; see fields.", names)
                return JsonResponse(body, status=status.HTTP_400_BAD_REQUEST)
            return refusal_page(request, gettext(NUL_MESSAGE), status_code=status.HTTP_400_BAD_REQUEST)
        return get_response(request)

    return middleware


def _has_nul(name, values):
    return NUL in name or any(NUL in value for value in values)


def add_rate_limit_headers(get_response):
    """An API answer carries its key's RateLimit-* headers (ticketing.api_keys.rate_limit_headers), as counted
    by the quota (ApiKeyQuota leaves them on the request), whatever the view answered: its body, a refusal, the
    429. In one place for every DRF view; the lean endpoints set their own (ticketing.lean.answered)."""

    def middleware(request):
        response = get_response(request)
        for name, value in getattr(request, "rate_limit", {}).items():
            response.headers.setdefault(name, value)
        return response

    return middleware


class SiteLocaleMiddleware(LocaleMiddleware):
    """Django's LocaleMiddleware for the website (the switcher's cookie, else Accept-Language); English for the API.

    The API is a contract for partners' programs: its machine words and status words never change, and its
    sentences (error messages, DRF's validation messages) stay English whatever Accept-Language says, so one
    partner's logs read the same as another's and nothing in an answer varies by language. Its answers say
    `Content-Language: en` and carry no `Vary: Accept-Language`, so caches keep one copy.
    """

    def process_request(self, request):
        if is_api_request(request):
            translation.activate(settings.LANGUAGE_CODE)
            request.LANGUAGE_CODE = settings.LANGUAGE_CODE
            return
        super().process_request(request)

    def process_response(self, request, response):
        if is_api_request(request):
            response.headers.setdefault("Content-Language", settings.LANGUAGE_CODE)
            return response
        return super().process_response(request, response)


# Read-your-writes for staff with a replica (ticketing.db_routers): a signed cookie naming nobody, only that this
# browser wrote as staff within the replica's staleness window.
PINNED_COOKIE = "read_primary"
PINNED_SALT = "ticketing.middleware.read_your_writes"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS", "TRACE")


def read_your_writes(get_response):
    """With a replica serving catalog reads: a browser whose staff member made a successful change (any
    non-GET answered below 400, the admin's saves included) reads everything from the primary for the
    replica's staleness window after it, so the change shows at once on the catalog's pages and API, however
    far the replica lags. Without a replica it is left out of the chain."""
    if not db_routers.replica_configured():
        raise MiddlewareNotUsed

    def middleware(request):
        window = db_routers.staleness_window_whole_seconds()
        pinned = request.get_signed_cookie(PINNED_COOKIE, default=None, salt=PINNED_SALT, max_age=window)
        with db_routers.pinned_to_the_primary(pinned is not None):
            response = get_response(request)
        if request.method not in SAFE_METHODS and response.status_code < 400 and request.user.is_staff:
            response.set_signed_cookie(
                PINNED_COOKIE,
                "1",
                salt=PINNED_SALT,
                max_age=window,
                httponly=True,
                samesite="Lax",
                secure=settings.SESSION_COOKIE_SECURE,
            )
        return response

    return middleware


def in_the_shows_database(get_response):
    """With the sales split by show id (ticketing.shards): a request whose URL names a show, a reservation or a
    waiter runs in the scope of that show's shard, its templates included. Unsharded it is left out of the
    chain. (A service that takes a show id from a form or a body scopes itself as well.)"""
    if not shards.sharded():
        raise MiddlewareNotUsed

    def middleware(request):
        try:
            kwargs = resolve(request.path_info).kwargs
        except Resolver404:
            return get_response(request)
        with shards.in_url_database(kwargs):
            return get_response(request)

    return middleware
