"""The buyers of a fault scenario: clients holding, paying and cancelling through the balancer while a fault
happens, every answer kept with its time; the summary of those answers against the fault's windows.
"""

import asyncio
import random
import time
from collections import Counter
from datetime import UTC, datetime

import httpx

from bench.show import BENCH_KEY
from chaos.show import hold_request

CARD = {"card_number": "4242424242424242", "exp_month": 12, "exp_year": datetime.now(UTC).year + 3, "cvc": "123"}


class Load:
    """Buyers holding, paying and cancelling through the balancer while a fault happens; every answer kept."""

    def __init__(self, url, show_id, seat_ids, *, clients, think=0.0, seed=7, pay_share=0.3):
        self.url, self.show_id, self.seat_ids = url, show_id, seat_ids
        self.clients, self.think, self.pay_share = clients, think, pay_share
        self.rng = random.Random(seed)
        self.answers = []  # (seconds since start, call, status, retry-after present)
        self.durations = []  # each answer's milliseconds, in the same order
        # What the site told the clients it had done: reservation ids held (201) and booked (a 200 to pay).
        self.acknowledged = {"held": set(), "booked": set()}
        self.started = time.monotonic()
        self.stop = asyncio.Event()

    async def run(self, seconds):
        self.started = time.monotonic()
        headers = {"X-API-Key": BENCH_KEY}
        limits = httpx.Limits(max_connections=self.clients, keepalive_expiry=5)
        async with httpx.AsyncClient(base_url=self.url, headers=headers, limits=limits, timeout=30) as client:
            buyers = [asyncio.create_task(self.buyer(client, number)) for number in range(self.clients)]
            await asyncio.sleep(seconds)
            self.stop.set()
            await asyncio.gather(*buyers, return_exceptions=True)

    def record(self, call, response):
        status = response.status_code if response is not None else "no answer"
        retry_after = response is not None and "Retry-After" in response.headers
        self.answers.append((round(time.monotonic() - self.started, 2), call, status, retry_after))

    async def call(self, client, call, method, path, **kwargs):
        started = time.monotonic()
        try:
            response = await client.request(method, path, **kwargs)
        except httpx.HTTPError:
            response = None
        self.record(call, response)
        self.durations.append((time.monotonic() - started) * 1000)
        return response

    async def buyer(self, client, number):
        customer = 0
        while not self.stop.is_set():
            await asyncio.sleep(self.think * self.rng.random() * 2)
            customer += 1
            session = f"load-{number}-{customer}"
            start = self.rng.randrange(0, len(self.seat_ids) - 4)
            body = hold_request(session, self.show_id, self.seat_ids[start : start + 2])
            held = await self.call(client, "hold", "POST", "/api/v1/reservations", json=body)
            if held is None or held.status_code != 201:
                await asyncio.sleep(0.2 if held is None or held.status_code != 503 else 1)
                continue
            reservation = held.json()["reservation_id"]
            self.acknowledged["held"].add(reservation)
            if self.rng.random() < self.pay_share:
                key = f"pay-{session}"
                for _ in range(5):  # the same key each time: a retry can't charge twice
                    paid = await self.call(
                        client,
                        "pay",
                        "POST",
                        f"/api/v1/reservations/{reservation}/pay",
                        json={"session_id": session, "payment": CARD},
                        headers={"Idempotency-Key": key},
                    )
                    if paid is not None and paid.status_code == 200:
                        self.acknowledged["booked"].add(reservation)
                    if paid is not None and paid.status_code in (200, 402, 410):
                        break
                    await asyncio.sleep(1)
            else:
                await self.call(
                    client, "cancel", "DELETE", f"/api/v1/reservations/{reservation}", params={"session_id": session}
                )

    def summary(self, windows=()):
        """Answers by status; 5xx other than 503 (and 503s without Retry-After); errors outside the fault windows."""
        statuses = Counter(f"{call} {status}" for _, call, status, _ in self.answers)
        failures = [answer for answer in self.answers if failed(answer)]
        bad_5xx = [a for a in failures if a[2] != "no answer" and (a[2] != 503 or not a[3])]
        outside = [a for a in failures if not any(start <= a[0] <= end for start, end in windows)]
        last_failure = max((a[0] for a in failures), default=None)
        return {
            "answers": len(self.answers),
            "by_status": dict(sorted(statuses.items())),
            "5xx_other_than_503_with_retry_after": len(bad_5xx),
            "failures_outside_the_fault_windows": len(outside),
            "last_failure_at_s": last_failure,
        }


def failed(answer):
    """A Load answer that is no answer at all or a 5xx."""
    return answer[2] == "no answer" or answer[2] >= 500
