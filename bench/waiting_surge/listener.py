"""The surge's listener process: it hears the after-commit notices the server hears, as they go out
(bench/channel_listener.py), and the load generator's side of it (ChannelListener).
"""

import asyncio
import json
import subprocess
import sys

from bench.channel_listener import hear, joined, line_group, seats_group
from bench.harness.processes import ROOT


def listen(redis_url, show_id):
    """The listener process (--listener): hears the after-commit notices the server hears, as they go out.

    The moment a notice arrives here is when it was sent (after the commit): the start of every latency this
    script gives for the server's answers and pushes. A process of its own, so that the load generator's busy
    event loop (and its GIL) can't delay it. Prints that it listens, then, when its stdin closes, what it heard
    (one JSON line each time). A served waiter's notice is the first "line.moved" naming it in `changed`.
    """
    heard = {"served_notices": {}, "line_moves": [], "pushes": {}}

    def on_message(message, now):
        kind = message.get("type")
        if kind == "line.moved":
            heard["line_moves"].append(now)
            for waiter_id in message.get("changed", []):  # a waiter is named first when it is served
                heard["served_notices"].setdefault(waiter_id, now)
        elif kind == "seats.changed":
            heard["pushes"].setdefault(str(message["message"]["version"]), now)

    async def main():
        channels = [await joined(redis_url, seats_group(show_id)), await joined(redis_url, line_group(show_id))]
        readers = [asyncio.ensure_future(hear(layer, channel, on_message)) for layer, channel in channels]
        print(json.dumps({"listening": True}), flush=True)
        await asyncio.to_thread(sys.stdin.read)  # until the load generator is done
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        print(json.dumps(heard), flush=True)

    asyncio.run(main())


class ChannelListener:
    """The load generator's side of the listener process: starts it, collects what it heard."""

    def __init__(self, redis_url, show_id):
        self.redis_url = redis_url
        # As a module (-m) from the tree's root, so that the process imports `bench` as this one does.
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.waiting_surge",
                "--listener",
                "--redis-url",
                redis_url,
                "--show-id",
                str(show_id),
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert json.loads(self.process.stdout.readline())["listening"]
        self.served_notices, self.line_moves, self.pushes = {}, [], {}

    def stop(self):
        """What the listener heard, once it has stopped."""
        self.process.stdin.close()
        heard = json.loads(self.process.stdout.readline())
        self.process.wait(timeout=30)
        self.served_notices, self.line_moves = heard["served_notices"], heard["line_moves"]
        self.pushes = {int(version): when for version, when in heard["pushes"].items()}
