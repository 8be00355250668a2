"""Where a seat push waits: one seat-map socket and one channel-layer listener, in a process of their own.

Usage (while a server runs, e.g. during bench/waiting_surge.py's serving):
    python -m bench.push_probe --port PORT --show-id ID [--seconds 150] [--redis-url redis://127.0.0.1:6379/5]

It joins the show's group on the channel layer (as bench/waiting_surge.py's listener does) and watches the
show's seat map over one WebSocket, uncompressed. For every message, from when the channel layer had it to
when the socket carried it: the web process's share of a push's latency, with no load generator between (the
surge's 1,000 watchers share one busy process). A message whose version no frame carries was merged into a
later frame by the web process (bookings.consumers.SeatMapWatchers: it was behind); the report counts them.
"""

import argparse
import asyncio
import json
import statistics
import time

import websockets
from channels_redis.core import RedisChannelLayer


async def probe(options):
    heard, framed = {}, {}

    async def listen():
        layer = RedisChannelLayer(hosts=[{"address": options.redis_url, "socket_timeout": 10}], capacity=100_000)
        channel = await layer.new_channel()
        await layer.group_add(f"show-{options.show_id}", channel)  # bookings.consumers.show_group
        while True:
            try:
                message = await layer.receive(channel)
            except Exception:  # an idle blocking read cut short by the socket timeout: ask again
                continue
            heard.setdefault(message["message"]["version"], time.time())

    async def watch():
        origin = f"http://127.0.0.1:{options.port}"
        url = f"ws://127.0.0.1:{options.port}/ws/shows/{options.show_id}/"
        async with websockets.connect(url, origin=origin, max_queue=None, compression=None) as socket:
            await socket.recv()  # the version greeting
            async for frame in socket:
                framed.setdefault(json.loads(frame)["version"], time.time())

    tasks = [asyncio.ensure_future(listen()), asyncio.ensure_future(watch())]
    await asyncio.sleep(options.seconds)
    for task in tasks:
        task.cancel()
    latencies = sorted(framed[version] - at for version, at in heard.items() if version in framed)
    return {
        "messages_heard": len(heard),
        "merged_into_a_later_frame": sum(version not in framed for version in heard),
        "latency_ms": {
            "n": len(latencies),
            "p50": round(1000 * statistics.median(latencies), 1) if latencies else None,
            "p95": round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 1) if latencies else None,
            "max": round(1000 * latencies[-1], 1) if latencies else None,
        },
    }


def main():
    parser = argparse.ArgumentParser(
        prog="python -m bench.push_probe", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--show-id", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=150)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/5")
    print(json.dumps(asyncio.run(probe(parser.parse_args())), indent=2))


if __name__ == "__main__":
    main()
