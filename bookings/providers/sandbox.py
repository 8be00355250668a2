"""The sandbox payment provider: a stand-in for an external card processor, run in our own processes.

It is settings.TICKETING_PAYMENT_PROVIDER's default. Its ledger is in the shared cache (Redis in production),
so every process sees one ledger, as they would an outside service's. sandbox/payment_service.py serves the
same class over HTTP for tests and `make chaos`, reached through bookings.providers.sandbox_http.
"""

import asyncio
import hashlib
import secrets
import time
from contextlib import contextmanager
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.core.cache.backends.redis import RedisSerializer
from redis.exceptions import RedisError

from bookings.providers import (
    Card,
    CardDeclined,
    Charge,
    InvalidCard,
    PaymentError,
    ProviderTimeout,
    Refund,
    card_errors,
)
from ticketing.asgi.redis_cache import INCREMENT_EXISTING
from ticketing.steps import arun_steps, run_steps

SANDBOX_SUCCEEDS = "4242424242424242"
SANDBOX_DECLINED = "4000000000000002"
SANDBOX_TIMES_OUT = "4000000000009995"

PREFIX = "sandbox-payments:"
LEDGER_SECONDS = 30 * 24 * 3600
SEQ_SECONDS = LEDGER_SECONDS + 24 * 3600
# A claimed key whose owner died (a crash between claim and commit) frees itself after this long, so a retry
# can go through instead of timing out for 30 days. Far above the few cache calls a claim covers.
CLAIM_SECONDS = 10
# How long a caller that lost the race for a key waits for the winner's answer before calling it a timeout.
WAIT_SECONDS = 2.0
POLL_SECONDS = 0.01
INDEX_CHUNK = 500


