import hashlib
import secrets

from django.core.validators import URLValidator
from django.db import models
from django.utils.translation import gettext_lazy as _


def hash_api_key(raw_key):
    return hashlib.sha256(raw_key.encode()).hexdigest()


class ApiKey(models.Model):
    """A partner's key to the public API. Only its SHA-256 is stored; the key itself is shown once."""

    name = models.CharField(verbose_name=_("name"), max_length=100, unique=True)
    prefix = models.CharField(
        verbose_name=_("prefix"),
        max_length=12,
        editable=False,
        help_text=_("The key's first characters, to tell keys apart."),
    )
    key_hash = models.CharField(verbose_name=_("key hash"), max_length=64, unique=True, editable=False)
    rate_per_minute = models.PositiveIntegerField(
        verbose_name=_("rate per minute"), help_text=_("Requests allowed per minute; past it the API answers 429.")
    )
    held_seats_per_show = models.PositiveIntegerField(
        verbose_name=_("held seats per show"),
        null=True,
        blank=True,
        help_text=_(
            "Most seats this key's sessions may hold (not yet paid) in one show at once; past it the API "
            "answers 429. Empty: no cap."
        ),
    )
    is_revoked = models.BooleanField(verbose_name=_("is revoked"), default=False)
    created_at = models.DateTimeField(verbose_name=_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def generate_raw_key():
        return "tk_" + secrets.token_urlsafe(30)


class WebhookEvent(models.TextChoices):
    """The events a partner's endpoint can ask for (docs/webhooks.md says when each is sent and what it carries)."""

    BOOKING_CREATED = "booking.created", _("A booking was made (paid)")
    BOOKING_CANCELLED = "booking.cancelled", _("A booking was cancelled")
    BOOKING_REFUNDED = "booking.refunded", _("A refund reached the card")
    SHOW_CHANGED = "show.changed", _("A show's time, hall or format changed")
    WAITER_SERVED = "waiter.served", _("A waiter was served seats")


def generate_webhook_secret():
    return "whsec_" + secrets.token_urlsafe(32)


class WebhookEndpoint(models.Model):
    """A partner's address that hears of events about its own bookings and waiters (ticketing.webhooks).

    The secret signs each delivery (HMAC-SHA256) and is kept as it is: signing needs it. Its key reads it
    through the API; staff in the admin.
    """

    api_key = models.ForeignKey(
        ApiKey, verbose_name=_("API key"), on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.URLField(verbose_name=_("URL"), max_length=1000, validators=[URLValidator(schemes=["http", "https"])])
    secret = models.CharField(verbose_name=_("secret"), max_length=100, default=generate_webhook_secret, editable=False)
    # A list of WebhookEvent values (jsonb: the database's ticketing_record_webhook_event asks `events ? type`).
    events = models.JSONField(verbose_name=_("events"), default=list)
    is_active = models.BooleanField(
        verbose_name=_("is active"), default=True, help_text=_("Inactive endpoints are sent nothing new.")
    )
    created_at = models.DateTimeField(verbose_name=_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")
        ordering = ["api_key", "pk"]

    def __str__(self):
        return self.url


class WebhookDelivery(models.Model):
    """One event owed to one endpoint, from the moment it happened until it is delivered or given up on.

    The outbox: written in the transaction of the change it tells of (by ticketing_record_webhook_event, from
    Python or from the bookings tables' triggers), so a process dying before its task runs loses nothing:
    beat queues overdue deliveries again. Every attempt and every replay carries the same `event_id`.
    `payload` is the body's `data`; a delivery recorded by the database carries `source` instead, which its
    first attempt renders once (ticketing.webhooks.register_renderer) into `payload`.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued (being sent, or waiting for its next attempt)")
        DELIVERED = "delivered", _("Delivered (the endpoint answered 2xx)")
        FAILED = "failed", _("Failed (every attempt failed; staff can send it again)")

    event_id = models.UUIDField(verbose_name=_("event ID"))
    endpoint = models.ForeignKey(
        WebhookEndpoint, verbose_name=_("endpoint"), on_delete=models.CASCADE, related_name="deliveries"
    )
    event_type = models.CharField(verbose_name=_("event type"), max_length=32, choices=WebhookEvent.choices)
    payload = models.JSONField(verbose_name=_("payload"), null=True, blank=True)
    # What to render the payload from, and with which renderer, when the database recorded the event.
    renderer = models.CharField(verbose_name=_("renderer"), max_length=32, blank=True, default="")
    source = models.JSONField(verbose_name=_("source"), null=True, blank=True)
    status = models.CharField(verbose_name=_("status"), max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(verbose_name=_("attempts"), default=0)
    created_at = models.DateTimeField(verbose_name=_("created at"))
    # When the next attempt is due; while an attempt runs, when it counts as lost (its worker died).
    next_attempt_at = models.DateTimeField(verbose_name=_("next attempt at"))
    last_attempt_at = models.DateTimeField(verbose_name=_("last attempt at"), null=True, blank=True)
    delivered_at = models.DateTimeField(verbose_name=_("delivered at"), null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(verbose_name=_("last answer's status"), null=True, blank=True)
    last_response = models.TextField(verbose_name=_("last answer (the start of its body)"), blank=True)
    last_error = models.TextField(verbose_name=_("last error"), blank=True)

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["event_id", "endpoint"], name="ticketing_webhookdelivery_once_each"),
        ]
        indexes = [
            # Beat's sweep: queued deliveries whose attempt is overdue.
            models.Index(fields=["next_attempt_at"], condition=models.Q(status="queued"), name="ticketing_webhook_due"),
            # The staff's list of deliveries, newest first.
            models.Index(fields=["-created_at"], name="ticketing_webhook_newest"),
        ]

    def __str__(self):
        return f"{self.event_type} {self.event_id}"
