"""The site's ASGI stack, outside in: the balancer's liveness check, the lean path's front (ticketing.lean), the
waiting line's long polls (waiting.longpoll), then Django behind its admission queue (ticketing.asgi.handler);
WebSockets go to Channels' router behind the origin check (ticketing.asgi.origins). Imported through
ticketing.asgi, which sets Django up first."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ticketing.settings")
django.setup(set_prefix=False)

from ticketing.asgi.handler import SyncChainASGIHandler  # noqa: E402  (needs Django set up first)
from ticketing.asgi.liveness import AnswerLiveness  # noqa: E402

django_asgi_app = SyncChainASGIHandler()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402  (needs Django set up first)

from ticketing.asgi.origins import SiteOriginOrNone  # noqa: E402
from ticketing.lean import LeanFront  # noqa: E402
from ticketing.routing import websocket_urlpatterns  # noqa: E402
from waiting.longpoll import HoldLongPolls  # noqa: E402

application = ProtocolTypeRouter(
    {
        # The calls an on-sale is made of (holds, changes, cancels) are answered on the event loop, and long
        # polls of the waiting line are held outside Django, so neither keeps a thread; the balancer's
        # liveness checks are answered before any request queue.
        "http": AnswerLiveness(LeanFront(HoldLongPolls(django_asgi_app))),
        # A browser's socket only from the site's own pages; a program's (no Origin) from anywhere.
        "websocket": SiteOriginOrNone(URLRouter(websocket_urlpatterns)),
    }
)
