"""Django's Redis cache with one connection pool per process.

Under ASGI, Django makes a cache object per request context (its cache handler is context-local), and each
RedisCache object builds its own redis-py connection pool: every request opened, used once and dropped a TCP
connection to Redis (the API quota's counter is read on every call). redis-py's pools are thread-safe, so one
client per server list and options serves the whole process.
"""

import threading

from django.core.cache.backends.redis import RedisCache
from django.utils.functional import cached_property

_clients = {}
_clients_lock = threading.Lock()


class SharedPoolRedisCache(RedisCache):
    @cached_property
    def _cache(self):
        key = (tuple(self._servers), repr(sorted(self._options.items())))
        with _clients_lock:
            if key not in _clients:
                _clients[key] = self._class(self._servers, **self._options)
            return _clients[key]
