import uuid

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from bookings.models import Reservation
from cinemas.models import OPEN_SEAT_TYPES, OnSale, Show
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


class Room(models.Model):
    """The waiting room in front of an on-sale (cinemas.OnSale): its draw and how far it has admitted.

    The draw: at the opening, a secret is drawn and the visitors who arrived before it are ranked by
    HMAC-SHA256(secret, their id): a uniform shuffle anyone can reproduce from the secret, published once drawn
    (waiting.rooms.draw_order). `last_place` is the last place handed out; `called_through` the last one
    called (admitted, or skipped as gone); `admissions_due` the admissions the rate has earned but not yet used,
    as of `due_at`.
    """

    on_sale = models.OneToOneField(
        OnSale, verbose_name=_("on-sale"), primary_key=True, on_delete=models.CASCADE, related_name="+"
    )
    secret = models.CharField(verbose_name=_("draw secret"), max_length=64, blank=True, default="")
    drawn_at = models.DateTimeField(verbose_name=_("drawn at"), null=True, blank=True)
    drawn_count = models.PositiveIntegerField(
        verbose_name=_("visitors in the draw"), default=0, help_text=_("Who arrived before the opening.")
    )
    last_place = models.BigIntegerField(verbose_name=_("last place handed out"), default=0)
    called_through = models.BigIntegerField(verbose_name=_("called through place"), default=0)
    admissions_due = models.FloatField(verbose_name=_("admissions due"), default=0)
    due_at = models.DateTimeField(verbose_name=_("admissions counted at"), null=True, blank=True)
    admitted = models.PositiveIntegerField(verbose_name=_("admitted"), default=0)

    class Meta:
        verbose_name = _("waiting room")
        verbose_name_plural = _("waiting rooms")
        constraints = [
            models.CheckConstraint(
                condition=Q(called_through__lte=models.F("last_place")), name="waiting_room_calls_given_places"
            ),
            models.CheckConstraint(
                condition=Q(drawn_at__isnull=True) | ~Q(secret=""), name="waiting_room_drawn_with_a_secret"
            ),
        ]

    def __str__(self):
        return str(self.on_sale)


class RoomVisitor(models.Model):
    """One browser (or a partner's session) in an on-sale's waiting room.

    `place` orders admission: none before the draw for those who arrived before the opening (`early`), then
    1..n in the drawn order; after the opening, the next place in arrival order. One active place per buyer
    and per email: the database refuses a second.
    """

    class Status(models.TextChoices):
        WAITING = "Waiting", pgettext_lazy("room status", "Waiting")
        ADMITTED = "Admitted", pgettext_lazy("room status", "Admitted")
        PASS_EXPIRED = "Pass Expired", pgettext_lazy("room status", "Pass Expired")
        LEFT = "Left", pgettext_lazy("room status", "Left")

    id = models.UUIDField(verbose_name=_("ID"), primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: the unique (room, place) one leads with it.
    room = models.ForeignKey(
        Room, verbose_name=_("waiting room"), on_delete=models.CASCADE, related_name="visitors", db_index=False
    )
    api_key = models.ForeignKey(
        ApiKey, verbose_name=_("API key"), on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    session_id = models.CharField(verbose_name=_("session ID"), max_length=128)
    email = models.CharField(verbose_name=_("email"), max_length=254, blank=True, default="")
    client_address = models.GenericIPAddressField(verbose_name=_("client address"), null=True, blank=True)
    early = models.BooleanField(verbose_name=_("arrived before the opening"))
    place = models.BigIntegerField(verbose_name=_("place"), null=True, blank=True)
    status = models.CharField(verbose_name=_("status"), max_length=16, choices=Status.choices, default=Status.WAITING)
    joined_at = models.DateTimeField(verbose_name=_("joined at"))
    admitted_at = models.DateTimeField(verbose_name=_("admitted at"), null=True, blank=True)
    pass_expires_at = models.DateTimeField(verbose_name=_("pass expires at"), null=True, blank=True)
    ended_at = models.DateTimeField(verbose_name=_("ended at"), null=True, blank=True)

    class Meta:
        verbose_name = _("waiting room visitor")
        verbose_name_plural = _("waiting room visitors")
        ordering = ["room", "place"]
        constraints = [
            # Partial: early visitors have no place until the draw, and a plan for another lookup of the room's
            # visitors (the buyer's place) mustn't find this index a cheaper way to read them all.
            models.UniqueConstraint(
                fields=["room", "place"], condition=Q(place__isnull=False), name="waiting_roomvisitor_unique_place"
            ),
            models.UniqueConstraint(
                fields=["room", "api_key", "session_id"],
                condition=Q(status__in=["Waiting", "Admitted"]),
                nulls_distinct=False,
                name="waiting_roomvisitor_one_place_per_buyer",
            ),
            models.UniqueConstraint(
                fields=["room", "email"],
                condition=Q(status__in=["Waiting", "Admitted"]) & ~Q(email=""),
                name="waiting_roomvisitor_one_place_per_email",
            ),
            models.CheckConstraint(
                condition=Q(place__isnull=False) | Q(early=True, status__in=["Waiting", "Left"]),
                name="waiting_roomvisitor_placed_unless_early",
            ),
            models.CheckConstraint(
                condition=~Q(status="Admitted") | Q(pass_expires_at__isnull=False, place__isnull=False),
                name="waiting_roomvisitor_admitted_with_a_pass",
            ),
        ]
        # Few indexes: the draw rewrites every early visitor's row at the opening, each index again for each. The
        # head of a room's line is read on the unique (room, place) one.
        indexes = [
            # Passes running out.
            models.Index(
                fields=["room", "pass_expires_at"], condition=Q(status="Admitted"), name="waiting_roomvisitor_passes"
            ),
        ]

    def __str__(self):
        return f"{self.session_id} in {self.room_id} ({self.status})"


class RoomAddress(models.Model):
    """How many places one network address has taken in a room: the database keeps it within the on-sale's
    joins_per_address (waiting.rooms.join_room counts it up only while it is below)."""

    room = models.ForeignKey(Room, verbose_name=_("waiting room"), on_delete=models.CASCADE, related_name="+")
    address = models.GenericIPAddressField(verbose_name=_("address"))
    joins = models.PositiveIntegerField(verbose_name=_("joins"), default=0)

    class Meta:
        verbose_name = _("waiting room address")
        verbose_name_plural = _("waiting room addresses")
        constraints = [models.UniqueConstraint(fields=["room", "address"], name="waiting_roomaddress_unique")]

    def __str__(self):
        return f"{self.address}: {self.joins}"
