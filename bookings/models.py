import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from cinemas.models import Cinema, MenuItem, Movie, Seat, SeatType, Show
from ticketing.models import ApiKey


class Reservation(models.Model):
    """A buyer's hold of 1-10 seats of one show, and the booking it becomes once paid.

    The seats are its SeatClaim rows. A hold is live until `held_until`, which is `expires_at` (the
    buyer's countdown) plus the grace period, pushed out briefly while a payment is in flight. The buyer may
    push `expires_at` out once, by TICKETING_HOLD_EXTENSION_SECONDS, before the hold lapses (`extensions`).
    """

    class Status(models.TextChoices):
        RESERVED = "Reserved", pgettext_lazy("reservation status", "Reserved")
        BOOKED = "Booked", pgettext_lazy("reservation status", "Booked")
        EXPIRED = "Expired", pgettext_lazy("reservation status", "Expired")
        CANCELLED = "Cancelled", pgettext_lazy("reservation status", "Cancelled")

    class CancelledBy(models.TextChoices):
        CINEMA = "cinema", _("The cinema (staff)")
        BUYER = "buyer", _("The buyer")

    class Channel(models.TextChoices):
        """Where it was sold: online (the website or a partner's API key, which `api_key` tells apart), at a
        cinema's box office, or held by the staff for the house (press, guests), unpaid."""

        ONLINE = "online", _("Online")
        BOX_OFFICE = "box_office", _("Box office")
        HOUSE = "house", _("House seats")

    id = models.UUIDField(verbose_name=_("ID"), primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: the buyer index (show, session_id) below serves lookups by show, and with a second
    # one a planner misled by a hot show's fast-growing table picks the wrong one.
    show = models.ForeignKey(
        Show, verbose_name=_("show"), on_delete=models.PROTECT, related_name="reservations", db_index=False
    )
    # The partner whose API key made the hold; empty for the website's own buyers.
    api_key = models.ForeignKey(
        ApiKey, verbose_name=_("API key"), on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    session_id = models.CharField(verbose_name=_("session ID"), max_length=128)
    # The website visitor's network address, for the cap on what one address may hold (empty for the API).
    client_address = models.GenericIPAddressField(verbose_name=_("client address"), null=True, blank=True)
    status = models.CharField(verbose_name=_("status"), max_length=16, choices=Status.choices, default=Status.RESERVED)
    # What paying charges: the total of its price breakdown, in its show's cinema's currency.
    amount = models.DecimalField(verbose_name=_("amount"), max_digits=10, decimal_places=2)
    currency = models.CharField(verbose_name=_("currency"), max_length=3)
    # Its price breakdown (API.md's price_breakdown, and the terms it was priced on), written with `amount` by
    # the hold functions from bookings_price_breakdown (migration 0016), never by Python: read it through
    # bookings.services.price_breakdown. Empty only for rows written around the hold functions.
    price_breakdown = models.JSONField(verbose_name=_("price breakdown"), null=True, blank=True, editable=False)
    created_at = models.DateTimeField(verbose_name=_("created at"))
    expires_at = models.DateTimeField(verbose_name=_("expires at"))
    held_until = models.DateTimeField(verbose_name=_("held until"))
    booking_code = models.CharField(verbose_name=_("booking code"), max_length=12, unique=True, null=True, blank=True)
    booked_at = models.DateTimeField(verbose_name=_("booked at"), null=True, blank=True)
    ended_at = models.DateTimeField(
        verbose_name=_("ended at"), null=True, blank=True, help_text=_("When it expired or was cancelled.")
    )
    checked_in_at = models.DateTimeField(verbose_name=_("checked in at"), null=True, blank=True)
    # What gift cards pay of it now (its live GiftCardRedemptions), kept by the gift card functions (migration
    # 0019) alone: paying charges the card the amount less this, and the triggers that give gift cards back fire
    # only where it is above 0.
    gift_cards_paid = models.DecimalField(
        verbose_name=_("gift cards paid"), max_digits=10, decimal_places=2, default=0, db_default=0, editable=False
    )
    # Who cancelled a booking (bookings.services.cancellations): the ticket page and the mail say which.
    cancelled_by = models.CharField(
        verbose_name=_("cancelled by"), max_length=8, choices=CancelledBy.choices, blank=True, db_default=""
    )
    # Online unless the staff sold it at the counter or held it for the house; then `sold_by` is who did.
    # db_default: the hold functions (SQL) insert reservations without naming it.
    channel = models.CharField(
        verbose_name=_("sales channel"),
        max_length=12,
        choices=Channel.choices,
        default=Channel.ONLINE,
        db_default=Channel.ONLINE,
    )
    sold_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("sold by"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    # Who the staff hold house seats for ("Press: Daily Planet"), as the box office's list of house seats shows it.
    note = models.CharField(verbose_name=_("note"), max_length=200, blank=True, db_default="")
    # Why the staff cancelled it, as the buyer is told.
    cancellation_reason = models.CharField(
        verbose_name=_("cancellation reason"), max_length=300, blank=True, db_default=""
    )
    # Where the website mails the ticket (given at checkout); API partners deliver their own tickets.
    # db_default: rows written around the ORM (the raw-SQL benchmarks and tests) need not name it.
    email = models.EmailField(verbose_name=_("email"), blank=True, db_default="")
    # The seats this hold counts toward its client's cap while Reserved (ClientHeldSeats): its seats when a
    # cap applied to it, else 0; and the stripe of the client's count they were taken on, which every end of
    # the hold gives them back to. Written by the hold functions (migrations 0009, 0012), never by Python.
    capped_seats = models.PositiveSmallIntegerField(
        verbose_name=_("capped seats"), default=0, db_default=0, editable=False
    )
    cap_stripe = models.PositiveSmallIntegerField(verbose_name=_("cap stripe"), null=True, blank=True, editable=False)
    # How often the buyer made its countdown longer (bookings_extend_hold, migration 0020): once at most, which
    # the check below says to every writer.
    extensions = models.PositiveSmallIntegerField(verbose_name=_("extensions"), default=0, db_default=0, editable=False)

    class Meta:
        verbose_name = _("reservation")
        verbose_name_plural = _("reservations")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="Booked") | Q(booking_code__isnull=False),
                name="bookings_reservation_booked_has_code",
            ),
            models.CheckConstraint(
                condition=Q(held_until__gte=models.F("expires_at")), name="bookings_reservation_grace"
            ),
            models.CheckConstraint(condition=Q(extensions__lte=1), name="bookings_reservation_extended_once"),
        ]
        indexes = [
            # The expiry sweep: live holds in the order they lapse.
            models.Index(fields=["held_until"], condition=Q(status="Reserved"), name="bookings_reservation_lapsing"),
            # A show's live holds by when they lapse: the hold functions' count of a show's lapsed holds, whatever
            # the planner's statistics say.
            models.Index(
                fields=["show", "held_until"], condition=Q(status="Reserved"), name="bookings_show_holds_lapsing"
            ),
            # A buyer's own holds of a show (the 10-seat cap per session and show).
            models.Index(fields=["show", "session_id"], name="bookings_reservation_buyer"),
            # The staff's list of reservations, newest first.
            models.Index(fields=["-created_at"], name="bookings_reservation_newest"),
            # My bookings: an address's bookings, in any case (email__iexact), once they have a booking code.
            models.Index(Upper("email"), condition=Q(booking_code__isnull=False), name="bookings_reservation_email"),
            # One client's unpaid holds of a show (the caps per address and per API key). Partial, so only the
            # cap's own queries, which name the address or key, can use them.
            models.Index(
                fields=["show", "client_address"],
                condition=Q(status="Reserved", client_address__isnull=False),
                name="bookings_reservation_address",
            ),
            models.Index(
                fields=["show", "api_key"],
                condition=Q(status="Reserved", api_key__isnull=False),
                name="bookings_reservation_key_holds",
            ),
        ]

    def __str__(self):
        return f"{self.booking_code or str(self.id)[:8]} ({self.status})"

    @property
    def amount_due(self):
        """What the buyer pays by card or in cash: the amount less what gift cards pay of it."""
        return self.amount - self.gift_cards_paid

    def is_live(self, at):
        return self.status == self.Status.BOOKED or (self.status == self.Status.RESERVED and self.held_until > at)

    def seat_claims(self):
        """The claims of the seats it has, front to back, left to right; once it expired or was cancelled, of
        the seats it had then (released with it, at its `ended_at`). A hold past its time that the sweep has
        not reached yet still has its claims live."""
        claims = self.claims.order_by("seat__y", "seat__x")
        if self.ended_at is None:
            return claims.filter(released_at__isnull=True)
        return claims.filter(released_at=self.ended_at)

    def seat_labels(self):
        """Labels like "F12" of its seats (see seat_claims: those it had, once it ended)."""
        return [f"{row}{number}" for row, number in self.seat_claims().values_list("seat__row_label", "seat__number")]

    def status_at(self, at):
        """The status a buyer sees: a hold past its time reads as Expired before the sweep gets to it."""
        if self.status == self.Status.RESERVED and self.held_until <= at:
            return self.Status.EXPIRED
        return self.status


