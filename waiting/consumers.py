"""A place in line, live: ws/waitlist/{waiter_id}/?session_id= (API.md "Live updates").

On connect the client gets the waiter's body (the same as GET /waitlist/{id}); then the body again each time
its version rises (its status, or its position in line, changed). waiting.services sends "line.moved" to
group waiting-line-{show_id} after commit for every change of a place in line (naming the waiters whose
status changed); the socket's process listens to that group once for all its sockets and long polls of the
show (ticketing.fanout), and the socket re-reads on each, pushing only a real change. Pushes are at most once:
a client that reconnects gets the current body on connect.
"""

import asyncio
import logging
import re
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from ticketing import fanout
from ticketing.parameters import SESSION_ID_PATTERN
from waiting.models import Waiter
from waiting.serializers import waiter_body
from waiting.services import line_group, read_waiter

logger = logging.getLogger(__name__)


class WaiterConsumer(AsyncJsonWebsocketConsumer):
    """Read-only: one waiter, for the session that owns it (anyone else is refused with 4404).

    Client frames are ignored unread.
    """

    # No channel of its own: its process listens to the show's line once for all its sockets (ticketing.fanout).
    channel_layer_alias = None

    async def connect(self):
        self.waiter_id = self.scope["url_route"]["kwargs"]["waiter_id"]
        self.group = None
        self.nudged = asyncio.Event()
        self.following = None
        session_id = parse_qs(self.scope["query_string"].decode("latin-1")).get("session_id", [""])[-1]
        show_id = await self._show_of(session_id)
        if show_id is None:
            await self.close(code=4404)
            return
        # Listen first and read second, so a change committed in between is pushed, not missed.
        await fanout.listen(line_group(show_id), self)
        self.group = line_group(show_id)
        await self.accept()
        body = await self._body()
        self.version = body["version"]
        await self.send_json(body)
        self.following = asyncio.get_running_loop().create_task(self._follow())

    async def disconnect(self, code):
        if self.following is not None:
            self.following.cancel()
        if self.group is not None:
            group, self.group = self.group, None
            await fanout.stop_listening(group, self)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        pass  # nothing a client says changes anything; not even decoded, so a malformed frame can't crash it

    def heard(self, message):
        self.nudged.set()  # any move of the line may change this waiter's position

    def missed(self):
        self.nudged.set()  # the process may have missed a change: read again

    async def _follow(self):
        try:
            while True:
                await self.nudged.wait()
                self.nudged.clear()  # before reading: a nudge during the read reads again
                body = await self._body()
                if body["version"] != self.version:
                    self.version = body["version"]
                    await self.send_json(body)
        except Exception:  # the client went away mid-send, or the waiter was deleted: the socket ends
            logger.debug("Stopped following waiter %s", self.waiter_id, exc_info=True)
            await self.close()

    @database_sync_to_async
    def _show_of(self, session_id):
        if not re.fullmatch(SESSION_ID_PATTERN, session_id):
            return None
        return Waiter.objects.filter(pk=self.waiter_id, session_id=session_id).values_list("show_id", flat=True).first()

    @database_sync_to_async
    def _body(self):
        return waiter_body(read_waiter(self.waiter_id))
