"""The room's visitors as the load generator plays them: many joins at once (join_all), and the visitors near the
head once the sale opens (drive_visitor): polling their standing, holding with their pass, paying."""

import asyncio
import contextlib
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx

from bench.harness.clients import bench_clients, timed
from bench.moves import seat_ids
from bench.sell_out_moves import CARD
from bench.show import BENCH_KEY

# How often a driven visitor asks for its standing: after its estimated wait, halved, within these bounds.
POLL_MIN_SECONDS = 1.0
POLL_MAX_SECONDS = 30.0
PAY_ATTEMPTS = 5  # a payment still running under its key (409) or the provider's time-out (504): again, same key
# A request safe to send again is sent again this many times at most (sent_again), backing off up to BACKOFF_MAX.
SEND_ATTEMPTS = 10
BACKOFF_MAX_SECONDS = 8.0
# The clients' time-out for one request (the load generator's; a browser waits longer than that).
CLIENT_TIMEOUT_SECONDS = 60


async def sent_again(send, on_retry):
    """(response, ms) of `send()`, sent again as a page would after the load generator's own failures, which are
    not the room's findings: after the Retry-After of a web process's 503 (it sheds load); a second or more after
    HAProxy's own 502/503/504 (no web process in rotation: an HTML page, no X-Served-By, no Retry-After); after a
    time-out or a cut connection. Only for requests safe to repeat: polls, joins (the same session answers its
    place), holds and payments under an Idempotency-Key. on_retry(reason) counts each; the last try's transport
    error is raised. ms: the last try's."""
    for attempt in range(SEND_ATTEMPTS):
        backoff = min(BACKOFF_MAX_SECONDS, 2**attempt) * random.uniform(0.5, 1.0)
        last = attempt == SEND_ATTEMPTS - 1
        try:
            response, ms = await timed(send())
        except httpx.TransportError as error:
            if last:
                raise
            on_retry("timed out" if "Timeout" in str(error) else "connection error")
            await asyncio.sleep(backoff)
            continue
        if last or response.status_code not in (502, 503, 504):
            return response, ms
        if "Retry-After" in response.headers:
            on_retry(f"{response.status_code} Retry-After")
            await asyncio.sleep(float(response.headers["Retry-After"]))
        elif "X-Served-By" not in response.headers and "json" not in response.headers.get("Content-Type", ""):
            on_retry(f"{response.status_code} from HAProxy")
            await asyncio.sleep(backoff)
        else:
            return response, ms
    raise AssertionError("unreachable")


@dataclass
class Joins:
    """What the joins brought back: visitor ids by session, each join's end (monotonic s) and latency (ms)."""

    visitors: dict = field(default_factory=dict)
    ends: list = field(default_factory=list)
    latencies: list = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    failures: list = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0


async def join_all(base_url, on_sale_id, sessions, *, concurrency, http_client):
    """Every session joins the room, `concurrency` at a time, each once (503s sent again after Retry-After)."""
    joins = Joins()
    path = f"/api/v1/on-sales/{on_sale_id}/room"
    todo = iter(sessions)
    async with bench_clients(
        base_url,
        concurrency,
        api_key=BENCH_KEY,
        keep_cookies=False,
        http_client=http_client,
        timeout=CLIENT_TIMEOUT_SECONDS,
    ) as clients:
        await warm_up(clients, path)

        async def joiner(number):
            client = clients[number % len(clients)]
            for session in todo:
                retried = []

                def again(reason, retried=retried):
                    retried.append(reason)
                    joins.statuses[f"POST room sent again: {reason}"] += 1

                try:
                    response, ms = await sent_again(lambda s=session: client.post(path, json={"session_id": s}), again)
                except httpx.TransportError as error:
                    joins.failures.append(f"join {session}: {error}")
                    continue
                joins.statuses[f"POST room {response.status_code}"] += 1
                # 200 after a retry: the first try joined, its answer was lost on the way
                if response.status_code != 201 and not (response.status_code == 200 and retried):
                    joins.failures.append(f"join {session} -> {response.status_code}: {response.text[:200]}")
                    continue
                joins.visitors[session] = response.json()["visitor_id"]
                joins.ends.append(time.monotonic())
                joins.latencies.append(ms)

        joins.started = time.monotonic()
        await asyncio.gather(*(joiner(number) for number in range(concurrency)))
        joins.finished = time.monotonic()
    return joins


