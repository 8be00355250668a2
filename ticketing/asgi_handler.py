"""Django's ASGI handler, running each request's middleware and view in ONE call on the request's thread.

Every HTTP view of the site is synchronous (the long polls are held outside Django, in waiting.longpoll). Stock
ASGIHandler loads the middleware in async mode: then each MiddlewareMixin hook (process_request,
process_response...), WhiteNoise (sync only) and the view itself hop between the event loop and the request's
thread, about a dozen hand-offs a request. Here the whole chain runs synchronously in one sync_to_async call,
on the same per-request thread Django would use (thread-sensitive), so connections, signals and
`response.close()` behave exactly as in stock Django. Async views would still work: Django's sync handler
runs them with async_to_sync.
"""

from asgiref.sync import sync_to_async
from django.core.handlers import base
from django.core.handlers.asgi import ASGIHandler
from django.http import FileResponse


class SyncChainASGIHandler(ASGIHandler):
    def __init__(self):
        base.BaseHandler.__init__(self)  # not ASGIHandler.__init__: it loads the middleware in async mode
        self.load_middleware(is_async=False)

    async def run_get_response(self, request):
        response = await sync_to_async(self.get_response, thread_sensitive=True)(request)
        response._handler_class = self.__class__
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size
        return response
