"""Django's Redis cache with one connection pool per process, and a counter that costs one round trip.

Under ASGI, Django makes a cache object per request context (its cache handler is context-local), and each
RedisCache object builds its own redis-py connection pool: every request opened, used once and dropped a TCP
connection to Redis (the API quota's counter is read on every call). redis-py's clients and pools are
thread-safe, so one client per server list and options serves the whole process.

Django's `incr` asks Redis whether the key exists and then increments it (two round trips, and a new
redis-py client object for each); the API quota increments a counter on every call, so here it is one
script call that does both, atomically.

Upstream, and what would let this go:
- The pool per cache object: Django ticket #35651 ("Reusing RedisCacheClient connections for multiple
  requests", pull requests open since 2024). Once RedisCacheClient keeps its pools per process, as the fix
  proposes, SharedPoolRedisCache can go (tests/ticketing/test_redis_cache.py shows the stock backend's
  behaviour: delete the class and see that test say whether it still makes a client per context).
- The counter: Django's RedisCacheClient.incr checks EXISTS and then INCRs since the backend came in (ticket
  #33012), as Django's cache API wants a missing key to raise; a pull request for one call (#18073) was closed.
  No ticket is open; this stays while the quota counts every call.
- Django internals it relies on, checked by tests/ticketing/test_django_internals.py: RedisCache's `_servers`,
  `_options`, `_class` and its `_cache` cached property, and RedisCacheClient's
  `_get_connection_pool_index(write)`.
"""

import threading

from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from django.utils.functional import cached_property

_clients = {}
_clients_lock = threading.Lock()

# Increment only an existing key, as Django's incr does (a missing key is the caller's ValueError).
INCREMENT_EXISTING = """
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('INCRBY', KEYS[1], ARGV[1]) end
return false
"""


class SharedClientRedisCacheClient(RedisCacheClient):
    def __init__(self, servers, **options):
        super().__init__(servers, **options)
        self._redis_clients = {}
        self._increment_existing = None

    def get_client(self, key=None, *, write=False):
        pool_index = self._get_connection_pool_index(write)
        client = self._redis_clients.get(pool_index)
        if client is None:
            client = self._redis_clients.setdefault(pool_index, super().get_client(key, write=write))
        return client

    def incr(self, key, delta):
        client = self.get_client(key, write=True)
        if self._increment_existing is None:
            self._increment_existing = client.register_script(INCREMENT_EXISTING)
        value = self._increment_existing(keys=[key], args=[delta], client=client)
        if value is None:
            raise ValueError(f"Key '{key}' not found.")
        return value


class SharedPoolRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = SharedClientRedisCacheClient

    @cached_property
    def _cache(self):
        key = (tuple(self._servers), repr(sorted(self._options.items())))
        with _clients_lock:
            if key not in _clients:
                _clients[key] = self._class(self._servers, **self._options)
            return _clients[key]
