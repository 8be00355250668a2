"""The API's one error body: {"error": {"code", "message", "fields"}} (API.md)."""

import sys

import redis
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpResponse, JsonResponse
from rest_framework import exceptions, status
from rest_framework.views import exception_handler


def error_body(code, message, fields=None):
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


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


def _messages(detail):
    """DRF's nested error details as plain lists of sentences per field."""
    if isinstance(detail, dict):
        return {key: _messages(value) for key, value in detail.items()}
    if isinstance(detail, list):
        flat = []
        for item in detail:
            flat.extend(_messages(item) if isinstance(item, (list, dict)) else [str(item)])
        return flat
    return [str(detail)]


def api_exception_handler(exc, context):
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("There is no such thing here.")
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
        fields = _messages(exc.detail) if isinstance(exc.detail, dict) else {"non_field_errors": _messages(exc.detail)}
        response.data = error_body("invalid_request", "Some parameters are not valid; see fields.", fields)
    elif isinstance(exc, exceptions.Throttled):
        response.data = error_body(
            "quota_exceeded",
            f"This API key is over its quota; retry in {response.headers.get('Retry-After', 'a few')} seconds.",
        )
    else:
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
        response.data = error_body(code, str(exc.detail))
    return response


def _is_api(request):
    return request.path.startswith("/api/")


def not_found(request, exception=None):
    """404 for any URL: the API's error body under /api/, Django's page elsewhere."""
    if _is_api(request):
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
    if _is_api(request):
        return JsonResponse(
            error_body("server_error", "Something went wrong on our side; please retry."),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    from django.views.defaults import server_error as django_server_error

    return django_server_error(request)


def _unavailable(request):
    message = f"We can't answer this right now; please retry in {RETRY_AFTER_SECONDS} seconds."
    if _is_api(request):
        response = JsonResponse(error_body("service_unavailable", message), status=503)
    else:
        response = HttpResponse(message, status=503, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response
