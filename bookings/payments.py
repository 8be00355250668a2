"""The payment provider interface and the built-in sandbox provider (DESIGN.md decision 8, API.md "Sandbox payment").

The booking service talks to whatever class settings.TICKETING_PAYMENT_PROVIDER names, through get_provider().
Every provider call is idempotent by the caller's key, like Stripe's: a replay returns the first answer and
never charges twice, so a caller that lost an answer (a timeout, a crash) can ask again or look the charge up
with find_charge().

Card numbers and CVCs pass through in a Card and are never stored or logged; the ledger keeps the last four digits.
"""

import hashlib
import secrets
import time
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from functools import cache as memoize
from typing import Protocol

import httpx
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django.utils.module_loading import import_string
from redis.exceptions import RedisError

from ticketing.numbers import is_whole_number, whole_number

MESSAGES = {
    "payment_error": "The payment could not be made.",
    "invalid_card": "The card details are not valid; see fields.",
    "card_declined": "The card was declined; try another card.",
    "payment_timeout": "The payment provider did not answer in time; the payment may or may not have gone through.",
    "idempotency_mismatch": "This idempotency key was already used with different payment details.",
    "unknown_charge": "There is no such charge.",
    "refund_exceeds_charge": "A refund can't exceed what is left of the charge.",
    "invalid_amount": "The amount must be a positive decimal.",
    "invalid_currency": "The currency must be a three-letter ISO 4217 code.",
    "invalid_idempotency_key": "The idempotency key must be a non-empty string of at most 255 characters.",
}


class PaymentError(Exception):
    """A payment the provider refused or could not finish; `code` is the API's machine word."""

    code = "payment_error"

    def __init__(self, code: str | None = None, message: str | None = None):
        if code:
            self.code = code
        self.message = message or MESSAGES.get(self.code, MESSAGES["payment_error"])
        super().__init__(self.message)


class InvalidCard(PaymentError):
    """The card can't be charged as given (the API's 400); `fields` maps each bad field to its messages."""

    code = "invalid_card"

    def __init__(self, fields: dict[str, list[str]] | None = None, message: str | None = None):
        super().__init__(message=message)
        self.fields = fields or {}


class CardDeclined(PaymentError):
    """The issuer said no (the API's 402). Nothing was charged."""

    code = "card_declined"


class ProviderTimeout(PaymentError):
    """No answer in time: the charge may or may not exist. Ask again with the same key, or use find_charge."""

    code = "payment_timeout"


@dataclass(frozen=True, repr=False)
class Card:
    """Card details on their way to the provider. repr() shows only the last four digits, so logs can't leak it."""

    number: str
    exp_month: int
    exp_year: int
    cvc: str

    @property
    def last4(self) -> str:
        return self.number[-4:]

    def __repr__(self):
        return f"Card(last4={self.last4!r}, exp={self.exp_month:02d}/{self.exp_year})"


@dataclass(frozen=True)
class Charge:
    charge_id: str
    amount: Decimal
    currency: str
    idempotency_key: str
    refunded: bool = False  # fully refunded, as Stripe's flag: a partial refund leaves it False


@dataclass(frozen=True)
class Refund:
    refund_id: str
    charge_id: str
    amount: Decimal


class PaymentProvider(Protocol):
    name: str

    def charge(self, *, amount: Decimal, currency: str, card: Card, idempotency_key: str) -> Charge: ...

    def refund(self, *, charge_id: str, amount: Decimal, idempotency_key: str) -> Refund: ...

    def find_charge(self, *, idempotency_key: str) -> Charge | None: ...


def get_provider() -> PaymentProvider:
    """An instance of settings.TICKETING_PAYMENT_PROVIDER, one per dotted path and process."""
    return _provider_at(settings.TICKETING_PAYMENT_PROVIDER)


@memoize
def _provider_at(path):
    return import_string(path)()


def parse_card(data) -> Card:
    """A Card from the API's "payment" object, or InvalidCard with a message per bad field.

    Expects {"card_number": "4242 4242 4242 4242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}. Spaces and
    dashes in the number are ignored; months and years may come as integers or digit strings; the CVC must be a
    string so a leading zero survives. A card is good through the last day of its expiry month.
    Whether the number is one the provider accepts is the provider's call, not this function's.
    """
    if not isinstance(data, dict):
        raise InvalidCard({"payment": ["Send the card as an object with card_number, exp_month, exp_year and cvc."]})
    errors = {}
    number = data.get("card_number")
    if not isinstance(number, str) or not number.strip():
        errors["card_number"] = ["Give the card number."]
        number = ""
    else:
        number = number.replace(" ", "").replace("-", "")
    exp_month = whole_number(data.get("exp_month"), maximum=99)
    if exp_month is None:
        errors["exp_month"] = ["Give the expiry month as a number from 1 to 12."]
    exp_year = whole_number(data.get("exp_year"), maximum=9999)
    if exp_year is None:
        errors["exp_year"] = ["Give the expiry year as four digits, e.g. 2030."]
    cvc = data.get("cvc")
    if not isinstance(cvc, str):
        errors["cvc"] = ["Give the CVC as a string of 3 or 4 digits."]
        cvc = ""
    card = Card(number=number, exp_month=exp_month or 0, exp_year=exp_year or 0, cvc=cvc)
    for field, messages in _card_errors(card).items():
        errors.setdefault(field, messages)
    if errors:
        raise InvalidCard(errors)
    return card


