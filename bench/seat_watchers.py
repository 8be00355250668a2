"""Watchers of a show's live seat map (ws/shows/{id}/), as the seat page opens it: one WebSocket each, its
version greeting awaited, then every frame handed on as it is read.

Shared by bench/seat_push.py, bench/push_probe.py and the waiting surge (bench/waiting_surge/watchers.py).
"""

import asyncio
import json

import websockets


def seat_map_socket(base_url, show_id):
    """(URL, Origin) of the show's seat-map socket on the server at base_url (http://host:port): the Origin is
    what a page served from there sends, which the socket checks."""
    return base_url.replace("http://", "ws://", 1) + f"/ws/shows/{show_id}/", base_url


async def watch(url, origin, on_frame, *, greeted=None, served_by=None, open_timeout=60, compression="deflate"):
    """Watch the seat map at `url` until cancelled: on_frame(frame) for each frame after the greeting, as it is
    read (on_frame reads the clock its figures need). `greeted` is released once the greeting is in; served_by
    (a Counter) counts the process HAProxy names in the upgrade's X-Served-By header, when balanced."""
    async with websockets.connect(
        url, origin=origin, open_timeout=open_timeout, max_queue=None, compression=compression
    ) as socket:
        if served_by is not None:
            served_by[socket.response.headers.get("X-Served-By", "?")] += 1
        json.loads(await socket.recv())  # the version greeting
        if greeted is not None:
            greeted.release()
        async for frame in socket:
            on_frame(frame)


async def open_watchers(count, watch_one, *, timeout):
    """Start `count` watchers, watch_one(n, greeted) each, and return their tasks once every one has released
    `greeted` (its greeting is in), waiting at most `timeout` seconds for each."""
    greeted = asyncio.Semaphore(0)
    tasks = [asyncio.ensure_future(watch_one(n, greeted)) for n in range(count)]
    for _ in tasks:
        await asyncio.wait_for(greeted.acquire(), timeout=timeout)
    return tasks


async def cancel_all(tasks):
    """Cancel the tasks and wait until each has ended."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
