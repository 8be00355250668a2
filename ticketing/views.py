from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from ticketing.errors import RETRY_AFTER_SECONDS
from ticketing.health import readiness


@never_cache
@require_safe
def ready(request):
    """GET /health/ready: 200 when the database and Redis answer fresh connections, else 503 with Retry-After.

    Through Django like any request, so a process whose request queue is stuck goes red too; liveness
    (/health/live, ticketing.asgi_handler) is answered ahead of that queue.
    """
    is_ready, checks = readiness()
    response = JsonResponse({"status": "ready" if is_ready else "unavailable", "checks": checks})
    if not is_ready:
        response.status_code = 503
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
