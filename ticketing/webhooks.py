"""Partners' webhooks: owing events to their endpoints, signing and sending them, staff sending them again.

An event is owed in the transaction of the change it tells of: `record_webhook_event` (from Python) and the
bookings tables' triggers (bookings migration 0029) both call the SQL function ticketing_record_webhook_event
(ticketing migration 0004), which writes one WebhookDelivery row per endpoint that asked for it. Nothing is sent
from a request: a Celery task makes each attempt (queued on commit by `record_webhook_event`; beat's sweep,
`dispatch_due_webhooks`, queues every delivery that is due and has none, which covers the events the database
recorded, the retries and any task that was lost). A failed attempt waits a doubling time with jitter; after
TICKETING_WEBHOOK_MAX_ATTEMPTS the delivery is marked failed, where staff see it and can send it again.

Every attempt of an event carries the same `Webhook-Id`, so the delivery is at least once: receivers dedupe.
The signature (docs/webhooks.md): `Webhook-Signature: t=<timestamp>,v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
"""

import hashlib
import hmac
import ipaddress
import json
import logging
import random
import socket
import time
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
from celery import current_app
from django.conf import settings
from django.utils import timezone

from ticketing import shards
from ticketing.error_codes import error_message
from ticketing.models import WebhookDelivery, WebhookEndpoint
from ticketing.numbers import BIGINT_MAX
from ticketing.outbox import CLOCK_SLACK, claim_attempt, queue_again
from ticketing.shards import connection

logger = logging.getLogger(__name__)

# The task that makes one attempt (ticketing.tasks), queued by its name: the task calls these services.
SEND_WEBHOOK_TASK = "ticketing.send_webhook"
# An attempt that never reports back (its worker died mid-send) counts as lost this long after it began: far past
# the timeouts. Beat's sweep then queues the delivery again.
ATTEMPT_LEASE = timedelta(minutes=2)
# How much of an endpoint's answer the delivery log keeps.
RESPONSE_EXCERPT = 500
_QUEUED = WebhookDelivery.Status.QUEUED
# name -> function(source) -> the event's `data`: how a delivery the database recorded gets its payload.
_renderers = {}


class WebhookError(Exception):
    """A webhook service said no; `code` is the machine word (ticketing.error_codes)."""

    def __init__(self, code):
        self.code = code
        self.message = error_message(code)
        super().__init__(self.message)


def register_renderer(name, render):
    """Let deliveries recorded by the database with renderer `name` get their `data` from `render(source)`.

    The app that owns the tables registers it (bookings, in its AppConfig.ready): ticketing can't import it.
    """
    _renderers[name] = render


# --- Endpoints ------------------------------------------------------------------------------------------------


def register_webhook_endpoint(*, api_key, url, events, is_active=True):
    """Register an endpoint of `api_key` at `url` for these event types (WebhookEvent values, checked by the
    caller). Returns the endpoint, with its new secret. No lock."""
    return WebhookEndpoint.objects.create(api_key=api_key, url=url, events=sorted(set(events)), is_active=is_active)


def find_webhook_endpoint(*, api_key, endpoint_id):
    """The key's endpoint with this id. Raises WebhookError("not_found") for another key's (or no) endpoint,
    without saying which."""
    endpoint = None
    if 0 < endpoint_id <= BIGINT_MAX:
        endpoint = WebhookEndpoint.objects.filter(api_key=api_key, pk=endpoint_id).first()
    if endpoint is None:
        raise WebhookError("not_found")
    return endpoint


def remove_webhook_endpoint(*, api_key, endpoint_id):
    """Remove the key's endpoint and its delivery log. Raises WebhookError("not_found") as find_webhook_endpoint."""
    find_webhook_endpoint(api_key=api_key, endpoint_id=endpoint_id).delete()


# --- Owing an event -------------------------------------------------------------------------------------------