def _card_errors(card):
    """Messages per field for a malformed or expired card; empty if it looks chargeable."""
    errors = {}
    if not (is_whole_number(card.number) and 12 <= len(card.number) <= 19 and _luhn_ok(card.number)):
        errors["card_number"] = ["This is not a valid card number."]
    if not 1 <= card.exp_month <= 12:
        errors["exp_month"] = ["Give the expiry month as a number from 1 to 12."]
    if not 1000 <= card.exp_year <= 9999:
        errors["exp_year"] = ["Give the expiry year as four digits, e.g. 2030."]
    if not errors.keys() & {"exp_month", "exp_year"}:
        today = timezone.now()
        if (card.exp_year, card.exp_month) < (today.year, today.month):
            errors["exp_year"] = ["This card has expired."]
    if not (is_whole_number(card.cvc) and len(card.cvc) in (3, 4)):
        errors["cvc"] = ["Give the CVC as a string of 3 or 4 digits."]
    return errors


def _luhn_ok(digits):
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


# --- The sandbox --------------------------------------------------------------------------------------------
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
            errors = _card_errors(card)
            if not errors and card.number not in (SANDBOX_SUCCEEDS, SANDBOX_DECLINED, SANDBOX_TIMES_OUT):
                errors["card_number"] = ["The sandbox accepts only its test card numbers."]
            if errors:
                raise InvalidCard(errors)
            if card.number == SANDBOX_DECLINED:
                raise CardDeclined()
            if card.number == SANDBOX_TIMES_OUT:
                raise ProviderTimeout()
            charge_id = "ch_" + secrets.token_hex(12)
            cache.set(f"{PREFIX}charge-id:{charge_id}", idempotency_key, LEDGER_SECONDS)
            number = _next_number()
            cache.set(f"{PREFIX}at:{number}", (idempotency_key, charge_id), LEDGER_SECONDS)
            return {
                "charge_id": charge_id,
                "amount": amount,
                "currency": currency,
                "idempotency_key": idempotency_key,
                "last4": card.last4,
            }

        with _unreachable_is_timeout():
            record = _once(f"{PREFIX}charge:{_digest(idempotency_key)}", params, make_charge)
            return self._charge_from(record)

    def refund(self, *, charge_id: str, amount: Decimal, idempotency_key: str) -> Refund:
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

        def make_refund():
            with _lock(f"{PREFIX}charge-lock:{charge_id}"):
                charge = self._load_charge(charge_id)
                if charge is None:
                    raise PaymentError("unknown_charge")
                refunds = cache.get(f"{PREFIX}refunds:{charge_id}") or {"total": Decimal(0), "by_key": {}}
                # Our earlier attempt got this far and then died before answering: answer what it did.
                if idempotency_key in refunds["by_key"]:
                    return refunds["by_key"][idempotency_key]
                if refunds["total"] + amount > charge["amount"]:
                    raise PaymentError("refund_exceeds_charge")
                refund = {"refund_id": "re_" + secrets.token_hex(12), "charge_id": charge_id, "amount": amount}
                refunds["by_key"][idempotency_key] = refund
                refunds["total"] += amount
                cache.set(f"{PREFIX}refunds:{charge_id}", refunds, LEDGER_SECONDS)
                return refund

        with _unreachable_is_timeout():
            return Refund(**_once(f"{PREFIX}refund:{_digest(idempotency_key)}", params, make_refund))

    def find_charge(self, *, idempotency_key: str) -> Charge | None:
        """The charge made with this key, or None if there is none (yet: a call may still be in flight).

        Raises ProviderTimeout if the ledger can't be reached: "no answer" must not read as "no charge".
        """
        with _unreachable_is_timeout():
            record = cache.get(f"{PREFIX}charge:{_digest(idempotency_key)}")
            if record is None or "result" not in record:
                return None
            return self._charge_from(record["result"])

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
                    found.append(self._charge_from(result))
        return found

    def _load_charge(self, charge_id):
        key = cache.get(f"{PREFIX}charge-id:{charge_id}")
        if key is None:
            return None
        record = cache.get(f"{PREFIX}charge:{_digest(key)}")
        if record is None or record.get("result", {}).get("charge_id") != charge_id:
            return None  # the id of an attempt that never committed
        return record["result"]

    def _charge_from(self, result):
        refunds = cache.get(f"{PREFIX}refunds:{result['charge_id']}")
        return Charge(
            charge_id=result["charge_id"],
            amount=result["amount"],
            currency=result["currency"],
            idempotency_key=result["idempotency_key"],
            refunded=refunds is not None and refunds["total"] >= result["amount"],
        )