class SeatClaim(models.Model):
    """One seat of one show claimed by a reservation. A seat of a show with no live claim is free.

    Released claims (`released_at` set) stay as history; the partial unique index allows at most one
    unreleased claim per seat of a show, which is what makes a double sale impossible.
    """

    reservation = models.ForeignKey(
        Reservation, verbose_name=_("reservation"), on_delete=models.CASCADE, related_name="claims"
    )
    show = models.ForeignKey(Show, verbose_name=_("show"), on_delete=models.PROTECT, related_name="seat_claims")
    # The partial unique index below serves lookups by (show, seat); a separate seat index would only cost writes.
    seat = models.ForeignKey(Seat, verbose_name=_("seat"), on_delete=models.PROTECT, related_name="+", db_index=False)
    seat_type = models.CharField(verbose_name=_("seat type"), max_length=16, choices=SeatType.choices)
    price = models.DecimalField(verbose_name=_("price"), max_digits=8, decimal_places=2)
    # The seat map version of this claim's last change (taken from one sequence for all shows).
    version = models.BigIntegerField(verbose_name=_("version"))
    released_at = models.DateTimeField(verbose_name=_("released at"), null=True, blank=True)
    # Whether its reservation is booked: kept on the claim so that the show's counters of booked seats follow
    # it (ShowSeatCount).
    booked = models.BooleanField(verbose_name=_("booked"), default=False, db_default=False)

    class Meta:
        verbose_name = _("seat claim")
        verbose_name_plural = _("seat claims")
        constraints = [
            models.UniqueConstraint(
                fields=["show", "seat"],
                condition=Q(released_at__isnull=True),
                include=["seat_type", "booked"],
                name="bookings_seatclaim_one_live_claim_per_seat",
            ),
        ]

    def __str__(self):
        return f"seat {self.seat_id} of show {self.show_id}"


