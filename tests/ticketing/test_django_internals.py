"""The Django internals ticketing/asgi's pieces rely on are still what they were written against.

Each piece copies or bends a private part of Django (their docstrings say which, and the upstream ticket that
would let the piece go). A Django upgrade that changes one of those parts fails here, by name, before it can
change what the site does in a way no other test sees (a response never closed, a pool per request again).
Fix the piece, or delete it if the ticket it stands in for has landed, then update the text below.
"""

import inspect
import textwrap

import django
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from django.core.handlers.asgi import ASGIHandler
from django.utils.functional import cached_property

from ticketing.asgi.handler import SyncChainASGIHandler
from ticketing.asgi.redis_cache import SharedClientRedisCacheClient, SharedPoolRedisCache

# ticketing/asgi/handler.py's run_get_response is this, but for calling the sync chain in one thread call.
STOCK_RUN_GET_RESPONSE = '''
async def run_get_response(self, request):
    """Get async response."""
    # Use the async mode of BaseHandler.
    response = await self.get_response_async(request)
    response._handler_class = self.__class__
    # Increase chunk size on file responses (ASGI servers handles low-level
    # chunking).
    if isinstance(response, FileResponse):
        response.block_size = self.chunk_size
    return response
'''


def source(function):
    return textwrap.dedent(inspect.getsource(function)).strip()


def test_django_is_the_version_the_request_path_was_last_checked_against():
    assert django.VERSION[:2] == (6, 0), (
        "Django was upgraded: read the docstrings of ticketing/asgi/ (Django tickets #37177, #35651), see whether "
        "what they stand in for landed, and update this test"
    )


class TestTheHandler:
    def test_stock_asgi_handler_still_loads_the_middleware_in_async_mode_which_is_why_ours_skips_its_init(self):
        assert "self.load_middleware(is_async=True)" in source(ASGIHandler.__init__), (
            "ASGIHandler.__init__ changed: SyncChainASGIHandler calls BaseHandler.__init__ instead of it"
        )

    def test_stock_asgi_handler_still_answers_through_run_get_response_which_ours_overrides(self):
        assert "await self.run_get_response(request)" in inspect.getsource(ASGIHandler), (
            "ASGIHandler no longer calls run_get_response: SyncChainASGIHandler's one thread call is bypassed"
        )
        assert SyncChainASGIHandler.run_get_response is not ASGIHandler.run_get_response

    def test_stock_run_get_response_is_the_one_ours_copies(self):
        assert source(ASGIHandler.run_get_response) == STOCK_RUN_GET_RESPONSE.strip(), (
            "ASGIHandler.run_get_response changed: bring ticketing/asgi/handler.py's copy up to date"
        )


class TestTheRedisCache:
    def test_the_stock_backend_still_keeps_what_ours_reads_and_builds_its_client_lazily(self):
        cache = RedisCache("redis://127.0.0.1:6379/0;redis://127.0.0.1:6379/1", {"OPTIONS": {"db": 0}})
        assert cache._servers == ["redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/1"]
        assert cache._options == {"db": 0}
        assert cache._class is RedisCacheClient
        assert isinstance(RedisCache.__dict__["_cache"], cached_property)
        assert issubclass(SharedPoolRedisCache, RedisCache)

    def test_the_stock_client_still_picks_its_pool_by_index_for_a_write_or_a_read(self):
        client = RedisCacheClient(["redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/1"])
        assert client._get_connection_pool_index(True) == 0
        assert client._get_connection_pool_index(False) == 1
        assert issubclass(SharedClientRedisCacheClient, RedisCacheClient)

    def test_the_stock_counter_still_costs_two_round_trips_which_is_why_ours_is_one_script(self):
        assert "client.exists(key)" in source(RedisCacheClient.incr), (
            "RedisCacheClient.incr changed: if it is one round trip now, SharedClientRedisCacheClient.incr can go"
        )
