"""The sandbox payment provider as a service of its own on loopback: a fake card processor. Production leaves it out.

    python -m sandbox.payment_service [--host 127.0.0.1] [--port 8765]

Tests (tests/conftest.py's payment_sandbox) and `make chaos` start it; the site then reaches it only over HTTP
(bookings.providers.sandbox_http.SandboxHttpProvider), as it would a real card processor: the provider's process
can be slow, fail, drop a connection or die on its own, and our processes learn of it only from what comes (or
doesn't come) down the wire. The ledger is the sandbox's own (bookings.providers.sandbox.SandboxProvider's, in
the shared cache: the process reads ticketing.settings for REDIS_URL and its key prefix), so it outlives both
the service and our processes.

The API is Stripe-shaped JSON; every call that makes something carries an `Idempotency-Key` header:

    POST /v1/charges        {"amount": "25.50", "currency": "USD", "card": {number, exp_month, exp_year, cvc}}
    POST /v1/refunds        {"charge_id": "ch_...", "amount": "25.50"}
    GET  /v1/charges        every charge, oldest first; ?idempotency_key=K the one made with K (404 if none)
    GET  /v1/health

Answers: 200 with the object; 400/402/404/409 with {"error": {"code", "message", "fields"?}}; 504 when the
sandbox's own timeout card (or a busy key) says the outcome is unknown.

Faults, for tests and `make chaos` (a real processor has them on its own): POST /v1/faults with
{"faults": [{"on": "charge"|"refund"|"find", "do": ..., "seconds": S}, ...]} queues one fault per coming call
of that kind, in order; DELETE /v1/faults clears the queue. What each fault does to the call:
    fail     answer 500 and do nothing
    timeout  do nothing, wait S seconds, then answer 500 (the caller has given up by then)
    late     do the call, then wait S seconds before answering
    drop     do the call, then close the connection without an answer
    twice    the request arrives twice (a retried delivery): do it twice, answer the second
Card numbers never reach a log: the request log is off and the ledger keeps the last four digits.
"""

import argparse
import json
import logging
import os
import threading
import time
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import django

from bookings.providers import Card, InvalidCard, PaymentError, ProviderTimeout
from bookings.providers.sandbox import SandboxProvider
from ticketing.numbers import whole_number

# Named, not __name__: run with -m, this module is __main__.
logger = logging.getLogger("sandbox.payment_service")

FAULT_KINDS = {"fail", "timeout", "late", "drop", "twice"}
CALL_KINDS = {"charge", "refund", "find"}
ERROR_STATUS = {
    "card_declined": 402,
    "unknown_charge": 404,
    "idempotency_mismatch": 409,
    "refund_exceeds_charge": 409,
    "payment_timeout": 504,
}
MAX_BODY_BYTES = 64 * 1024


class FaultQueue:
    """Faults queued for the coming calls of each kind, taken one per call, in order, by any thread."""

    def __init__(self):
        self._lock = threading.Lock()
        self._queued = {kind: [] for kind in CALL_KINDS}

    def add(self, faults):
        with self._lock:
            for fault in faults:
                self._queued[fault["on"]].append(fault)

    def clear(self):
        with self._lock:
            for queued in self._queued.values():
                queued.clear()

    def take(self, kind):
        with self._lock:
            return self._queued[kind].pop(0) if self._queued[kind] else None


def _checked_faults(body):
    faults = body.get("faults") if isinstance(body, dict) else None
    if not isinstance(faults, list):
        raise ValueError('Send {"faults": [{"on": ..., "do": ..., "seconds": ...}]}.')
    for fault in faults:
        if not isinstance(fault, dict) or fault.get("on") not in CALL_KINDS or fault.get("do") not in FAULT_KINDS:
            raise ValueError(f"Each fault needs on in {sorted(CALL_KINDS)} and do in {sorted(FAULT_KINDS)}.")
        seconds = fault.get("seconds", 0)
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds <= 600:
            raise ValueError("seconds must be a number from 0 to 600.")
    return faults


def _charge_body(charge):
    return {
        "charge_id": charge.charge_id,
        "amount": str(charge.amount),
        "currency": charge.currency,
        "idempotency_key": charge.idempotency_key,
        "refunded": charge.refunded,
    }


class SandboxHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "PaymentSandbox/1"
    provider = SandboxProvider()

    def log_message(self, format, *args):
        pass  # no request log: it is the one place a card could leak from, and the tests' output stays clean

    # --- Routing ---------------------------------------------------------------------------------------

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/v1/health":
            return self._answer(200, {"ok": True})
        if url.path != "/v1/charges":
            return self._error(404, "not_found", "No such endpoint.")
        keys = parse_qs(url.query).get("idempotency_key")
        if keys is None:
            return self._answer(200, {"charges": [_charge_body(charge) for charge in self.provider.charges()]})
        self._with_fault("find", lambda: self._find(keys[0]))

    def do_POST(self):
        path = urlsplit(self.path).path
        body = self._read_json()
        if body is None:
            return self._error(400, "invalid_json", "Send a JSON object.")
        if path == "/v1/faults":
            try:
                self.server.faults.add(_checked_faults(body))
            except ValueError as exc:
                return self._error(400, "invalid_fault", str(exc))
            return self._answer(200, {"queued": len(body["faults"])})
        key = self.headers.get("Idempotency-Key", "")
        if path == "/v1/charges":
            return self._with_fault("charge", lambda: self._charge(body, key))
        if path == "/v1/refunds":
            return self._with_fault("refund", lambda: self._refund(body, key))
        self._error(404, "not_found", "No such endpoint.")

    def do_DELETE(self):
        if urlsplit(self.path).path != "/v1/faults":
            return self._error(404, "not_found", "No such endpoint.")
        self.server.faults.clear()
        self._answer(200, {"queued": 0})

    # --- Calls ---------------------------------------------------------------------------------------

    def _with_fault(self, kind, call):
        """Run call() -> (status, body) as the next queued fault of this kind says, and answer."""
        fault = self.server.faults.take(kind) or {}
        action, seconds = fault.get("do"), fault.get("seconds", 0)
        if action == "fail":
            return self._error(500, "provider_error", "The sandbox failed this call on purpose.")
        if action == "timeout":
            time.sleep(seconds)
            return self._error(500, "provider_error", "The sandbox timed this call out on purpose.")
        try:
            status, body = call()
            if action == "twice":
                status, body = call()
        except _Refused as refused:
            status, body = refused.status, refused.body
        if action == "late":
            time.sleep(seconds)
        if action == "drop":
            self.close_connection = True
            return
        self._answer(status, body)

    def _charge(self, body, key):
        card = body.get("card") if isinstance(body.get("card"), dict) else {}
        charge = self._provider_call(
            lambda: self.provider.charge(
                amount=_decimal(body.get("amount")),
                currency=body.get("currency"),
                card=Card(
                    number=str(card.get("number", "")),
                    exp_month=whole_number(card.get("exp_month"), maximum=99) or 0,
                    exp_year=whole_number(card.get("exp_year"), maximum=9999) or 0,
                    cvc=str(card.get("cvc", "")),
                ),
                idempotency_key=key,
            )
        )
        return 200, _charge_body(charge)

    def _refund(self, body, key):
        refund = self._provider_call(
            lambda: self.provider.refund(
                charge_id=str(body.get("charge_id", "")), amount=_decimal(body.get("amount")), idempotency_key=key
            )
        )
        return 200, {"refund_id": refund.refund_id, "charge_id": refund.charge_id, "amount": str(refund.amount)}

    def _find(self, key):
        charge = self._provider_call(lambda: self.provider.find_charge(idempotency_key=key))
        if charge is None:
            return 404, {"error": {"code": "unknown_charge", "message": "No charge was made with this key."}}
        return 200, _charge_body(charge)

    def _provider_call(self, call):
        try:
            return call()
        except InvalidCard as exc:
            raise _Refused(400, {"error": {"code": exc.code, "message": exc.message, "fields": exc.fields}}) from None
        except ProviderTimeout as exc:
            raise _Refused(504, {"error": {"code": exc.code, "message": exc.message}}) from None
        except PaymentError as exc:
            status = ERROR_STATUS.get(exc.code, 400)
            raise _Refused(status, {"error": {"code": exc.code, "message": exc.message}}) from None

    # --- HTTP ----------------------------------------------------------------------------------------

    def _read_json(self):
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            return None
        if not 0 < length <= MAX_BODY_BYTES:
            return None
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _error(self, status, code, message):
        self._answer(status, {"error": {"code": code, "message": message}})

    def _answer(self, status, body):
        content = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)


class _Refused(Exception):
    def __init__(self, status, body):
        super().__init__(status)
        self.status, self.body = status, body


def _decimal(value):
    # The provider's own checks (SandboxProvider) say what is wrong with an amount; anything unreadable is zero.
    try:
        return Decimal(str(value)) if isinstance(value, str | int) and not isinstance(value, bool) else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address):
        super().__init__(address, SandboxHandler)
        self.faults = FaultQueue()


def serve(host="127.0.0.1", port=8765):
    """Serve the sandbox until the process is stopped."""
    server = SandboxServer((host, port))
    logger.warning("Payment sandbox listening on http://%s:%s", *server.server_address[:2])
    server.serve_forever()


def main(argv=None):
    parser = argparse.ArgumentParser(description="Serve the sandbox payment provider over HTTP on loopback.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    arguments = parser.parse_args(argv)
    # The settings give the ledger's cache (REDIS_URL, TICKETING_REDIS_PREFIX) and the logging.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ticketing.settings")
    django.setup()
    serve(arguments.host, arguments.port)


if __name__ == "__main__":
    main()
