import uuid

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from bookings.models import Reservation
from cinemas.models import OPEN_SEAT_TYPES, Show
from ticketing.models import ApiKey


class Waiter(models.Model):
    """One buyer waiting in a show's line for seats held by others to come free.

    The line is strict first come, first served: `place` is handed out under the show's line lock, so it
    follows the order in which joins committed. The version a waiter shows rises whenever anything it sees
    changes (its status, or its position when someone ahead leaves the line), which is what long polls wait on:
    `version` stored here moves with its status alone, and while it waits the database adds the moves ahead of
    it (waiting_waiters, waiting migration 0006), so a move of the line rewrites no waiter behind.
    """

    class Status(models.TextChoices):
        WAITING = "Waiting"
        SEATS_AVAILABLE = "Seats Available"
        SHOW_FULL = "Show Full"
        EXPIRED = "Expired"
        CANCELLED = "Cancelled"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    show = models.ForeignKey(Show, on_delete=models.PROTECT, related_name="+", db_index=False)
    api_key = models.ForeignKey(ApiKey, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    session_id = models.CharField(max_length=128)
    # The website's visitor's network address: served seats count toward its cap as the buyer's own holds do.
    client_address = models.GenericIPAddressField(null=True, blank=True)
    seats_wanted = models.PositiveSmallIntegerField()
    # The category asked for (one of the open seat types); blank: the cheapest that fits, as best available
    # gives when asked for none.
    seat_type = models.CharField(
        max_length=16,
        blank=True,
        default="",
        db_default="",
        choices=[(str(kind), str(kind)) for kind in OPEN_SEAT_TYPES],
        help_text="The category asked for; blank: the cheapest that fits.",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.WAITING)
    place = models.BigIntegerField(help_text=_("Order in the show's line: lower joined earlier."))
    version = models.PositiveIntegerField(default=1)
    joined_at = models.DateTimeField()
    expires_at = models.DateTimeField(help_text=_("When it stops waiting if not served (joined + the maximum wait)."))
    ended_at = models.DateTimeField(null=True, blank=True)
    reservation = models.OneToOneField(
        Reservation, on_delete=models.PROTECT, null=True, blank=True, related_name="waiter"
    )

    class Meta:
        ordering = ["show", "place"]
        constraints = [
            models.UniqueConstraint(fields=["show", "place"], name="waiting_waiter_unique_place"),
            # One place in a show's line per buyer at a time.
            models.UniqueConstraint(
                fields=["show", "api_key", "session_id"],
                condition=Q(status="Waiting"),
                nulls_distinct=False,
                name="waiting_waiter_one_place_per_buyer",
            ),
            # Served means a hold was made for it, and only then.
            models.CheckConstraint(
                condition=Q(status="Seats Available", reservation__isnull=False)
                | (~Q(status="Seats Available") & Q(reservation__isnull=True)),
                name="waiting_waiter_served_has_hold",
            ),
        ]
        indexes = [
            # The head of each show's line, and everyone behind a place.
            models.Index(fields=["show", "place"], condition=Q(status="Waiting"), name="waiting_waiter_in_line"),
            # Waiters past their maximum wait.
            models.Index(fields=["expires_at"], condition=Q(status="Waiting"), name="waiting_waiter_overdue"),
        ]

    def __str__(self):
        return f"{self.session_id} waiting for {self.seats_wanted} ({self.status})"