class SandboxProvider:
    """A stand-in for an external card processor, keeping its ledger in Django's cache.

    In production the cache is Redis, so the ledger outlives our processes and every web process and worker
    sees the same one, as they would an external service's. Card 4242424242424242 succeeds, 4000000000000002
    is declined and 4000000000009995 times out before the processor accepts it; any other number is invalid.

    Ledger keys, all under "sandbox-payments:" and kept 30 days:
      charge:<h(key)>   the charge made with an idempotency key: first a short-lived claim, then the charge.
                        Writing the charge here is the single write that makes it exist (the commit point).
      charge-id:<id>    charge id -> idempotency key, so refund() can find the charge.
      refund:<h(key)>   the same claim-then-answer record for a refund's own idempotency key.
      refunds:<id>      the refunds of one charge and their total, rewritten only under charge-lock:<id>.
      seq, at:<n>       charges() index: an atomic counter (cache.incr) numbers each charge attempt and
                        at:<n> names its key and charge id. Each writer owns its number, so no two writers
                        touch one index key and no update is lost; entries whose charge never committed
                        are skipped on reading.
    """

    name = "sandbox"

    def charge(self, *, amount: Decimal, currency: str, card: Card, idempotency_key: str) -> Charge:
        """Charge the card once per idempotency key; see _charging."""
        return _on_cache(self._charging(amount, currency, card, idempotency_key))

    async def acharge(self, *, amount: Decimal, currency: str, card: Card, idempotency_key: str) -> Charge:
        return await _aon_cache(self._charging(amount, currency, card, idempotency_key))

    def _charging(self, amount, currency, card, idempotency_key):
        """Charge the card once per idempotency key; a replay returns the first charge (its current state).

        Raises InvalidCard (unknown number, malformed or expired card), CardDeclined, ProviderTimeout (the
        timeout card, or another call with the same key still unfinished after WAIT_SECONDS), and
        PaymentError "idempotency_mismatch" when the key was used with another amount, currency or card, and
        "invalid_amount" / "invalid_currency" / "invalid_idempotency_key" for arguments no processor would take.
        ProviderTimeout also covers a ledger (cache) that can't be reached. A declined or timed-out attempt
        records nothing, so the same key may be tried again.
        """
        _check_amount(amount)
        currency = _check_currency(currency)
        _check_key(idempotency_key)
        params = {
            "amount": str(amount.normalize()),
            "currency": currency,
            "card": (card.last4, card.exp_month, card.exp_year),
        }

        def make_charge():
            errors = card_errors(card)
            if not errors and card.number not in (SANDBOX_SUCCEEDS, SANDBOX_DECLINED, SANDBOX_TIMES_OUT):
                errors["card_number"] = ["The sandbox accepts only its test card numbers."]
            if errors:
                raise InvalidCard(errors)
            if card.number == SANDBOX_DECLINED:
                raise CardDeclined()
            if card.number == SANDBOX_TIMES_OUT:
                raise ProviderTimeout()
            charge_id = "ch_" + secrets.token_hex(12)
            yield ("set", f"{PREFIX}charge-id:{charge_id}", idempotency_key, LEDGER_SECONDS)
            number = yield from _next_number()
            yield ("set", f"{PREFIX}at:{number}", (idempotency_key, charge_id), LEDGER_SECONDS)
            return {
                "charge_id": charge_id,
                "amount": amount,
                "currency": currency,
                "idempotency_key": idempotency_key,
                "last4": card.last4,
            }

        record = yield from _once(f"{PREFIX}charge:{_digest(idempotency_key)}", params, make_charge)
        return (yield from self._charge_from(record))

    def refund(self, *, charge_id: str, amount: Decimal, idempotency_key: str) -> Refund:
        """Refund once per idempotency key; see _refunding."""
        return _on_cache(self._refunding(charge_id, amount, idempotency_key))

    async def arefund(self, *, charge_id: str, amount: Decimal, idempotency_key: str) -> Refund:
        return await _aon_cache(self._refunding(charge_id, amount, idempotency_key))

    def _refunding(self, charge_id, amount, idempotency_key):
        """Refund part or all of a charge once per idempotency key; a replay returns the first refund.

        Raises PaymentError "unknown_charge", "refund_exceeds_charge" (this refund and the earlier ones would
        pass the amount charged), "idempotency_mismatch" (the key was used for another charge or amount), and
        ProviderTimeout when the charge is busy with another refund for too long or the ledger can't be
        reached (a replay with the same key is safe either way). A charge refunded in full reads
        refunded=True afterwards.
        """
        _check_amount(amount)
        _check_key(idempotency_key)
        params = {"charge_id": charge_id, "amount": str(amount.normalize())}

        def refund_now():
            charge = yield from self._load_charge(charge_id)
            if charge is None:
                raise PaymentError("unknown_charge")
            refunds = (yield ("get", f"{PREFIX}refunds:{charge_id}")) or {"total": Decimal(0), "by_key": {}}
            # Our earlier attempt got this far and then died before answering: answer what it did.
            if idempotency_key in refunds["by_key"]:
                return refunds["by_key"][idempotency_key]
            if refunds["total"] + amount > charge["amount"]:
                raise PaymentError("refund_exceeds_charge")
            refund = {"refund_id": "re_" + secrets.token_hex(12), "charge_id": charge_id, "amount": amount}
            refunds["by_key"][idempotency_key] = refund
            refunds["total"] += amount
            yield ("set", f"{PREFIX}refunds:{charge_id}", refunds, LEDGER_SECONDS)
            return refund

        def make_refund():
            return (yield from _locked(f"{PREFIX}charge-lock:{charge_id}", refund_now))

        return Refund(**(yield from _once(f"{PREFIX}refund:{_digest(idempotency_key)}", params, make_refund)))

    def find_charge(self, *, idempotency_key: str) -> Charge | None:
        """The charge made with this key, or None if there is none (yet: a call may still be in flight).

        Raises ProviderTimeout if the ledger can't be reached: "no answer" must not read as "no charge".
        """
        return _on_cache(self._finding(idempotency_key))

    async def afind_charge(self, *, idempotency_key: str) -> Charge | None:
        return await _aon_cache(self._finding(idempotency_key))

    def _finding(self, idempotency_key):
        record = yield ("get", f"{PREFIX}charge:{_digest(idempotency_key)}")
        if record is None or "result" not in record:
            return None
        return (yield from self._charge_from(record["result"]))

    def charges(self) -> list[Charge]:
        """Every charge in the ledger, oldest first (sandbox only: for tests and reconciliation reports)."""
        last = cache.get(f"{PREFIX}seq") or 0
        found = []
        for start in range(1, last + 1, INDEX_CHUNK):
            numbers = range(start, min(start + INDEX_CHUNK, last + 1))
            entries = cache.get_many([f"{PREFIX}at:{n}" for n in numbers])
            slots = {key: f"{PREFIX}charge:{_digest(key)}" for key, _ in entries.values()}
            records = cache.get_many(list(slots.values()))
            for n in numbers:
                if f"{PREFIX}at:{n}" not in entries:
                    continue  # expired, or its writer died between taking the number and writing it
                key, charge_id = entries[f"{PREFIX}at:{n}"]
                result = records.get(slots[key], {}).get("result")
                # An attempt that died before committing left a number; the retry that charged has its own.
                if result is not None and result["charge_id"] == charge_id:
                    found.append(_on_cache(self._charge_from(result)))
        return found

    def _load_charge(self, charge_id):
        key = yield ("get", f"{PREFIX}charge-id:{charge_id}")
        if key is None:
            return None
        record = yield ("get", f"{PREFIX}charge:{_digest(key)}")
        if record is None or record.get("result", {}).get("charge_id") != charge_id:
            return None  # the id of an attempt that never committed
        return record["result"]

    def _charge_from(self, result):
        refunds = yield ("get", f"{PREFIX}refunds:{result['charge_id']}")
        return Charge(
            charge_id=result["charge_id"],
            amount=result["amount"],
            currency=result["currency"],
            idempotency_key=result["idempotency_key"],
            refunded=refunds is not None and refunds["total"] >= result["amount"],
        )


