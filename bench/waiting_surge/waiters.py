"""The waiters and what the clients count: each joins the line, long-polls until it is answered and, when
served, pays (or walks away); Surge holds what the clients know and counted.
"""

import argparse
import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx

from bench.harness.clients import minding_busy
from bench.waiting_surge.long_poll import PollConnection

POLL_WAIT_SECONDS = 60  # API.md's longest wait, what a client that wants few requests asks for
# A poll not answered this long after its wait ran out never will be: a failure.
NEVER_ANSWERED_MARGIN_SECONDS = 30
# A poll shed with 503 comes back after the Retry-After the server sends (ticketing.asgi.handler).
# A payment the provider did not answer in time (504), or whose first try still runs (409 idempotency_in_flight,
# as after a try shed with 503 once its key was taken), is sent again with its key, this many times at most.
PAY_TIMEOUT_RETRIES = 5
BUSY_RETRY_SECONDS = 2
SANDBOX_CARD = {"card_number": "4242424242424242", "exp_month": 12, "exp_year": 2040, "cvc": "123"}


@dataclass
class Waiter:
    number: int
    session_id: str
    seats_wanted: int
    waiter_id: str = ""
    version: int = 0
    parked: bool = False  # its poll's status line is in and its body is not
    has_parked: bool = False  # one of its polls parked at least once
    final_status: str | None = None
    answered_at: float | None = None  # when its poll answered with something other than Waiting
    reservation_id: str | None = None
    paid: str | None = None  # the pay call's status, when it paid


@dataclass
class Surge:
    """What the clients know and counted (one event loop: no locks needed)."""

    options: argparse.Namespace
    show_id: int
    movie_id: int
    host: str
    port: int
    waiters: list = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    failures: list = field(default_factory=list)
    join_latencies: list = field(default_factory=list)
    poll_answers: int = 0
    polls_answered_unchanged: int = 0  # their wait ran out
    reconnects: int = 0
    watcher_frames: list = field(default_factory=list)  # per watcher: [(frame, when read)]
    frames_read: dict = field(default_factory=dict)  # each distinct frame text, kept once
    loop_lags: list = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def fail(self, what):
        self.failures.append(what)

    def parked_count(self):
        return sum(waiter.parked for waiter in self.waiters)

    def ever_parked_count(self):
        return sum(waiter.has_parked for waiter in self.waiters)


async def join(surge, waiter, client):
    body = {"session_id": waiter.session_id, "seats_wanted": waiter.seats_wanted}
    started = time.perf_counter()
    try:
        response, _ = await minding_busy(
            lambda: client.post(f"/api/v1/shows/{surge.show_id}/waitlist", json=body),
            lambda busy, ms: surge.statuses.update([f"POST waitlist {busy.status_code}"]),
        )
    except httpx.HTTPError as error:
        surge.fail(f"join {waiter.session_id}: {type(error).__name__}: {error}")
        return False
    surge.join_latencies.append(time.perf_counter() - started)
    surge.statuses[f"POST waitlist {response.status_code}"] += 1
    if response.status_code != 201:
        surge.fail(f"join {waiter.session_id} answered {response.status_code}: {response.text[:300]}")
        return False
    answer = response.json()
    waiter.waiter_id, waiter.version = answer["waiter_id"], answer["version"]
    return True


async def keep_polling(surge, waiter, pay_client, rng):
    """The waiting page's loop: long-poll, and poll again at once with the version the answer gave."""
    connection = PollConnection(surge)
    wait = surge.options.poll_wait

    def parked():
        waiter.parked = waiter.has_parked = True

    try:
        while not surge.stop.is_set():
            path = f"/api/v1/waitlist/{waiter.waiter_id}?session_id={waiter.session_id}&wait={wait}"
            path += f"&version={waiter.version}"
            try:
                status, body = await asyncio.wait_for(
                    connection.get(path, parked), timeout=wait + NEVER_ANSWERED_MARGIN_SECONDS
                )
            except TimeoutError:
                # Which half never came says where it stuck: before Django answered, or parked past its wait.
                half = "its body (it was parked)" if waiter.parked else "even its status line"
                surge.fail(f"the poll of waiter {waiter.waiter_id} got not {half} within {wait}+30 s")
                return
            except (OSError, asyncio.IncompleteReadError, ValueError) as error:
                surge.fail(f"poll of waiter {waiter.waiter_id}: {type(error).__name__}: {error}")
                return
            finally:
                waiter.parked = False
            surge.statuses[f"GET waitlist {status}"] += 1
            if status == 503:  # the process shed the poll (its admission queue full or too slow): come back
                await asyncio.sleep(BUSY_RETRY_SECONDS)
                continue
            if status != 200:
                surge.fail(f"poll of waiter {waiter.waiter_id} answered {status}: {str(body)[:300]}")
                return
            surge.poll_answers += 1
            if body["version"] == waiter.version:
                surge.polls_answered_unchanged += 1
            waiter.version = body["version"]
            if body["status"] == "Waiting":
                continue
            waiter.final_status = body["status"]
            waiter.answered_at = time.time()
            waiter.reservation_id = body.get("reservation_id")
            break
    except asyncio.CancelledError:
        return
    finally:
        connection.close()
    if waiter.final_status == "Seats Available" and rng.random() < surge.options.pay_share:
        await pay(surge, waiter, pay_client)


async def pay(surge, waiter, client):
    """Pay for the served hold with the sandbox's good card: the seats are booked. A 504 (the provider did not
    answer in time), a 409 idempotency_in_flight (an earlier try with the key still runs) or a connection closed
    under the request is sent again with the same Idempotency-Key after its Retry-After, as API.md tells a client
    to."""
    key = str(uuid.uuid4())
    response = None
    for _ in range(PAY_TIMEOUT_RETRIES + 1):
        try:
            response, _ = await minding_busy(
                lambda: client.post(
                    f"/api/v1/reservations/{waiter.reservation_id}/pay",
                    json={"session_id": waiter.session_id, "payment": SANDBOX_CARD},
                    headers={"Idempotency-Key": key},
                ),
                lambda busy, ms: surge.statuses.update([f"POST pay {busy.status_code}"]),
            )
        except (httpx.ReadError, httpx.RemoteProtocolError) as error:
            # The connection was closed under the request: the same key again is safe (API.md: a replay never
            # charges twice) and is what a partner's client does. uvicorn closes a keep-alive connection idle
            # for 5 s by its clock; this loop, lagging, can send on it just then.
            surge.statuses[f"POST pay sent again after {type(error).__name__}"] += 1
            await asyncio.sleep(BUSY_RETRY_SECONDS)
            continue
        except httpx.HTTPError as error:
            surge.fail(f"pay {waiter.reservation_id}: {type(error).__name__}: {error}")
            return
        surge.statuses[f"POST pay {response.status_code}"] += 1
        if not _pay_again(response):
            break
        await asyncio.sleep(float(response.headers.get("Retry-After", BUSY_RETRY_SECONDS)))
    if response is None:
        surge.fail(f"pay {waiter.reservation_id}: the connection was closed under every try")
        return
    waiter.paid = str(response.status_code)
    # 410: the hold lapsed before the payment (the answer came too late, or the client was slow): no failure.
    if response.status_code not in (200, 410):
        surge.fail(f"pay {waiter.reservation_id} answered {response.status_code}: {response.text[:300]}")


def _pay_again(response):
    if response.status_code == 504:
        return True
    return response.status_code == 409 and response.json()["error"]["code"] == "idempotency_in_flight"
