"""Pushes to channel-layer groups from sync code: the services' after-commit notices to WebSockets and polls."""

import asyncio
import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

# Sends in flight at once: inside the channel layer's Redis connection pool, which refuses rather than waits.
CONCURRENT_SENDS = 16


def send_to_groups(messages):
    """Send each `(group, message)` through the channel layer, all in one event loop (one set of connections).

    Best effort: the database holds the truth and every listener re-reads it on a timer or on reconnect, so
    a failed send is logged, never raised into the committed transaction's caller.
    """
    if not messages:
        return
    try:
        failures = async_to_sync(_send_all)(messages)
    except Exception:
        logger.warning("Could not push %d message(s)", len(messages), exc_info=True)
        return
    for (group, _), failure in zip(messages, failures, strict=True):
        if failure is not None:
            logger.warning("Could not push to %s", group, exc_info=failure)


async def _send_all(messages):
    layer = get_channel_layer()
    sending = asyncio.Semaphore(CONCURRENT_SENDS)

    async def send(group, message):
        async with sending:
            await layer.group_send(group, message)

    results = await asyncio.gather(*(send(group, message) for group, message in messages), return_exceptions=True)
    return [result if isinstance(result, Exception) else None for result in results]
