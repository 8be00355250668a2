"""Who may open the site's WebSockets: a browser on one of the site's own hosts, or a program (a partner's
server, an app) that sends no Origin at all (API.md, "WebSockets accept a client that sends no Origin").

Channels' AllowedHostsOriginValidator refuses a handshake without an Origin header. Only browsers send one
(RFC 6455, 1.3 and 10.2: "sent by browser clients"), and they always do, naming the page's site, which a page
can't forge: so refusing its absence shuts out partners' programs and protects nothing, while checking its
value is what keeps another site's page from opening the socket in its visitor's name (Jupyter made the same
call: jupyter/notebook#1903). Nor does any socket trust a cookie (the stack has no session or auth middleware;
the waiting line's socket asks for the waiter's session_id), so a connection without an Origin gets the public
seat map, or what its own session id shows, and nothing more.

Built on Channels' public OriginValidator (its matching of origins against hosts is Channels' own).
"""

from channels.security.websocket import OriginValidator
from django.conf import settings

# As Channels' AllowedHostsOriginValidator: with DEBUG and no ALLOWED_HOSTS, the local names.
DEBUG_HOSTS = ["localhost", "127.0.0.1", "[::1]"]


class SiteOriginOrNone(OriginValidator):
    """A handshake without an Origin header goes through; one with an Origin passes only if it names one of
    ALLOWED_HOSTS. Any Origin present is checked: "null" (a sandboxed page, a file) or a malformed one is
    refused (403), as is another site's."""

    def __init__(self, application):
        hosts = settings.ALLOWED_HOSTS or (DEBUG_HOSTS if settings.DEBUG else [])
        super().__init__(application, hosts)

    async def __call__(self, scope, receive, send):
        if not any(name == b"origin" for name, _ in scope.get("headers", [])):
            return await self.application(scope, receive, send)
        return await super().__call__(scope, receive, send)
