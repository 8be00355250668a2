"""The API's one error body: {"error": {"code", "message", "fields"}} (API.md)."""

import sys

import redis
from django.core.exceptions import DisallowedHost, RequestDataTooBig, TooManyFieldsSent
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpResponse, JsonResponse
from django.template import loader
from django.utils.translation import gettext, gettext_lazy
from rest_framework import exceptions, status
from rest_framework.views import exception_handler

from ticketing.api_keys import over_quota_message
from ticketing.error_codes import ERROR_CODES
from ticketing.parsers import too_large_message


def error_body(code, message, fields=None):
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def _extra_of(refusal, error_code):
    """What the error body carries beside "error": the refusal's own (a room's link) and a hold's status words."""
    words = {"status": error_code.status_words} if error_code.status_words else {}
    return {**getattr(refusal, "extra", {}), **words}


def refusal_api_error(refusal):
    """The API's answer to a service's refusal (a BookingError or a WaitingError: `code`, `message`, and
    `fields` and `retry_after` if it has them), as ticketing.error_codes has it: the status, the error body,
    a refused hold's status words beside it, and Retry-After for an answer that is not final."""
    error_code = ERROR_CODES[refusal.code]
    retry_after = getattr(refusal, "retry_after", None) or error_code.retry_after
    return ApiError(
        status_code=error_code.status,
        code=refusal.code,
        message=refusal.message,
        fields=getattr(refusal, "fields", None),
        extra=_extra_of(refusal, error_code) or None,
        headers={"Retry-After": str(retry_after)} if retry_after else None,
    )


class ApiError(exceptions.APIException):
    """An error a view raises with its own status, machine word and sentence."""

    def __init__(self, *, status_code, code, message, fields=None, extra=None, headers=None):
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.fields = fields or {}
        self.extra = extra or {}  # top-level keys beside "error", e.g. ReserveSeats' "status"
        self.headers = headers or {}


INVALID_REQUEST_MESSAGE = "Some parameters are not valid; see fields."
SERVER_ERROR_MESSAGE = "Something went wrong on our side; please retry."
# A 404 for an object the URL names (a show, a reservation) that does not exist.
NO_SUCH_THING_MESSAGE = "There is no such thing here."


def field_messages(detail):
    """DRF's nested error details as plain lists of sentences per field."""
    if isinstance(detail, dict):
        return {key: field_messages(value) for key, value in detail.items()}
    if isinstance(detail, list):
        flat = []
        for item in detail:
            flat.extend(field_messages(item) if isinstance(item, (list, dict)) else [str(item)])
        return flat
    return [str(detail)]


def api_exception_handler(exc, context):
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(NO_SUCH_THING_MESSAGE)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)  # keeps DRF's headers, e.g. Retry-After on 429
    if response is None:
        return None
    if isinstance(exc, ApiError):
        response.data = {**exc.extra, **error_body(exc.code, exc.message, exc.fields)}
        for name, value in exc.headers.items():
            response[name] = value
    elif isinstance(exc, exceptions.ValidationError):
        fields = (
            field_messages(exc.detail)
            if isinstance(exc.detail, dict)
            else {"non_field_errors": field_messages(exc.detail)}
        )
        response.data = error_body("invalid_request", INVALID_REQUEST_MESSAGE, fields)
    elif isinstance(exc, exceptions.Throttled):
        response.data = error_body("quota_exceeded", over_quota_message(response.headers.get("Retry-After", "a few")))
    else:
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
        response.data = error_body(code, str(exc.detail))
    return response


def is_api_request(request):
    return request.path.startswith("/api/")


def refusal_page(request, message, *, status_code, title=None):
    """The website's page for a request refused before any view (a person's version of the API's body).

    Rendered without the request's context: the request itself may be what is wrong (a host not ours). In the
    active language (the reader's, once ticketing.middleware.SiteLocaleMiddleware has run; else English).
    """
    title = title or gettext("We couldn't read that request")
    content = loader.get_template("400.html").render({"title": title, "message": message, "status": status_code})
    return HttpResponse(content, status=status_code)


# Why Django refused a request before our views ran (handler400), as the API's machine word and sentence.
EARLY_REFUSALS = (
    (RequestDataTooBig, status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, "request_too_large", None),
    (
        DisallowedHost,
        status.HTTP_400_BAD_REQUEST,
        "bad_request",
        gettext_lazy("This site is not served at this host name."),
    ),
    (TooManyFieldsSent, status.HTTP_400_BAD_REQUEST, "bad_request", gettext_lazy("The request has too many fields.")),
)


def bad_request(request, exception=None):
    """400 (413 for a body over the limit) for what Django refuses before any view: oversized or malformed
    bodies, a host not in ALLOWED_HOSTS, too many fields. API.md's error body under /api/, a page elsewhere."""
    status_code, code, message = status.HTTP_400_BAD_REQUEST, "bad_request", gettext("The request could not be read.")
    for kind, kind_status, kind_code, kind_message in EARLY_REFUSALS:
        if isinstance(exception, kind):
            status_code, code, message = kind_status, kind_code, str(kind_message or too_large_message())
            break
    if is_api_request(request):
        return JsonResponse(error_body(code, message), status=status_code)
    return refusal_page(request, message, status_code=status_code)


def permission_denied(request, exception=None):
    """403 for a refusal Django makes outside our API views; the API's error body under /api/."""
    if is_api_request(request):
        return JsonResponse(error_body("permission_denied", "You may not do this."), status=status.HTTP_403_FORBIDDEN)
    from django.views.defaults import permission_denied as django_permission_denied

    return django_permission_denied(request, exception)


def not_found(request, exception=None):
    """404 for any URL: the API's error body under /api/, Django's page elsewhere."""
    if is_api_request(request):
        return JsonResponse(
            error_body("not_found", "There is nothing at this address."), status=status.HTTP_404_NOT_FOUND
        )
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


# What a request fails with while the database or Redis can't be reached, the pool has no connection to give
# within DATABASE_POOL_TIMEOUT, or a lock or a serialization check gives up: the request changed nothing (its
# transaction rolled back), and the same request shortly after can succeed. So: 503 and Retry-After, not 500.
UNAVAILABLE = (OperationalError, InterfaceError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
RETRY_AFTER_SECONDS = 5


def server_error(request):
    """500 for a fault of ours; 503 with Retry-After when a component we need is down (UNAVAILABLE).

    Django calls this while handling the uncaught exception, from a view or any middleware, so the exception
    is sys.exception().
    """
    if isinstance(sys.exception(), UNAVAILABLE):
        return _unavailable(request)
    if is_api_request(request):
        return JsonResponse(
            error_body("server_error", SERVER_ERROR_MESSAGE),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    from django.views.defaults import server_error as django_server_error

    return django_server_error(request)


def unavailable_message():
    message = gettext("We can't answer this right now; please retry in %(seconds)s seconds.")
    return message % {"seconds": RETRY_AFTER_SECONDS}


def _unavailable(request):
    message = unavailable_message()
    if is_api_request(request):
        response = JsonResponse(error_body("service_unavailable", message), status=503)
    else:
        response = refusal_page(request, message, status_code=503, title=gettext("Please retry in a moment"))
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response