class ClientHeldSeats(models.Model):
    """One stripe of a client's count of the seats it holds unpaid of a show, for the caps on what a client may
    hold at once.

    A client is an API key, or the website's visitors from one network address (`client` reads "key:12" or
    "address:203.0.113.7"). Its count of a show is split into stripes (escrow; one per 10 seats of its cap, 2
    to 32): each holds some of its seats (`held`) and may hold up to its `allowance`, a share of the cap the
    allowances were computed for (`cap`; none: the next hold recomputes them). held <= allowance on every
    stripe and the allowances sum to at most that cap, so the client holds at most its cap while each hold
    updates one stripe: holds of one client take different stripes and don't wait on each other's commits (or
    for one commit, when every stripe with room is held). A hold that finds no stripe with room locks all of
    them, counts exactly and rebalances (bookings_take_client_seats, migrations 0012 and 0014). A trigger on
    Reservation keeps `held` from its `capped_seats` on its `cap_stripe`, so whatever writes a reservation
    keeps the count; the client's count is the sum of its stripes.
    """

    show = models.ForeignKey(Show, verbose_name=_("show"), on_delete=models.CASCADE, related_name="+", db_index=False)
    client = models.CharField(verbose_name=_("client"), max_length=64)
    stripe = models.PositiveSmallIntegerField(verbose_name=_("stripe"))
    held = models.IntegerField(verbose_name=_("held"))
    allowance = models.IntegerField(verbose_name=_("allowance"))
    cap = models.IntegerField(verbose_name=_("cap"), null=True, blank=True)

    class Meta:
        verbose_name = _("client held seats")
        verbose_name_plural = _("client held seats")
        constraints = [
            models.UniqueConstraint(
                fields=["show", "client", "stripe"], name="bookings_clientheldseats_one_per_stripe"
            ),
            models.CheckConstraint(condition=Q(held__gte=0), name="bookings_clientheldseats_not_negative"),
            models.CheckConstraint(
                condition=Q(held__lte=models.F("allowance")), name="bookings_clientheldseats_within_allowance"
            ),
        ]

    def __str__(self):
        return f"{self.client} holds {self.held} of {self.allowance} of show {self.show_id} (stripe {self.stripe})"


