"""Payment providers: the interface the booking service pays through, and how settings choose one.

DESIGN.md decision 8; API.md "Sandbox payment".

The booking service (bookings.services.payments) talks to whatever class settings.TICKETING_PAYMENT_PROVIDER
names, through get_provider(). Two ship here: the sandbox (bookings.providers.sandbox.SandboxProvider, the
default, in-process, its ledger in the shared cache) and its HTTP client (bookings.providers.sandbox_http.
SandboxHttpProvider, which reaches the same sandbox run as a service of its own, sandbox/payment_service.py,
as it would a real card processor). A real processor's client would be a third module beside them.

Every provider call is idempotent by the caller's key, like Stripe's: a replay returns the first answer and
never charges twice, so a caller that lost an answer (a timeout, a crash) can ask again or look the charge up
with find_charge(). Each call has an async twin (acharge, arefund, afind_charge) for the lean path's event loop.

Card numbers and CVCs pass through in a Card and are never stored or logged; the ledger keeps the last four digits.
"""

from dataclasses import dataclass
from decimal import Decimal
from functools import cache as memoize
from typing import Protocol

from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string

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

    # The same calls for the lean path's event loop (bookings.services.payments.apay_for_reservation).
    async def acharge(self, *, amount: Decimal, currency: str, card: Card, idempotency_key: str) -> Charge: ...

    async def arefund(self, *, charge_id: str, amount: Decimal, idempotency_key: str) -> Refund: ...

    async def afind_charge(self, *, idempotency_key: str) -> Charge | None: ...


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
    for field, messages in card_errors(card).items():
        errors.setdefault(field, messages)
    if errors:
        raise InvalidCard(errors)
    return card


def card_errors(card):
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
