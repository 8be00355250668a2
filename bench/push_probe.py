"""Where a seat push waits: one seat-map socket and one channel-layer listener, in a process of their own.

Usage (while a server runs, e.g. during the waiting surge's serving, python -m bench.waiting_surge):
    python -m bench.push_probe --port PORT --show-id ID [--seconds 150] [--redis-url redis://127.0.0.1:6379/5]

It joins the show's group on the channel layer (bench/channel_listener.py, as the waiting surge's listener
does) and watches the show's seat map over one WebSocket (bench/seat_watchers.py), uncompressed. For every
message, from when the channel layer had it to when the socket carried it: the web process's share of a
push's latency, with no load generator between (the surge's 1,000 watchers share one busy process). A message
whose version no frame carries was merged into a later frame by the web process
(bookings.consumers.SeatMapWatchers: it was behind); the report counts them.
"""

import argparse
import asyncio
import json
import statistics
import time

from bench.channel_listener import hear, joined, seats_group
from bench.seat_watchers import seat_map_socket, watch


async def probe(options):
    heard, framed = {}, {}

    async def listen():
        layer, channel = await joined(options.redis_url, seats_group(options.show_id))
        await hear(layer, channel, lambda message, now: heard.setdefault(message["message"]["version"], now))

    def read(frame):
        framed.setdefault(json.loads(frame)["version"], time.time())

    async def watch_uncompressed():
        url, origin = seat_map_socket(f"http://127.0.0.1:{options.port}", options.show_id)
        await watch(url, origin, read, open_timeout=10, compression=None)  # websockets' default open_timeout

    tasks = [asyncio.ensure_future(listen()), asyncio.ensure_future(watch_uncompressed())]
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