class ShowSeatCount(models.Model):
    """A share of a show's count of live claims of one seat type, and of those booked: the refusals' count.

    Kept by triggers on SeatClaim (migration 0011) in one row per database session (`backend`, its process
    id), so a hold updates a row no other session touches and buyers never wait on each other for it; the
    show's count is the sum of its rows. A refusal sums a few dozen rows instead of counting the show's
    thousands of claims. Rows of a deleted show stay (no foreign key: a cascade deleting claims would add to
    them after their deletion), and cost nothing.
    """

    show = models.ForeignKey(
        Show, verbose_name=_("show"), on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    seat_type = models.CharField(verbose_name=_("seat type"), max_length=16)
    backend = models.IntegerField(verbose_name=_("backend"))
    claimed = models.IntegerField(verbose_name=_("claimed"))
    booked = models.IntegerField(verbose_name=_("booked"))

    class Meta:
        verbose_name = _("show seat count")
        verbose_name_plural = _("show seat counts")
        constraints = [
            models.UniqueConstraint(
                fields=["show", "seat_type", "backend"], name="bookings_showseatcount_one_per_session"
            ),
        ]

    def __str__(self):
        return f"{self.claimed} {self.seat_type} claimed of show {self.show_id} (session {self.backend})"


class ShowSales(models.Model):
    """A share of a show's sales tally, what the staff's sales report (bookings.sales) reads instead of every
    booking's price breakdown: the seats of its standing bookings by channel, its house seats, and the money of
    every sale made (cancelled since too) and of the refunds that succeeded.

    Kept by triggers on Reservation and Payment (migration 0032) in the transaction of each change, with the
    figures of bookings_sales_of (one SQL function: the report's definitions), in one row per database session
    (`backend`, its process id) as ShowSeatCount is: buyers of one show never wait on each other for it. The
    show's tally is the sum of its rows. No foreign key, as ShowSeatCount's.
    """

    show = models.ForeignKey(
        Show, verbose_name=_("show"), on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    backend = models.IntegerField(verbose_name=_("backend"))
    # Seats of the bookings that stand, by channel: the website, partners (online through an API key), the box
    # office; and house seats (never money).
    website = models.IntegerField(verbose_name=_("website seats"), default=0)
    partners = models.IntegerField(verbose_name=_("partners' seats"), default=0)
    box_office = models.IntegerField(verbose_name=_("box office seats"), default=0)
    house = models.IntegerField(verbose_name=_("house seats"), default=0)
    # What the sales made charged (gross, online and at the box office), and of it fees, taxes and discounts.
    gross_online = models.DecimalField(verbose_name=_("gross online"), max_digits=16, decimal_places=2, default=0)
    gross_box_office = models.DecimalField(
        verbose_name=_("gross at the box office"), max_digits=16, decimal_places=2, default=0
    )
    fees = models.DecimalField(verbose_name=_("fees"), max_digits=16, decimal_places=2, default=0)
    taxes = models.DecimalField(verbose_name=_("taxes"), max_digits=16, decimal_places=2, default=0)
    discounts = models.DecimalField(verbose_name=_("discounts"), max_digits=16, decimal_places=2, default=0)
    refunds = models.DecimalField(verbose_name=_("refunds"), max_digits=16, decimal_places=2, default=0)

    class Meta:
        verbose_name = _("show sales tally")
        verbose_name_plural = _("show sales tallies")
        constraints = [models.UniqueConstraint(fields=["show", "backend"], name="bookings_showsales_one_per_session")]

    def __str__(self):
        return f"sales of show {self.show_id} (session {self.backend})"


class Payment(models.Model):
    """One charge or refund at the payment provider. Its id is the provider's idempotency key."""

    class Kind(models.TextChoices):
        CHARGE = "charge", _("Charge")
        REFUND = "refund", _("Refund")

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending (sent, or about to be sent, to the provider)")
        SUCCEEDED = "succeeded", _("Succeeded")
        DECLINED = "declined", _("Declined")
        UNKNOWN = "unknown", _("Unknown (the provider timed out; the reconciler settles it)")
        FAILED = "failed", _("Failed")

    id = models.UUIDField(verbose_name=_("ID"), primary_key=True, default=uuid.uuid4, editable=False)
    reservation = models.ForeignKey(
        Reservation, verbose_name=_("reservation"), on_delete=models.PROTECT, related_name="payments"
    )
    kind = models.CharField(verbose_name=_("kind"), max_length=8, choices=Kind.choices)
    status = models.CharField(verbose_name=_("status"), max_length=12, choices=Status.choices, default=Status.PENDING)
    amount = models.DecimalField(verbose_name=_("amount"), max_digits=10, decimal_places=2)
    currency = models.CharField(verbose_name=_("currency"), max_length=3)
    provider = models.CharField(verbose_name=_("provider"), max_length=30)
    provider_reference = models.CharField(
        verbose_name=_("provider reference"),
        max_length=100,
        blank=True,
        help_text=_("The provider's charge or refund id."),
    )
    refund_of = models.ForeignKey(
        "self", verbose_name=_("refund of"), on_delete=models.PROTECT, null=True, blank=True, related_name="refunds"
    )
    card_last4 = models.CharField(verbose_name=_("card's last 4 digits"), max_length=4, blank=True)
    error_code = models.CharField(verbose_name=_("error code"), max_length=40, blank=True)
    created_at = models.DateTimeField(verbose_name=_("created at"))
    updated_at = models.DateTimeField(verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("payment")
        verbose_name_plural = _("payments")
        ordering = ["created_at"]
        constraints = [
            # At most one charge of a reservation can succeed: a second would be money without a ticket.
            models.UniqueConstraint(
                fields=["reservation"],
                condition=Q(kind="charge", status="succeeded"),
                name="bookings_payment_one_successful_charge",
            ),
        ]
        indexes = [
            # The reconciler: payments whose outcome is not settled yet.
            models.Index(
                fields=["updated_at"], condition=Q(status__in=["pending", "unknown"]), name="bookings_payment_unsettled"
            ),
            # The sales report's refunds (bookings.sales): a few in a hundred payments, found without reading the
            # charges, with their amounts.
            models.Index(
                fields=["reservation"],
                include=["amount"],
                condition=Q(kind="refund", status="succeeded"),
                name="bookings_payment_refunded",
            ),
        ]

    def __str__(self):
        return f"{self.kind} {self.amount} {self.currency} ({self.status})"


class IdempotentRequest(models.Model):
    """A client's Idempotency-Key for one call, and the answer it got, so that a replay gets the same answer."""

    api_key = models.ForeignKey(
        ApiKey, verbose_name=_("API key"), on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    session_id = models.CharField(verbose_name=_("session ID"), max_length=128)
    key = models.CharField(verbose_name=_("key"), max_length=255)
    fingerprint = models.CharField(
        verbose_name=_("fingerprint"), max_length=64, help_text=_("SHA-256 of the call and its parameters.")
    )
    response_status = models.PositiveSmallIntegerField(verbose_name=_("response status"), null=True, blank=True)
    # The answer's exact bytes (JSON text), so a replay is byte-identical to the first answer.
    response_body = models.TextField(verbose_name=_("response body"), null=True, blank=True)
    started_at = models.DateTimeField(verbose_name=_("started at"))
    finished_at = models.DateTimeField(verbose_name=_("finished at"), null=True, blank=True)
    # The hold this key's ReserveSeats made, written in the hold's own transaction (bookings_hold_seats_once): a
    # retry that takes over a key whose first call died before storing its answer answers with that hold instead
    # of holding again.
    reservation = models.ForeignKey(
        Reservation,
        verbose_name=_("reservation"),
        on_delete=models.PROTECT,
        db_index=False,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        verbose_name = _("idempotent request")
        verbose_name_plural = _("idempotent requests")
        constraints = [
            models.UniqueConstraint(
                fields=["api_key", "session_id", "key"],
                nulls_distinct=False,
                name="bookings_idempotentrequest_unique_key",
            ),
        ]

    def __str__(self):
        return self.key


class OutgoingMail(models.Model):
    """One mail to a buyer, from the moment it is owed until it is sent or given up on.

    Written in the transaction that makes the mail owed (the buyer gives an address, staff cancel a booking),
    so a process dying before its task runs loses nothing: beat queues overdue mail again. The task claims
    the row before each attempt (bookings.services.mail), so a duplicate task sends nothing twice.
    """

    class Kind(models.TextChoices):
        TICKET = "ticket", _("Ticket")
        CANCELLED = "cancelled", _("Cancelled and refunded")
        BUYER_CANCELLED = "buyer_cancelled", _("Cancelled by the buyer (with the refund)")
        BOOKINGS_LINK = "bookings_link", _("My bookings: a one-time link")

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued (being sent, or waiting for its next attempt)")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed (every attempt failed; staff can send it again)")
        SKIPPED = "skipped", _("Not sent (the booking was cancelled before its ticket went out)")

    # Every mail is about a booking but the one-time link to an address's bookings, which is about its `link`.
    reservation = models.ForeignKey(
        Reservation,
        verbose_name=_("reservation"),
        on_delete=models.PROTECT,
        related_name="mails",
        null=True,
        blank=True,
    )
    link = models.ForeignKey(
        "BookingsLink", verbose_name=_("link"), on_delete=models.PROTECT, related_name="mails", null=True, blank=True
    )
    kind = models.CharField(verbose_name=_("kind"), max_length=16, choices=Kind.choices)
    address = models.EmailField(verbose_name=_("address"))
    # The language the buyer read the site in when the mail became owed (settings.LANGUAGES): its every
    # attempt, retry and resend by staff is written in it.
    language = models.CharField(verbose_name=_("language"), max_length=8, default="en")
    status = models.CharField(verbose_name=_("status"), max_length=8, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(verbose_name=_("attempts"), default=0)
    last_error = models.TextField(verbose_name=_("last error"), blank=True)
    created_at = models.DateTimeField(verbose_name=_("created at"))
    # When the next attempt is due; while an attempt runs, when it counts as lost (its worker died).
    next_attempt_at = models.DateTimeField(verbose_name=_("next attempt at"))
    last_attempt_at = models.DateTimeField(verbose_name=_("last attempt at"), null=True, blank=True)
    sent_at = models.DateTimeField(verbose_name=_("sent at"), null=True, blank=True)

    class Meta:
        verbose_name = _("outgoing mail")
        verbose_name_plural = _("outgoing mail")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(reservation__isnull=False, link__isnull=True)
                | Q(reservation__isnull=True, link__isnull=False, kind="bookings_link"),
                name="bookings_outgoingmail_about_a_booking_or_a_link",
            ),
        ]
        indexes = [
            # Beat's sweep: queued mail whose attempt is overdue.
            models.Index(fields=["next_attempt_at"], condition=Q(status="queued"), name="bookings_outgoingmail_due"),
            # The staff's list of mail, newest first.
            models.Index(fields=["-created_at"], name="bookings_outgoingmail_newest"),
            # Staff find a buyer's mail by address, in any case (the admin's search, address__iexact).
            models.Index(Upper("address"), name="bookings_outgoingmail_address"),
            # The staff's list of failed mail, newest first (few among millions).
            models.Index(fields=["-created_at"], condition=Q(status="failed"), name="bookings_outgoingmail_failed"),
        ]

    def __str__(self):
        # Translators: a mail as staff read it in the admin, e.g. "Ticket to ann@example.com (sent)".
        text = gettext("%(kind)s to %(address)s (%(status)s)")
        return text % {"kind": self.get_kind_display(), "address": self.address, "status": self.status}


class ReservationAddOn(models.Model):
    """Food or drink added to a hold at checkout: `quantity` of one item of its cinema's menu, at the price then.

    Adding takes the quantity from the item's stock (its CHECK refuses to sell more than there is); a trigger on
    Reservation (migration 0018) gives it back when the hold expires or is cancelled, or the booking is, so
    whatever ends a reservation (the sweep, a claimer taking over a lapsed hold, the buyer, staff) keeps the
    stock exact.
    """

    reservation = models.ForeignKey(
        Reservation, verbose_name=_("reservation"), on_delete=models.CASCADE, related_name="add_ons"
    )
    menu_item = models.ForeignKey(MenuItem, verbose_name=_("menu item"), on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveSmallIntegerField(verbose_name=_("quantity"))
    unit_price = models.DecimalField(verbose_name=_("unit price"), max_digits=8, decimal_places=2)

    class Meta:
        verbose_name = _("reservation add-on")
        verbose_name_plural = _("reservation add-ons")
        ordering = ["reservation_id", "menu_item_id"]
        constraints = [
            models.UniqueConstraint(fields=["reservation", "menu_item"], name="bookings_addon_one_line_per_item"),
            models.CheckConstraint(condition=Q(quantity__gte=1), name="bookings_addon_quantity_positive"),
        ]

    def __str__(self):
        return f"{self.quantity} × {self.menu_item.name}"


# The constraint that keeps a gift card's balance between none and its value (bookings_redeem_gift_card).
GIFT_CARD_BALANCE_CHECK = "bookings_giftcard_balance_in_range"


class GiftCard(models.Model):
    """A prepaid balance in one currency that pays for bookings, in part or in full (the rest by card).

    `balance` is what is left; its CHECK is what keeps it exact when holds race to spend it (migration 0019's
    bookings_redeem_gift_card takes from it by a relative UPDATE and takes less when the CHECK refuses).
    """

    code = models.CharField(
        verbose_name=_("code"), max_length=16, unique=True, help_text=_("16 letters and digits, given to the holder.")
    )
    currency = models.CharField(
        verbose_name=_("currency"), max_length=3, help_text=_("ISO 4217: it pays only for shows priced in it.")
    )
    initial_value = models.DecimalField(verbose_name=_("initial value"), max_digits=10, decimal_places=2)
    balance = models.DecimalField(verbose_name=_("balance"), max_digits=10, decimal_places=2)
    expires_at = models.DateTimeField(
        verbose_name=_("expires at"), null=True, blank=True, help_text=_("Blank: never expires.")
    )
    created_at = models.DateTimeField(verbose_name=_("created at"))
    # When money last came to this card or left it for another database (GiftCardTransfer).
    moved_at = models.DateTimeField(verbose_name=_("moved at"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("gift card")
        verbose_name_plural = _("gift cards")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(balance__gte=0, balance__lte=models.F("initial_value")), name=GIFT_CARD_BALANCE_CHECK
            ),
            models.CheckConstraint(condition=Q(currency__regex=r"^[A-Z]{3}$"), name="bookings_giftcard_currency_iso"),
        ]

    def __str__(self):
        # Translators: a gift card as staff read it in the admin, e.g. "Gift card …X7K2 (25.00 USD)".
        text = gettext("Gift card …%(last4)s (%(balance)s %(currency)s)")
        return text % {"last4": self.code[-4:], "balance": self.balance, "currency": self.currency}


class ShardTransferQuerySet(models.QuerySet):
    def overdue(self, sent_before):
        """The moves sent before `sent_before` whose receiver has not been heard of (landed_at empty), oldest
        first: beat delivers them again."""
        return self.filter(landed_at__isnull=True, created_at__lte=sent_before).order_by("created_at")


class ShardTransfer(models.Model):
    """What two moves between databases of the split by show id share: the sender's row (landed_at empty until
    the receiver has its own) and the receiver's, of one id, which makes receiving it happen once."""

    id = models.UUIDField(primary_key=True)
    source = models.CharField(verbose_name=_("from"), max_length=64)
    destination = models.CharField(verbose_name=_("to"), max_length=64)
    created_at = models.DateTimeField(verbose_name=_("created at"))
    landed_at = models.DateTimeField(verbose_name=_("landed at"), null=True, blank=True)

    objects = ShardTransferQuerySet.as_manager()

    class Meta:
        abstract = True


class GiftCardTransfer(ShardTransfer):
    """Money of one gift card moving between two databases of the split by show id (ticketing.shards).

    A card's balance is kept at home; a hold of a show sold on another shard is paid from that shard's copy of
    the card (same code and terms), to which the money the hold wants is moved first, and from which what is left
    unspent goes back home (bookings.services.gift_cards). A move is two transactions, one on each side: the
    sender takes the amount from its card and writes this row (landed_at empty); the receiver adds it to its card
    and writes the row of the same id (landed_at set), once however often the move is delivered (its primary
    key). The sender then sets its row's landed_at; beat delivers again the rows whose sender died before that.
    """

    code = models.CharField(verbose_name=_("code"), max_length=16)
    amount = models.DecimalField(verbose_name=_("amount"), max_digits=10, decimal_places=2)

    class Meta:
        verbose_name = _("gift card transfer")
        verbose_name_plural = _("gift card transfers")
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="bookings_giftcardtransfer_positive")]
        indexes = [
            models.Index(
                fields=["created_at"], condition=Q(landed_at__isnull=True), name="bookings_gctransfer_unlanded"
            )
        ]

    def __str__(self):
        return f"{self.amount} of …{self.code[-4:]} from {self.source} to {self.destination}"


class GiftCardRedemption(models.Model):
    """What one gift card paid towards one reservation. Given back to the card (`returned_at`) when the hold
    ends unpaid (a trigger, migration 0019) or the booking is cancelled (the cancellation's refund)."""

    gift_card = models.ForeignKey(
        GiftCard, verbose_name=_("gift card"), on_delete=models.PROTECT, related_name="redemptions"
    )
    reservation = models.ForeignKey(
        Reservation, verbose_name=_("reservation"), on_delete=models.PROTECT, related_name="gift_card_redemptions"
    )
    amount = models.DecimalField(verbose_name=_("amount"), max_digits=10, decimal_places=2)
    created_at = models.DateTimeField(verbose_name=_("created at"))
    returned_at = models.DateTimeField(verbose_name=_("returned at"), null=True, blank=True)

    class Meta:
        verbose_name = _("gift card redemption")
        verbose_name_plural = _("gift card redemptions")
        ordering = ["created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="bookings_giftcardredemption_positive"),
            # A card is redeemed once per hold; redeeming it again adds to that line.
            models.UniqueConstraint(
                fields=["gift_card", "reservation"],
                condition=Q(returned_at__isnull=True),
                name="bookings_giftcardredemption_one_live_per_hold",
            ),
        ]

    def __str__(self):
        return f"{self.amount} from {self.gift_card} for {self.reservation_id}"


class PromoCode(models.Model):
    """A code that takes a percentage or a fixed amount off a hold's tickets (never the fee), set by staff.

    Buyers type it in any case. It applies within its validity window, to shows of its movies, cinemas and
    shows (each left empty: any), up to `max_uses` holds and bookings in all and `max_uses_per_buyer` per buyer
    (an API key and session_id, or a website session: the identity a hold is the buyer's by). `used` counts
    its live redemptions, kept by the database alone (bookings migration 0017): a redemption is counted when
    it is applied to a live hold and given back when that hold lapses or is cancelled, or the buyer removes
    the code; a booking keeps it. The conditional update that counts it and the CHECK constraints make the
    limits exact however many buyers redeem at once, like the seat claims.
    """

    class Kind(models.TextChoices):
        PERCENT = "percent", _("Percentage of the tickets")
        FIXED = "fixed", _("Fixed amount off the tickets")

    code = models.CharField(
        verbose_name=_("code"), max_length=32, help_text=_("What buyers type (any case): letters, digits, - and _.")
    )
    kind = models.CharField(verbose_name=_("kind"), max_length=8, choices=Kind.choices, default=Kind.PERCENT)
    value = models.DecimalField(
        verbose_name=_("value"),
        max_digits=8,
        decimal_places=2,
        help_text=_("The percentage (e.g. 20 for 20 %), or the amount off."),
    )
    currency = models.CharField(
        verbose_name=_("currency"),
        max_length=3,
        blank=True,
        help_text=_("For a fixed amount: its ISO 4217 currency; it applies to holds in it."),
    )
    valid_from = models.DateTimeField(verbose_name=_("valid from"), null=True, blank=True)
    valid_until = models.DateTimeField(verbose_name=_("valid until"), null=True, blank=True)
    max_uses = models.PositiveIntegerField(
        verbose_name=_("max uses"), null=True, blank=True, help_text=_("In all; empty: no limit.")
    )
    max_uses_per_buyer = models.PositiveIntegerField(
        verbose_name=_("max uses per buyer"), null=True, blank=True, help_text=_("Empty: no limit.")
    )
    stackable = models.BooleanField(
        verbose_name=_("stackable"), default=False, help_text=_("May be used together with other stackable codes.")
    )
    movies = models.ManyToManyField(
        Movie, verbose_name=_("movies"), blank=True, related_name="+", help_text=_("Empty: every movie.")
    )
    cinemas = models.ManyToManyField(
        Cinema, verbose_name=_("cinemas"), blank=True, related_name="+", help_text=_("Empty: every cinema.")
    )
    shows = models.ManyToManyField(
        Show, verbose_name=_("shows"), blank=True, related_name="+", help_text=_("Empty: every show.")
    )
    # Live redemptions (holds and bookings holding it), written by the promo code functions, never by Python.
    used = models.IntegerField(verbose_name=_("used"), default=0, db_default=0, editable=False)

    class Meta:
        verbose_name = _("promo code")
        verbose_name_plural = _("promo codes")
        ordering = ["code"]
        constraints = [
            models.UniqueConstraint(
                Upper("code"),
                name="bookings_promocode_code_any_case",
                violation_error_message=_("A promo code with this code already exists (in any case)."),
            ),
            models.CheckConstraint(condition=Q(code__regex=r"^[A-Za-z0-9_-]+$"), name="bookings_promocode_code_chars"),
            models.CheckConstraint(condition=Q(value__gt=0), name="bookings_promocode_value_positive"),
            models.CheckConstraint(
                condition=Q(kind="fixed", currency__regex=r"^[A-Z]{3}$") | Q(kind="percent", value__lte=100),
                name="bookings_promocode_kind_value",
            ),
            models.CheckConstraint(condition=Q(used__gte=0), name="bookings_promocode_used_not_negative"),
            models.CheckConstraint(
                condition=Q(max_uses__isnull=True) | Q(used__lte=models.F("max_uses")),
                name="bookings_promocode_within_max_uses",
            ),
            models.CheckConstraint(
                condition=Q(max_uses_per_buyer__isnull=True) | Q(max_uses_per_buyer__gte=1),
                name="bookings_promocode_buyer_limit_positive",
            ),
        ]

    def __str__(self):
        return self.code


class PromoBuyerUses(models.Model):
    """How many live redemptions of a promo code one buyer has (`buyer`: "key:<id>:<session>" or
    "site:<session>"), kept by the promo code functions for its per-buyer limit."""

    promo_code = models.ForeignKey(
        PromoCode, verbose_name=_("promo code"), on_delete=models.CASCADE, related_name="+", db_index=False
    )
    buyer = models.CharField(verbose_name=_("buyer"), max_length=160)
    used = models.IntegerField(verbose_name=_("used"))
    # On a shard's copy of a home's code: the uses moved here for this buyer (PromoUseTransfer) and not sent back;
    # those more than `used` go home. Always 0 at home.
    granted = models.IntegerField(verbose_name=_("granted"), default=0, db_default=0)

    class Meta:
        verbose_name = _("promo buyer uses")
        verbose_name_plural = _("promo buyer uses")
        constraints = [
            models.UniqueConstraint(fields=["promo_code", "buyer"], name="bookings_promobuyeruses_one_per_buyer"),
            models.CheckConstraint(condition=Q(used__gte=0), name="bookings_promobuyeruses_not_negative"),
        ]

    def __str__(self):
        return f"{self.buyer}: {self.used} of {self.promo_code_id}"


class PromoUseTransfer(ShardTransfer):
    """Uses of one promo code by one buyer moving between two databases of the split by show id (ticketing.shards).

    A code's counts (`used`, its buyers') are the home's, where its limits are kept. A hold of a show on another
    shard takes the code from that shard's copy (its terms, without limits): a use is counted at home and moved
    to the copy, in the transaction that applies it there (bookings.services.promo_codes); a use the copy no
    longer needs (its hold lapsed, was cancelled or took the code off) goes back, and home counts it no more.
    Sent and received as a GiftCardTransfer is: once by its id, delivered again by beat if its sender died.
    """

    code = models.CharField(verbose_name=_("code"), max_length=32)
    buyer = models.CharField(verbose_name=_("buyer"), max_length=160)
    uses = models.IntegerField(verbose_name=_("uses"))

    class Meta:
        verbose_name = _("promo code use transfer")
        verbose_name_plural = _("promo code use transfers")
        constraints = [models.CheckConstraint(condition=Q(uses__gt=0), name="bookings_promousetransfer_positive")]
        indexes = [
            models.Index(
                fields=["created_at"], condition=Q(landed_at__isnull=True), name="bookings_putransfer_unlanded"
            )
        ]

    def __str__(self):
        return f"{self.uses} use(s) of {self.code} by {self.buyer} from {self.source} to {self.destination}"


class PromoRedemption(models.Model):
    """One use of a promo code by one hold; `released_at` once given back (the hold lapsed or was cancelled, or
    the buyer removed the code). A hold holds a code at most once."""

    promo_code = models.ForeignKey(
        PromoCode, verbose_name=_("promo code"), on_delete=models.PROTECT, related_name="redemptions"
    )
    reservation = models.ForeignKey(
        Reservation, verbose_name=_("reservation"), on_delete=models.CASCADE, related_name="promo_redemptions"
    )
    buyer = models.CharField(verbose_name=_("buyer"), max_length=160)
    created_at = models.DateTimeField(verbose_name=_("created at"))
    released_at = models.DateTimeField(verbose_name=_("released at"), null=True, blank=True)

    class Meta:
        verbose_name = _("promo redemption")
        verbose_name_plural = _("promo redemptions")
        constraints = [
            models.UniqueConstraint(
                fields=["reservation", "promo_code"],
                condition=Q(released_at__isnull=True),
                name="bookings_promoredemption_once_per_hold",
            ),
        ]

    def __str__(self):
        return f"{self.promo_code_id} on {self.reservation_id}"


class BookingsLink(models.Model):
    """A one-time link to an address's bookings ("My bookings"), mailed to that address: proof of the mailbox.

    Its id is signed into the link (bookings.links); it opens once, until `expires_at`: opening it is a conditional
    UPDATE that sets `used_at` only while it is NULL, so two clicks (or two devices) can't both open it.
    """

    id = models.UUIDField(verbose_name=_("ID"), primary_key=True, default=uuid.uuid4, editable=False)
    address = models.EmailField(verbose_name=_("address"))
    created_at = models.DateTimeField(verbose_name=_("created at"))
    expires_at = models.DateTimeField(verbose_name=_("expires at"))
    used_at = models.DateTimeField(verbose_name=_("used at"), null=True, blank=True)

    class Meta:
        verbose_name = _("bookings link")
        verbose_name_plural = _("bookings links")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(expires_at__gt=models.F("created_at")), name="bookings_bookingslink_expires_later"
            ),
            models.CheckConstraint(
                condition=Q(used_at__isnull=True) | Q(used_at__lt=models.F("expires_at")),
                name="bookings_bookingslink_used_in_time",
            ),
        ]

    def __str__(self):
        return f"link to the bookings of {self.address} ({'used' if self.used_at else 'unused'})"
