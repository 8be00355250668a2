"""A place in line, live: ws/waitlist/{waiter_id}/?session_id= (API.md "Live updates").

On connect the client gets the waiter's body (the same as GET /waitlist/{id}); then the body again each time
its version rises (its status, or its position in line, changed). waiting.services sends "waiter.changed"
to group waiter-{id} and "line.moved" to group waiting-line-{show_id} after commit; the consumer joins both
and re-reads on each, pushing only a real change. Pushes are at most once: a client that reconnects gets
the current body on connect.
"""

import re
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from bookings.serializers import SESSION_ID_PATTERN
from waiting.models import Waiter
from waiting.serializers import waiter_body
from waiting.services import line_group, waiter_group


class WaiterConsumer(AsyncJsonWebsocketConsumer):
    """Read-only: one waiter, for the session that owns it (anyone else is refused with 4404).

    Client frames are ignored unread.
    """

    async def connect(self):
        self.waiter_id = self.scope["url_route"]["kwargs"]["waiter_id"]
        self.watched = []
        session_id = parse_qs(self.scope["query_string"].decode("latin-1")).get("session_id", [""])[-1]
        show_id = await self._show_of(session_id)
        if show_id is None:
            await self.close(code=4404)
            return
        # Join first and read second, so a change committed in between is pushed, not missed.
        self.watched = [waiter_group(self.waiter_id), line_group(show_id)]
        for group in self.watched:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        body = await self._body()
        self.version = body["version"]
        await self.send_json(body)

    async def disconnect(self, code):
        for group in self.watched:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        pass  # nothing a client says changes anything; not even decoded, so a malformed frame can't crash it

    async def waiter_changed(self, event):
        await self._push_if_changed()

    async def line_moved(self, event):
        await self._push_if_changed()

    async def _push_if_changed(self):
        body = await self._body()
        if body["version"] != self.version:
            self.version = body["version"]
            await self.send_json(body)

    @database_sync_to_async
    def _show_of(self, session_id):
        if not re.fullmatch(SESSION_ID_PATTERN, session_id):
            return None
        return Waiter.objects.filter(pk=self.waiter_id, session_id=session_id).values_list("show_id", flat=True).first()

    @database_sync_to_async
    def _body(self):
        return waiter_body(Waiter.objects.get(pk=self.waiter_id))
