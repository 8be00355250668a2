"""What a load balancer asks before it sends a process work: can it reach the database and Redis right now?

Each check opens a connection of its own, with a short timeout, and closes it: a check run on a pooled or
already-open connection stays green while new connections are refused (TEST-PLAN A19).
"""

import psycopg
import redis
from django.conf import settings
from django.db import connection

CHECK_TIMEOUT_SECONDS = 2


def check_database():
    """None when a fresh connection to the database answers `SELECT 1`, else why not."""
    if connection.vendor != "postgresql":  # the single-process demo's SQLite: a file, always there
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return None
    params = {
        name: value
        for name, value in connection.get_connection_params().items()
        if name not in ("context", "cursor_factory", "prepare_threshold")  # Django's own adapters: not needed
    }
    params.update(connect_timeout=CHECK_TIMEOUT_SECONDS, application_name="readiness")
    try:
        with psycopg.connect(**params) as fresh:
            fresh.execute("SELECT 1")
    except psycopg.Error as error:
        return f"{type(error).__name__}: {error}".strip()
    return None


def check_redis():
    """None when a fresh connection to Redis answers PING (or no Redis is configured), else why not."""
    if not settings.REDIS_URL:
        return None
    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=CHECK_TIMEOUT_SECONDS, socket_timeout=CHECK_TIMEOUT_SECONDS
    )
    try:
        client.ping()
    except redis.exceptions.RedisError as error:
        return f"{type(error).__name__}: {error}".strip()
    finally:
        client.close()
    return None


def readiness():
    """`(ready, {"database": "ok" or why not, "redis": ...})`."""
    checks = {"database": check_database(), "redis": check_redis()}
    return all(problem is None for problem in checks.values()), {
        name: problem or "ok" for name, problem in checks.items()
    }
