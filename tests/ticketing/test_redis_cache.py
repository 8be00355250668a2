"""The Redis cache shares one connection pool per process, whichever thread or request context asks."""

import threading

import pytest
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache

from ticketing.asgi.redis_cache import SharedPoolRedisCache


def cache_client_in_a_new_thread():
    found = []
    thread = threading.Thread(target=lambda: found.append(caches["default"]._cache))
    thread.start()
    thread.join()
    return found[0]


def test_caches_made_in_different_threads_share_one_client_and_its_pool(settings):
    assert isinstance(caches["default"], SharedPoolRedisCache)
    first, second = cache_client_in_a_new_thread(), cache_client_in_a_new_thread()
    assert first is second and first is caches["default"]._cache


def test_djangos_own_redis_cache_would_make_a_client_per_thread(settings):
    """The control: what SharedPoolRedisCache is for (each of these built its own pool and connections)."""
    location = settings.CACHES["default"]["LOCATION"]
    assert RedisCache(location, {})._cache is not RedisCache(location, {})._cache


def test_the_shared_client_counts_atomically_across_threads():
    cache = caches["default"]
    cache.set("shared-pool-counter", 0)
    threads = [
        threading.Thread(target=lambda: [caches["default"].incr("shared-pool-counter") for _ in range(50)])
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.get("shared-pool-counter") == 200


def test_incrementing_a_missing_key_fails_as_djangos_does_and_creates_nothing():
    cache = caches["default"]
    with pytest.raises(ValueError):
        cache.incr("never-set-counter")
    assert cache.get("never-set-counter") is None


def test_incrementing_costs_one_round_trip_to_redis(settings):
    """Django's own incr asks EXISTS then INCRBY; the quota counts every API call, so ours does both in one."""
    cache = caches["default"]
    cache.set("round-trip-counter", 5)
    commands = _commands_sent_while(lambda: cache.incr("round-trip-counter", 2))
    assert cache.get("round-trip-counter") == 7
    assert len(commands) == 1 and commands[0][0] in ("EVALSHA", "EVAL")


def _commands_sent_while(action):
    """The commands the shared client sent while `action` ran (its pool's connections, watched meanwhile)."""
    pool = caches["default"]._cache.get_client(write=True).connection_pool
    sent, watched = [], []
    original = pool.get_connection

    def get_connection(*args, **kwargs):
        connection = original(*args, **kwargs)
        send = connection.send_command
        watched.append((connection, send))
        connection.send_command = lambda *command, **options: (sent.append(command), send(*command, **options))[1]
        return connection

    pool.get_connection = get_connection
    try:
        action()
    finally:
        pool.get_connection = original
        for connection, send in watched:
            connection.send_command = send
    return sent
