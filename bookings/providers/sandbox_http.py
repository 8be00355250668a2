"""The sandbox provider's HTTP client: the sandbox as the site would reach a real card processor.

Name bookings.providers.sandbox_http.SandboxHttpProvider in TICKETING_PAYMENT_PROVIDER and start the sandbox
service (`python -m sandbox.payment_service`, which production doesn't ship) at TICKETING_PAYMENT_SANDBOX_URL.
"""

import asyncio
from contextlib import contextmanager
from decimal import Decimal

import httpx
from django.conf import settings

from bookings.providers import Card, CardDeclined, Charge, InvalidCard, PaymentError, ProviderTimeout, Refund


class SandboxHttpProvider:
    """The sandbox reached over HTTP, as a service of its own (sandbox/payment_service.py).

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
        self.async_clients = {}

    def charge(self, *, amount: Decimal, currency: str, card: Card, idempotency_key: str) -> Charge:
        """As SandboxProvider.charge; also ProviderTimeout when the service is slow, failing or unreachable."""
        return _charge_of(self._call(*_charge_request(amount, currency, card, idempotency_key)))

    async def acharge(self, *, amount: Decimal, currency: str, card: Card, idempotency_key: str) -> Charge:
        return _charge_of(await self._acall(*_charge_request(amount, currency, card, idempotency_key)))

    def refund(self, *, charge_id: str, amount: Decimal, idempotency_key: str) -> Refund:
        return _refund_of(self._call(*_refund_request(charge_id, amount, idempotency_key)))

    async def arefund(self, *, charge_id: str, amount: Decimal, idempotency_key: str) -> Refund:
        return _refund_of(await self._acall(*_refund_request(charge_id, amount, idempotency_key)))

    def find_charge(self, *, idempotency_key: str) -> Charge | None:
        with _unknown_charge_is_none():
            return _charge_of(self._call(*_find_request(idempotency_key)))

    async def afind_charge(self, *, idempotency_key: str) -> Charge | None:
        with _unknown_charge_is_none():
            return _charge_of(await self._acall(*_find_request(idempotency_key)))

    def charges(self) -> list[Charge]:
        return [_charge_of(body) for body in self._call("GET", "/v1/charges", {})["charges"]]

    def _call(self, method, path, request, key=None):
        try:
            response = self.client.request(method, path, headers=_key_header(key), **request)
            body = response.json()
        except (httpx.HTTPError, ValueError) as error:  # no answer, half an answer, or not JSON
            raise ProviderTimeout() from error
        return _answer_of(response, body)

    async def _acall(self, method, path, request, key=None):
        """_call on this event loop's httpx.AsyncClient (one connection pool per loop, as _call's per process)."""
        loop = asyncio.get_running_loop()
        client = self.async_clients.get(loop)
        if client is None:
            client = self.async_clients[loop] = httpx.AsyncClient(
                base_url=self.client.base_url, timeout=self.client.timeout
            )
        try:
            response = await client.request(method, path, headers=_key_header(key), **request)
            body = response.json()
        except (httpx.HTTPError, ValueError) as error:  # no answer, half an answer, or not JSON
            raise ProviderTimeout() from error
        return _answer_of(response, body)


def _charge_request(amount, currency, card, idempotency_key):
    card_body = {"number": card.number, "exp_month": card.exp_month, "exp_year": card.exp_year, "cvc": card.cvc}
    body = {"amount": str(amount), "currency": currency, "card": card_body}
    return "POST", "/v1/charges", {"json": body}, idempotency_key


def _refund_request(charge_id, amount, idempotency_key):
    return "POST", "/v1/refunds", {"json": {"charge_id": charge_id, "amount": str(amount)}}, idempotency_key


def _find_request(idempotency_key):
    return "GET", "/v1/charges", {"params": {"idempotency_key": idempotency_key}}


def _key_header(key):
    return {"Idempotency-Key": key} if key is not None else {}


@contextmanager
def _unknown_charge_is_none():
    # find_charge's "no such charge" is an answer (None), not a failure.
    try:
        yield
    except PaymentError as exc:
        if exc.code != "unknown_charge":
            raise


def _refund_of(body):
    return Refund(refund_id=body["refund_id"], charge_id=body["charge_id"], amount=Decimal(body["amount"]))


def _answer_of(response, body):
    """The sandbox service's answer: its body, or the PaymentError it stands for."""
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
