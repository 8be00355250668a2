"""The Redis cache shares one connection pool per process, whichever thread or request context asks."""

import threading

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache

from ticketing.redis_cache import SharedPoolRedisCache


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
