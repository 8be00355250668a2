"""Hearing a show's after-commit notices on the channel layer, as the web processes hear them.

The moment a notice arrives here is the moment it was sent (after its commit): where the latency of a push or
of a long poll's answer starts. Shared by the waiting surge's listener process (bench/waiting_surge/listener.py)
and bench/push_probe.py.
"""

import asyncio
import time

from channels_redis.core import RedisChannelLayer

# A listener's own lists may grow long: what bounds them is the senders' capacity, not this.
CAPACITY = 100_000


def seats_group(show_id):
    """The group a show's seat changes go out to (bookings.consumers.show_group)."""
    return f"show-{show_id}"


def line_group(show_id):
    """The group a show's waiting line moves go out to (waiting.services.line_group)."""
    return f"waiting-line-{show_id}"


async def joined(redis_url, group):
    """(layer, channel): a channel of a channel layer of its own, added to `group`."""
    layer = RedisChannelLayer(hosts=[{"address": redis_url, "socket_timeout": 10}], capacity=CAPACITY)
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    return layer, channel


async def hear(layer, channel, on_message):
    """on_message(message, time.time() it was heard) for every message on `channel`, until cancelled."""
    while True:
        try:
            message = await layer.receive(channel)
        except asyncio.CancelledError:
            raise
        except Exception:  # an idle blocking read cut short by the socket timeout: ask again
            continue
        on_message(message, time.time())
