"""Where a web process's CPU goes, from py-spy's collapsed stacks: framework, our Python, SQL, serialization.

Usage:
    py-spy record --subprocesses --nonblocking -r 100 -d 75 --format raw -o stacks.txt --pid <uvicorn master>
    python -m bench.profile_split stacks.txt [--requests N] [--json FILE]

Each sample is charged to the part of the stack that was running: the innermost frame that belongs to a known
layer (stdlib frames, such as `re` or `threading`, count for the layer that called them). With --requests (the
requests the server answered while sampling), the table also gives milliseconds of CPU per request, from the
sampling rate (-r). py-spy leaves out idle samples by default, so waits (for PostgreSQL, the network) are not
in these figures: they are CPU.
"""

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

# The innermost match wins; order only breaks ties within one frame's file path.
LAYERS = [
    ("SQL round trips (psycopg, pool)", re.compile(r"(^|/)(psycopg|psycopg_pool)/")),
    ("ORM: building queries, reading rows", re.compile(r"(^|/)django/db/")),
    (
        "serialization (DRF serializers, JSON)",
        re.compile(r"(^|/)(rest_framework/(serializers|fields|renderers|parsers|utils)[/.]|json/)"),
    ),
    ("DRF request path (views, auth, throttling)", re.compile(r"(^|/)rest_framework/")),
    ("Django request path (handlers, middleware, templates)", re.compile(r"(^|/)django/")),
    ("our Python (apps)", re.compile(r"(^|/)(bookings|cinemas|waiting|ticketing)/")),
    ("Channels and Redis", re.compile(r"(^|/)(channels|channels_redis|redis)/")),
    (
        "server and event loop (uvicorn, asyncio, asgiref)",
        re.compile(r"(^|/)(uvicorn|asyncio|asgiref|uvloop|httptools|h11)/"),
    ),
]
OTHER = "other (stdlib, threads)"
FRAME = re.compile(r"^(?P<function>.*) \((?P<path>[^():]+):(?P<line>\d+)\)$")


def layer_of(stack):
    """The layer a sample's stack (frames root first, ';'-separated) is charged to."""
    for frame in reversed(stack.split(";")):
        match = FRAME.match(frame)
        if not match:
            continue
        for name, pattern in LAYERS:
            if pattern.search(match["path"]):
                return name
    return OTHER


def split(lines):
    samples = Counter()
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if stack and count.isdigit():
            samples[layer_of(stack)] += int(count)
    return samples


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.profile_split", description=__doc__.splitlines()[0])
    parser.add_argument("stacks", type=Path, help="py-spy record --format raw output")
    parser.add_argument("--requests", type=int, help="requests the server answered while sampling")
    parser.add_argument("--rate", type=int, default=100, help="py-spy's sampling rate, samples per second (-r)")
    parser.add_argument("--json", type=Path, help="also write the table here")
    arguments = parser.parse_args(argv)
    samples = split(arguments.stacks.read_text().splitlines())
    total = sum(samples.values()) or 1
    rows = []
    for name in [name for name, _ in LAYERS] + [OTHER]:
        row = {"layer": name, "samples": samples[name], "share_percent": round(100 * samples[name] / total, 1)}
        if arguments.requests:
            row["cpu_ms_per_request"] = round(1000 * samples[name] / arguments.rate / arguments.requests, 2)
        rows.append(row)
    print("| layer | share of CPU | ms per request |\n| --- | --- | --- |")
    for row in rows:
        print(f"| {row['layer']} | {row['share_percent']} % | {row.get('cpu_ms_per_request', '')} |")
    cpu_ms = 1000 * total / arguments.rate / arguments.requests if arguments.requests else None
    print(f"| all | 100 % ({total} samples) | {round(cpu_ms, 2) if cpu_ms else ''} |")
    if arguments.json:
        arguments.json.write_text(json.dumps({"rows": rows, "samples": total, "cpu_ms_per_request": cpu_ms}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
