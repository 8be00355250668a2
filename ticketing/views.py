from django.conf import settings
from django.contrib import admin
from django.http import JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from ticketing.errors import RETRY_AFTER_SECONDS
from ticketing.health import readiness


@never_cache
@require_safe
def ready(request):
    """GET /health/ready: 200 when the database and Redis answer fresh connections, else 503 with Retry-After.

    Through Django like any request, so a process whose request queue is stuck goes red too; liveness
    (/health/live, ticketing.asgi.handler) is answered ahead of that queue.
    """
    is_ready, checks = readiness()
    response = JsonResponse({"status": "ready" if is_ready else "unavailable", "checks": checks})
    if not is_ready:
        response.status_code = 503
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def login_locked_out(request, original_response=None, credentials=None):
    """django-axes' answer to a login it refused (AXES_LOCKOUT_CALLABLE): 429, Retry-After and a page that says
    why and for how long, in the admin's look. The whole cool-off: the refused try itself started it again."""
    seconds = int(settings.AXES_COOLOFF_TIME.total_seconds())
    context = {
        **admin.site.each_context(request),
        "title": gettext("Too many failed logins"),
        "minutes": seconds // 60,
        "limit": settings.AXES_FAILURE_LIMIT,
    }
    response = render(request, "admin/login_locked_out.html", context, status=429)
    response["Retry-After"] = str(seconds)
    return response