def record_webhook_event(*, api_key_id, event_type, data, at=None):
    """Owe `event_type` with `data` (JSON-ready) to the active endpoints of `api_key_id` that asked for it (with
    None: to every key's, as for show.changed). Returns the event id, or None when nobody asked.

    Writes the delivery rows in the caller's transaction (so the event is owed exactly when the change commits),
    through ticketing_record_webhook_event. Locks nothing. On commit: queues each delivery's task; if that fails
    (the broker is down), beat's sweep queues it.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT ticketing_record_webhook_event(%s, %s, %s::jsonb, '', NULL, %s)",
            [api_key_id, str(event_type), json.dumps(data), at or timezone.now()],
        )
        (event_id,) = cursor.fetchone()
    if event_id is not None:
        ids = list(WebhookDelivery.objects.filter(event_id=event_id).values_list("pk", flat=True))
        for delivery_id in ids:
            _send_after_commit(delivery_id)
    return event_id


def _send_after_commit(delivery_id):
    # robust: a broker that is down must not fail a request that has committed; the row is still queued.
    database = shards.current()  # the task sends it from the shard whose transaction owed it
    shards.on_commit(
        lambda: current_app.signature(SEND_WEBHOOK_TASK, args=(delivery_id, database)).delay(), robust=True
    )


def dispatch_due_webhooks(*, at=None, batch=500):
    """Queue a task for every delivery that is due: recorded by the database, waiting for its retry, or whose
    task was lost (an attempt's lease ran out). Returns how many. Beat runs it every
    TICKETING_WEBHOOK_SWEEP_SECONDS.

    Locks the batch's rows, skipping any another sweep has, and moves each one's next attempt CLOCK_SLACK on: still
    due for the task queued here, while the next sweeps leave it to that task unless it is lost too (or the workers
    lag behind by more). On commit: queues their tasks.
    """
    at = at or timezone.now()
    with shards.atomic():
        ids = list(
            WebhookDelivery.objects.filter(status=_QUEUED, next_attempt_at__lte=at)
            .order_by("next_attempt_at")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[:batch]
        )
        # Still due for the task (its claim allows CLOCK_SLACK), but not for the sweeps until the lease is over.
        WebhookDelivery.objects.filter(pk__in=ids).update(next_attempt_at=at + CLOCK_SLACK)
        for delivery_id in ids:
            _send_after_commit(delivery_id)
    return len(ids)


def send_webhook_again(*, delivery_id, at=None):
    """Staff send a delivery again (it failed, or the partner lost it): queued afresh with a full set of attempts,
    the same event id and payload. A conditional update, no lock. Raises WebhookError("webhook_queued") for one
    already queued (it goes out with its next attempt). On commit: queues its task.
    """
    at = at or timezone.now()
    with shards.atomic():
        if not queue_again(WebhookDelivery, delivery_id, at=at):
            raise WebhookError("webhook_queued")
        _send_after_commit(delivery_id)


# --- Sending --------------------------------------------------------------------------------------------------


def sign(secret, timestamp, body):
    """The v1 signature of `body` (bytes) sent at `timestamp` (Unix seconds): hex HMAC-SHA256 over
    "<timestamp>.<body>" with the endpoint's secret."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def delivery_body(delivery):
    """The bytes POSTed for a delivery: the same for every attempt and every replay of its event."""
    envelope = {
        "id": str(delivery.event_id),
        "type": delivery.event_type,
        "created_at": delivery.created_at.isoformat().replace("+00:00", "Z"),
        "data": delivery.payload,
    }
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode()


def send_webhook(*, delivery_id, at=None):
    """Make one attempt at a queued delivery. Returns its status after the attempt, or None if it made none.

    Claims the attempt with a conditional update and holds no lock while the endpoint answers: a delivery that is
    not queued, or whose attempt is not due (a retry waits, or another worker's attempt runs), is left alone, so a
    duplicate task sends nothing twice. A 2xx answer delivers it; any other answer, a timeout
    (TICKETING_WEBHOOK_TIMEOUT_SECONDS to connect and again to read) or a refused connection is recorded on the row
    (staff see it) and retried after TICKETING_WEBHOOK_RETRY_SECONDS, doubling each time, with up to a quarter more
    at random (so that an endpoint back from an outage is not hit by every retry at once); after
    TICKETING_WEBHOOK_MAX_ATTEMPTS it is marked failed.
    """
    at = at or timezone.now()
    if not claim_attempt(WebhookDelivery, delivery_id, at=at, lease=ATTEMPT_LEASE):
        return None
    delivery = WebhookDelivery.objects.select_related("endpoint").filter(pk=delivery_id).first()
    if delivery is None:  # its endpoint was removed meanwhile, and its log with it
        return None
    status_code, excerpt, error = None, "", ""
    try:
        answer = _post(delivery)
        status_code, excerpt = answer.status_code, answer.text[:RESPONSE_EXCERPT]
    except Exception as failure:  # a timeout, a refused connection, a payload that can't be made: staff must see it
        error = f"{type(failure).__name__}: {failure}"[:2000]
    answered = {"last_status_code": status_code, "last_response": excerpt, "last_error": error}
    if status_code is not None and 200 <= status_code < 300:
        WebhookDelivery.objects.filter(pk=delivery.pk, status=_QUEUED).update(
            status=WebhookDelivery.Status.DELIVERED, delivered_at=timezone.now(), **answered
        )
        return WebhookDelivery.Status.DELIVERED
    if delivery.attempts >= settings.TICKETING_WEBHOOK_MAX_ATTEMPTS:
        WebhookDelivery.objects.filter(pk=delivery.pk, status=_QUEUED).update(
            status=WebhookDelivery.Status.FAILED, **answered
        )
        logger.warning("Webhook delivery %s failed %s times", delivery.pk, delivery.attempts)
        return WebhookDelivery.Status.FAILED
    WebhookDelivery.objects.filter(pk=delivery.pk, status=_QUEUED).update(
        next_attempt_at=timezone.now() + retry_wait(delivery.attempts), **answered
    )
    return _QUEUED


def _post(delivery):
    """One signed POST of the delivery's body (rendered first, once, if the database recorded it); the answer."""
    if delivery.payload is None:
        delivery.payload = _renderers[delivery.renderer](delivery.source)
        # Rendered once: every later attempt and replay sends these very bytes.
        WebhookDelivery.objects.filter(pk=delivery.pk, payload__isnull=True).update(payload=delivery.payload)
    refuse_private_address(delivery.endpoint.url)
    body = delivery_body(delivery)
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "ticketing-webhooks/1",
        "Webhook-Id": str(delivery.event_id),
        "Webhook-Timestamp": str(timestamp),
        "Webhook-Signature": f"t={timestamp},v1={sign(delivery.endpoint.secret, timestamp, body)}",
    }
    return httpx.post(
        delivery.endpoint.url,
        content=body,
        headers=headers,
        timeout=settings.TICKETING_WEBHOOK_TIMEOUT_SECONDS,
        follow_redirects=False,
    )