def _once(slot, params, perform):
    """perform() at most once per slot (cache key) among all threads and processes; everyone gets its answer.

    cache.add is the shared cache's atomic "set if absent" (SET NX in Redis): the caller that adds the claim
    performs, then overwrites the claim with the answer; the rest poll for the answer. A PaymentError from
    perform() means nothing happened, so the claim is dropped and the key is free again.
    """
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        if (yield ("add", slot, {"params": params}, CLAIM_SECONDS)):
            try:
                result = yield from perform()
            except PaymentError:
                yield ("delete", slot)
                raise
            yield ("set", slot, {"params": params, "result": result}, LEDGER_SECONDS)
            return result
        record = yield ("get", slot)
        if record is not None:
            if record["params"] != params:
                raise PaymentError("idempotency_mismatch")
            if "result" in record:
                return record["result"]
        # Still claimed, or the claim was just dropped (then the next add may be ours).
        if time.monotonic() >= deadline:
            raise ProviderTimeout()
        yield ("sleep", POLL_SECONDS)


def _locked(key, perform):
    """perform() under a short mutual-exclusion lock in the shared cache; it expires on its own if its holder dies."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not (yield ("add", key, 1, CLAIM_SECONDS)):
        if time.monotonic() >= deadline:
            raise ProviderTimeout()
        yield ("sleep", POLL_SECONDS)
    try:
        result = yield from perform()
    except Exception:
        yield ("delete", key)
        raise
    yield ("delete", key)
    return result


def _next_number():
    # The counter outlives every index entry (it is kept a day longer than they are, from its last use), so
    # numbers restart only once every entry that could collide with them is gone.
    while True:
        yield ("add", f"{PREFIX}seq", 0, SEQ_SECONDS)
        try:
            number = yield ("incr", f"{PREFIX}seq")
        except ValueError:
            continue  # it expired between the two calls
        yield ("touch", f"{PREFIX}seq", SEQ_SECONDS)
        return number


# The sandbox's ledger steps are generators that yield each cache operation, `(name, *arguments)` as Django's
# cache methods take them or ("sleep", seconds), and are sent its answer: one implementation, made by
# `_on_cache` with Django's cache, or by `_aon_cache` on the event loop with redis.asyncio (the same Redis,
# keys and values), since a ledger call is a network round trip and a contended key polls for up to
# WAIT_SECONDS: neither may block the loop.


def _on_cache(steps):
    """The ledger steps' result, made with Django's cache."""
    with _unreachable_is_timeout():
        return run_steps(steps, lambda step: (time.sleep if step[0] == "sleep" else getattr(cache, step[0]))(*step[1:]))


async def _aon_cache(steps):
    """The ledger steps' result, made on the event loop. Without Redis the cache is the process's own memory,
    where each operation is instant: then `_on_cache` makes them."""
    if not settings.REDIS_URL:
        return _on_cache(steps)
    ledger = _AsyncLedger()
    with _unreachable_is_timeout():
        return await arun_steps(steps, lambda step: getattr(ledger, step[0])(*step[1:]))


class _AsyncLedger:
    """The cache operations the sandbox makes, on redis.asyncio, with Django's cache keys and serializer, so
    that the sync and the async ways read and write one ledger."""

    serializer = RedisSerializer()

    def __init__(self):
        from ticketing.lean import redis_client  # the lean path's client of this event loop

        self.redis = redis_client()

    @staticmethod
    def _key(key):
        return cache.make_and_validate_key(key)

    async def add(self, key, value, seconds):
        return bool(await self.redis.set(self._key(key), self.serializer.dumps(value), ex=seconds, nx=True))

    async def get(self, key):
        value = await self.redis.get(self._key(key))
        return None if value is None else self.serializer.loads(value)

    async def set(self, key, value, seconds):
        await self.redis.set(self._key(key), self.serializer.dumps(value), ex=seconds)

    async def delete(self, key):
        await self.redis.delete(self._key(key))

    async def incr(self, key):
        value = await self.redis.eval(INCREMENT_EXISTING, 1, self._key(key), 1)
        if value is None:
            raise ValueError(f"Key '{key}' not found.")
        return value

    async def touch(self, key, seconds):
        await self.redis.expire(self._key(key), seconds)

    async def sleep(self, seconds):
        await asyncio.sleep(seconds)


@contextmanager
def _unreachable_is_timeout():
    # A ledger we can't reach is a processor that didn't answer: the caller can't know what happened either way.
    try:
        yield
    except RedisError as error:
        raise ProviderTimeout() from error


def _digest(idempotency_key):
    # Callers choose the key; hashed, any text makes a short cache key without spaces or control characters.
    return hashlib.sha256(idempotency_key.encode()).hexdigest()


def _check_amount(amount):
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0:
        raise PaymentError("invalid_amount")


def _check_currency(currency):
    if not (isinstance(currency, str) and len(currency) == 3 and currency.isascii() and currency.isalpha()):
        raise PaymentError("invalid_currency")
    return currency.upper()


def _check_key(idempotency_key):
    if not isinstance(idempotency_key, str) or not 1 <= len(idempotency_key) <= 255:
        raise PaymentError("invalid_idempotency_key")
