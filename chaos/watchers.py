"""The seat map's WebSockets for F3: N watchers that reconnect as the page does and count what they read, and
whether a push after the fault reaches them.
"""

import asyncio
import json
import random
import time
from collections import Counter

import httpx
import websockets

from bench.show import BENCH_KEY
from chaos.show import hold_request


class Watchers:
    """N seat-map WebSockets that reconnect as the page does (0.5-5 s, jittered) and count what they read."""

    def __init__(self, url, show_id, count):
        self.ws_url = url.replace("http://", "ws://") + f"/ws/shows/{show_id}/"
        self.origin = url
        self.count = count
        self.connected = set()
        self.reconnects = 0
        self.messages = 0
        self.seen = [set() for _ in range(count)]
        self.tasks = []
        self.rng = random.Random(3)

    async def connect_all(self):
        self.tasks = [asyncio.create_task(self.watch(number)) for number in range(self.count)]
        await self.wait_until_connected(share=1.0, seconds=60)

    async def watch(self, number):
        failures = 0
        while True:
            try:
                async with websockets.connect(self.ws_url, origin=self.origin, open_timeout=10) as socket:
                    self.connected.add(number)
                    failures = 0
                    async for message in socket:
                        self.messages += 1
                        for change in json.loads(message).get("changes", []):
                            self.seen[number].add(change["id"])
            except (TimeoutError, OSError, websockets.WebSocketException):
                pass
            self.connected.discard(number)
            self.reconnects += 1
            failures += 1
            ceiling = min(5.0, 0.5 * 2**failures)
            await asyncio.sleep(ceiling / 2 + self.rng.random() * ceiling / 2)

    async def wait_until_connected(self, *, share, seconds):
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            if len(self.connected) >= share * self.count:
                return round(time.monotonic() - started, 2)
            await asyncio.sleep(0.1)
        return None

    async def push_reaches(self, url, show_id, seats, seconds=10):
        """Hold two fresh seats; the share of sockets that read the push naming them within `seconds`."""
        async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": BENCH_KEY}, timeout=30) as client:
            for start in range(len(seats) - 2, 0, -2):
                body = hold_request(f"probe-{start}", show_id, seats[start : start + 2])
                response = await client.post("/api/v1/reservations", json=body)
                if response.status_code == 201:
                    break
            else:
                return {"received_share": 0.0, "note": "no seats left to probe with"}
        probe = set(seats[start : start + 2])
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            received = sum(probe <= seen for seen in self.seen)
            if received >= self.count:
                break
            await asyncio.sleep(0.1)
        received = sum(probe <= seen for seen in self.seen)
        broken = Counter(repr(task.exception())[:200] for task in self.tasks if task.done() and task.exception())
        return {
            "received_share": round(received / self.count, 4),
            "within_s": seconds,
            "probe": [response.status_code, sorted(probe)],
            "watchers_broken": dict(broken),
            "seen_sizes": sorted({len(seen) for seen in self.seen})[:5],
        }

    async def close(self):
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
