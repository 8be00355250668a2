import uuid

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

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
        WAITING = "Waiting", pgettext_lazy("waiting status", "Waiting")
        SEATS_AVAILABLE = "Seats Available", pgettext_lazy("waiting status", "Seats Available")
        SHOW_FULL = "Show Full", pgettext_lazy("waiting status", "Show Full")
        EXPIRED = "Expired", pgettext_lazy("waiting status", "Expired")
        CANCELLED = "Cancelled", pgettext_lazy("waiting status", "Cancelled")

    id = models.UUIDField(verbose_name=_("ID"), primary_key=True, default=uuid.uuid4, editable=False)
    show = models.ForeignKey(Show, verbose_name=_("show"), on_delete=models.PROTECT, related_name="+", db_index=False)
    api_key = models.ForeignKey(
        ApiKey, verbose_name=_("API key"), on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    session_id = models.CharField(verbose_name=_("session ID"), max_length=128)
    # The website's visitor's network address: served seats count toward its cap as the buyer's own holds do.
    client_address = models.GenericIPAddressField(verbose_name=_("client address"), null=True, blank=True)
    seats_wanted = models.PositiveSmallIntegerField(verbose_name=_("seats wanted"))
    # The category asked for (one of the open seat types); blank: the cheapest that fits, as best available
    # gives when asked for none.
    seat_type = models.CharField(
        verbose_name=_("seat type"),
        max_length=16,
        blank=True,
        default="",
        db_default="",
        choices=[(str(kind), str(kind)) for kind in OPEN_SEAT_TYPES],
        help_text=_("The category asked for; blank: the cheapest that fits."),
    )
    status = models.CharField(verbose_name=_("status"), max_length=16, choices=Status.choices, default=Status.WAITING)
    place = models.BigIntegerField(
        verbose_name=_("place"), help_text=_("Order in the show's line: lower joined earlier.")
    )
    version = models.PositiveIntegerField(verbose_name=_("version"), default=1)
    joined_at = models.DateTimeField(verbose_name=_("joined at"))
    expires_at = models.DateTimeField(
        verbose_name=_("expires at"), help_text=_("When it stops waiting if not served (joined + the maximum wait).")
    )
    ended_at = models.DateTimeField(verbose_name=_("ended at"), null=True, blank=True)
    reservation = models.OneToOneField(
        Reservation,
        verbose_name=_("reservation"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="waiter",
    )

    class Meta:
        verbose_name = _("waiter")
        verbose_name_plural = _("waiters")
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