class PrivateAddress(Exception):
    """A webhook's address is not on the public internet (see refuse_private_address)."""


def refuse_private_address(url):
    """Raise PrivateAddress unless every address `url`'s host resolves to is a public one.

    A partner chooses where our workers POST: without this, an endpoint at 127.0.0.1:6379, 10.x or 169.254.169.254
    (a cloud's metadata service) would have our servers call inside our own network. Checked when an endpoint is
    registered (API and admin) and again before each attempt, as a name may be pointed elsewhere later. Loopback,
    private, link-local, reserved and multicast addresses are refused unless TICKETING_WEBHOOK_LOCAL_ADDRESSES (on
    with DEBUG: the tests' and the demo's receivers run on this machine).
    """
    if settings.TICKETING_WEBHOOK_LOCAL_ADDRESSES:
        return
    parts = urlsplit(url)
    try:
        found = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, ValueError):
        raise PrivateAddress(f"{parts.hostname} can't be found.") from None
    for *_, address in found:
        ip = ipaddress.ip_address(address[0].split("%")[0])
        if not ip.is_global or ip.is_multicast:
            raise PrivateAddress(f"{parts.hostname} is at {ip}, not an address on the public internet.")


def retry_wait(attempts):
    """How long a delivery waits after its `attempts`-th failed attempt: TICKETING_WEBHOOK_RETRY_SECONDS doubled
    for each attempt before, plus up to a quarter of that at random."""
    wait = settings.TICKETING_WEBHOOK_RETRY_SECONDS * 2 ** (attempts - 1)
    return timedelta(seconds=wait * (1 + random.random() / 4))


def verify_signature(*, secret, header, body, tolerance=300, now=None):
    """True if `header` (a Webhook-Signature) signs `body` with `secret` and its timestamp is within `tolerance`
    seconds of `now`: what a receiver does (docs/webhooks.md shows the same in a few lines)."""
    try:
        parts = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((now or time.time()) - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), parts.get("v1", ""))