async def warm_up(clients, path, seconds=60):
    """Wait until the server answers the room's page, then warm each client's connections on it."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if (await clients[0].get(path)).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"GET {path} did not answer 200 within {seconds} s")
        await asyncio.sleep(0.2)
    await asyncio.gather(*(client.get(path) for client in clients for _ in range(4)))


@dataclass
class Sale:
    """The opening as the driven visitors saw it."""

    client: list  # bench_clients' list
    show_id: int
    movie_id: int
    rng: random.Random
    statuses: Counter = field(default_factory=Counter)
    error_codes: Counter = field(default_factory=Counter)
    failures: list = field(default_factory=list)
    outcomes: dict = field(default_factory=dict)  # visitor id -> "booked" | "show_full" | ...
    hold_sent: list = field(default_factory=list)  # epoch seconds each hold request was sent
    hold_granted: list = field(default_factory=list)  # epoch seconds each 201 came back
    poll_sent: list = field(default_factory=list)
    told_admitted: dict = field(default_factory=dict)  # visitor id -> epoch seconds its poll said Admitted
    latencies: dict = field(default_factory=dict)  # "GET room 200" etc. -> [ms]
    booked_seats: dict = field(default_factory=dict)  # reservation id -> seat ids
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    number: int = 0

    def next_client(self):
        self.number += 1
        return self.client[self.number % len(self.client)]

    def record(self, call, response, ms):
        status = f"{call} {response.status_code}"
        self.statuses[status] += 1
        self.latencies.setdefault(status, []).append(ms)
        if response.status_code >= 400:
            try:
                code = response.json().get("error", {}).get("code", "?")
            except ValueError:
                code = "not JSON"
            self.error_codes[f"{status} {code}"] += 1
            return code
        return None

    async def send(self, call, method, path, **options):
        """(response, ms), or None after a connection error (recorded as a failure)."""
        client = self.next_client()
        try:
            response, ms = await sent_again(
                lambda: client.request(method, path, **options),
                lambda reason: self.statuses.update([f"{call} sent again: {reason}"]),
            )
        except httpx.TransportError as error:
            self.failures.append(f"{call} {path}: {error}")
            return None
        self.record(call, response, ms)
        return response, ms


async def drive_visitor(sale, visitor_id, session_id, *, first_poll_within):
    """One visitor near the head: poll until Admitted, then hold 1-4 seats best available with the pass and pay.
    Its outcome goes to sale.outcomes[visitor_id]."""
    wanted = sale.rng.randint(1, 4)
    await asyncio.sleep(sale.rng.uniform(0, first_poll_within))
    path = f"/api/v1/room/{visitor_id}"
    while not sale.stop.is_set():
        sale.poll_sent.append(time.time())
        sent = await sale.send("GET room", "GET", path, params={"session_id": session_id})
        if sent is None:
            sale.outcomes[visitor_id] = "failed"
            return
        response, _ = sent
        if response.status_code != 200:
            sale.failures.append(f"GET room {visitor_id} -> {response.status_code}: {response.text[:200]}")
            sale.outcomes[visitor_id] = "failed"
            return
        standing = response.json()
        if standing["status"] == "Admitted":
            sale.told_admitted[visitor_id] = time.time()
            sale.outcomes[visitor_id] = await hold_and_pay(sale, session_id, standing, wanted)
            return
        if standing["status"] != "Waiting":
            sale.failures.append(f"GET room {visitor_id}: {standing['status']} before it was admitted")
            sale.outcomes[visitor_id] = f"ended {standing['status']}"
            return
        wait = standing.get("estimated_wait_seconds") or 0
        pause = min(POLL_MAX_SECONDS, max(POLL_MIN_SECONDS, wait / 2))
        with contextlib.suppress(TimeoutError):  # the pause ran out: poll again
            await asyncio.wait_for(sale.stop.wait(), pause * sale.rng.uniform(0.8, 1.2))
    sale.outcomes.setdefault(visitor_id, "not admitted before the bench stopped")


async def hold_and_pay(sale, session_id, standing, wanted):
    """The admitted visitor's hold with its pass (again after each `retry` while the pass lasts), then its
    payment: "booked", "show_full", or what went wrong."""
    body = {
        "session_id": session_id,
        "show_id": sale.show_id,
        "movie_id": sale.movie_id,
        "best_available": {"count": wanted},
    }
    pass_ends = time.time() + 170  # pass_seconds less a margin; the answer's pass_expires_at is the truth
    # A key a try: a try sent again after a time-out never holds twice; a final refusal (seats_unavailable) is
    # kept under its key, so the next try takes another
    key = key_of(sale)
    while time.time() < pass_ends and not sale.stop.is_set():
        sale.hold_sent.append(time.time())
        headers = {"Admission-Pass": standing["admission_pass"], "Idempotency-Key": key}
        sent = await sale.send("POST hold", "POST", "/api/v1/reservations", json=body, headers=headers)
        if sent is None:
            return "failed"
        response, _ = sent
        if response.status_code == 201:
            sale.hold_granted.append(time.time())
            return await pay(sale, session_id, response.json())
        code = response.json().get("error", {}).get("code") if response.status_code == 409 else None
        if code == "show_full":
            return "show_full"
        if code == "seats_unavailable":  # best available lost the seats it picked to another hold: ask again
            key = key_of(sale)
            continue
        if code == "idempotency_in_flight":  # the try that timed out still runs: its answer comes with its key
            sale.hold_sent.pop()
            await asyncio.sleep(float(response.headers.get("Retry-After", 1)))
            continue
        if code != "retry":
            sale.failures.append(f"POST hold {session_id} -> {response.status_code}: {response.text[:200]}")
            return f"hold {response.status_code} {code}"
        key = key_of(sale)  # not kept under the key anyway (Retry-After), but a new try
        await asyncio.sleep(float(response.headers.get("Retry-After", 5)))
    return "pass ran out retrying"


def key_of(sale):
    return str(uuid.UUID(int=sale.rng.getrandbits(128), version=4))


async def pay(sale, session_id, reservation):
    reservation_id = reservation["reservation_id"]
    path = f"/api/v1/reservations/{reservation_id}/pay"
    headers = {"Idempotency-Key": key_of(sale)}
    body = {"session_id": session_id, "payment": CARD}
    last = "no answer"
    for _ in range(PAY_ATTEMPTS):
        sent = await sale.send("POST pay", "POST", path, json=body, headers=headers)
        if sent is None:
            continue  # sent again with its key: a replay never charges twice (API.md)
        response, _ = sent
        if response.status_code == 200:
            sale.booked_seats[reservation_id] = seat_ids(response.json())
            return "booked"
        last = f"{response.status_code}: {response.text[:200]}"
        if response.status_code not in (409, 504):  # 409 idempotency_in_flight, 504 the provider's timeout
            break
        await asyncio.sleep(1)
    sale.failures.append(f"pay {reservation_id} -> {last}")
    return "payment failed"


async def join_late(base_url, on_sale_id, sessions, *, http_client):
    """Visitors who come after the opening, one at a time (so that the order they joined in is known):
    [(session, visitor id, place)]."""
    joined = []
    async with bench_clients(
        base_url, 1, api_key=BENCH_KEY, keep_cookies=False, http_client=http_client, timeout=CLIENT_TIMEOUT_SECONDS
    ) as clients:
        for session in sessions:
            retried = []
            response, _ = await sent_again(
                lambda s=session: clients[0].post(f"/api/v1/on-sales/{on_sale_id}/room", json={"session_id": s}),
                retried.append,
            )
            if response.status_code != 201 and not (response.status_code == 200 and retried):
                raise RuntimeError(f"late join {session} -> {response.status_code}: {response.text[:300]}")
            body = response.json()
            joined.append((session, body["visitor_id"], body["place"]))
    return joined