class SandboxHttpProvider:
    """The sandbox reached over HTTP, as a separate service (bookings.sandbox_service, `run_payment_sandbox`).

    The same contract as SandboxProvider, but every call crosses a socket to another process, which can be
    slow, fail, drop the connection or be down: all of those are ProviderTimeout (the outcome is unknown, so
    the caller asks again with the same key or looks the charge up). Waits at most
    settings.TICKETING_PAYMENT_TIMEOUT_SECONDS per call; one connection pool per process.
    """

    name = "sandbox"

    def __init__(self, base_url=None, timeout=None):
        self.client = httpx.Client(
            base_url=base_url or settings.TICKETING_PAYMENT_SANDBOX_URL,
            timeout=timeout or settings.TICKETING_PAYMENT_TIMEOUT_SECONDS,
        )

    def charge(self, *, amount: Decimal, currency: str, card: Card, idempotency_key: str) -> Charge:
        """As SandboxProvider.charge; also ProviderTimeout when the service is slow, failing or unreachable."""
        body = {
            "amount": str(amount),
            "currency": currency,
            "card": {"number": card.number, "exp_month": card.exp_month, "exp_year": card.exp_year, "cvc": card.cvc},
        }
        return _charge_of(self._call("POST", "/v1/charges", json=body, key=idempotency_key))

    def refund(self, *, charge_id: str, amount: Decimal, idempotency_key: str) -> Refund:
        body = self._call(
            "POST", "/v1/refunds", json={"charge_id": charge_id, "amount": str(amount)}, key=idempotency_key
        )
        return Refund(refund_id=body["refund_id"], charge_id=body["charge_id"], amount=Decimal(body["amount"]))

    def find_charge(self, *, idempotency_key: str) -> Charge | None:
        try:
            return _charge_of(self._call("GET", "/v1/charges", params={"idempotency_key": idempotency_key}))
        except PaymentError as exc:
            if exc.code == "unknown_charge":
                return None
            raise

    def charges(self) -> list[Charge]:
        return [_charge_of(body) for body in self._call("GET", "/v1/charges")["charges"]]

    def _call(self, method, path, *, key=None, **request):
        headers = {"Idempotency-Key": key} if key is not None else {}
        try:
            response = self.client.request(method, path, headers=headers, **request)
            body = response.json()
        except (httpx.HTTPError, ValueError) as error:  # no answer, half an answer, or not JSON
            raise ProviderTimeout() from error
        if response.status_code == 200:
            return body
        error = body.get("error", {}) if isinstance(body, dict) else {}
        code, message = error.get("code", "payment_error"), error.get("message")
        if response.status_code >= 500:  # Stripe's rule too: a 5xx leaves the outcome unknown
            raise ProviderTimeout()
        if response.status_code == 402:
            raise CardDeclined(message=message)
        if code == "invalid_card":
            raise InvalidCard(error.get("fields"), message=message)
        raise PaymentError(code, message)


def _charge_of(body):
    return Charge(
        charge_id=body["charge_id"],
        amount=Decimal(body["amount"]),
        currency=body["currency"],
        idempotency_key=body["idempotency_key"],
        refunded=body["refunded"],
    )


def _once(slot, params, perform):
    """perform() at most once per slot (cache key) among all threads and processes; everyone gets its answer.

    cache.add is the shared cache's atomic "set if absent" (SET NX in Redis): the caller that adds the claim
    performs, then overwrites the claim with the answer; the rest poll for the answer. A PaymentError from
    perform() means nothing happened, so the claim is dropped and the key is free again.
    """
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        if cache.add(slot, {"params": params}, CLAIM_SECONDS):
            try:
                result = perform()
            except PaymentError:
                cache.delete(slot)
                raise
            cache.set(slot, {"params": params, "result": result}, LEDGER_SECONDS)
            return result
        record = cache.get(slot)
        if record is not None:
            if record["params"] != params:
                raise PaymentError("idempotency_mismatch")
            if "result" in record:
                return record["result"]
        # Still claimed, or the claim was just dropped (then the next add may be ours).
        if time.monotonic() >= deadline:
            raise ProviderTimeout()
        time.sleep(POLL_SECONDS)


class _lock:
    """A short mutual-exclusion lock in the shared cache; it expires on its own if its holder dies."""

    def __init__(self, key):
        self.key = key

    def __enter__(self):
        deadline = time.monotonic() + WAIT_SECONDS
        while not cache.add(self.key, 1, CLAIM_SECONDS):
            if time.monotonic() >= deadline:
                raise ProviderTimeout()
            time.sleep(POLL_SECONDS)

    def __exit__(self, *exc_info):
        cache.delete(self.key)


def _next_number():
    # The counter outlives every index entry (it is kept a day longer than they are, from its last use), so
    # numbers restart only once every entry that could collide with them is gone.
    while True:
        cache.add(f"{PREFIX}seq", 0, SEQ_SECONDS)
        try:
            number = cache.incr(f"{PREFIX}seq")
        except ValueError:
            continue  # it expired between the two calls
        cache.touch(f"{PREFIX}seq", SEQ_SECONDS)
        return number


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
