"""On-sales: the shows a waiting room stands in front of (waiting.rooms), and the passes it admits people with.

- `mark_on_sale` is how staff put a show, or every show of a movie in a city, behind a waiting room.
- `gate_for` / `agate_for` tell the hold path whether a show is behind a room now (a per-process copy of the
  rooms in force, read again every GATE_SECONDS: the hold path must not pay a query for it).
- `admission_pass` / `pass_admits`: a pass is signed (Django's signing, the site's secret), names the on-sale,
  the visitor and the buyer it was given to, and carries its expiry: the hold path checks it without the
  database, and a pass copied to another session or show admits nobody.
"""

import hashlib
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.core import signing
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext

from cinemas.models import ON_SALE_OVERLAP_CONSTRAINT, OnSaleShow, Show
from ticketing.lean import on_a_thread

# How stale a process's copy of the rooms in force may be: a room marked (or ended) reaches every process's hold
# path within this. Staff mark on-sales ahead of their opening.
GATE_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Gate:
    """An on-sale's room in front of a show, as the hold path needs it."""

    on_sale_id: int
    queue_opens_at: datetime
    opens_at: datetime
    closes_at: datetime

    def is_open(self, at):
        return at >= self.opens_at


# --- Marking --------------------------------------------------------------------------------------------------


def mark_on_sale(on_sale):
    """Save `on_sale` (new or changed) and list the shows its room stands in front of: its show, or every show of
    its movie in its city that starts after the sale opens. `closes_at` left empty: when the last of them starts.

    Locks the on-sale's shows' rows in OnSaleShow (replaced). Raises ValidationError: times out of order, no show
    to sell, a show already behind another room at that time (the database's exclusion constraint decides a
    race). On commit: every process of this one reads the rooms afresh (others within GATE_SECONDS).
    """
    if on_sale.show_id is not None:
        on_sale.movie_id = on_sale.show.movie_id
        on_sale.city = None
        shows = Show.objects.filter(pk=on_sale.show_id, starts_at__gt=on_sale.opens_at)
    elif on_sale.city_id is not None and on_sale.movie_id is not None:
        shows = Show.objects.filter(
            movie_id=on_sale.movie_id, hall__cinema__city_id=on_sale.city_id, starts_at__gt=on_sale.opens_at
        )
    else:
        raise ValidationError(gettext("Choose one show, or a movie and a city."))
    show_ids = list(shows.values_list("pk", flat=True))
    if not show_ids:
        raise ValidationError(gettext("No show starts after this sale opens: there is nothing to sell."))
    if on_sale.closes_at is None:
        on_sale.closes_at = shows.aggregate(last=Max("starts_at"))["last"]
    if not on_sale.queue_opens_at <= on_sale.opens_at < on_sale.closes_at:
        raise ValidationError(
            gettext("The waiting room must open no later than the sale, and the sale before the room closes.")
        )
    try:
        with transaction.atomic():
            on_sale.full_clean(exclude=["movie", "closes_at"])
            on_sale.save()
            OnSaleShow.objects.filter(on_sale=on_sale).delete()
            OnSaleShow.objects.bulk_create(
                OnSaleShow(
                    on_sale=on_sale, show_id=show_id, queue_opens_at=on_sale.queue_opens_at, closes_at=on_sale.closes_at
                )
                for show_id in show_ids
            )
    except IntegrityError as error:
        if ON_SALE_OVERLAP_CONSTRAINT in str(error):
            raise ValidationError(
                gettext("A show of this on-sale is already in another on-sale's waiting room at that time.")
            ) from None
        raise
    forget_gates()
    transaction.on_commit(forget_gates)
    return on_sale


# --- The rooms in force, per process ------------------------------------------------------------------------------


class _Gates:
    """This process's copy of the rooms in force: show id -> its Gates (one per on-sale, in time order)."""

    def __init__(self):
        self.by_show = {}
        self.read_at = None
        self.lock = threading.Lock()

    def fresh(self):
        return self.read_at is not None and time.monotonic() - self.read_at < GATE_SECONDS

    def read(self):
        now = timezone.now()
        rows = (
            OnSaleShow.objects.filter(closes_at__gt=now)
            .order_by("queue_opens_at")
            .values_list("show_id", "on_sale_id", "on_sale__queue_opens_at", "on_sale__opens_at", "closes_at")
        )
        by_show = {}
        for show_id, on_sale_id, queue_opens_at, opens_at, closes_at in rows:
            by_show.setdefault(show_id, []).append(Gate(on_sale_id, queue_opens_at, opens_at, closes_at))
        with self.lock:
            self.by_show, self.read_at = by_show, time.monotonic()

    def of(self, show_id, at):
        for gate in self.by_show.get(show_id, ()):
            if at < gate.closes_at:
                return gate
        return None


_gates = _Gates()


def forget_gates():
    """Read the rooms in force afresh at the next hold (this process)."""
    _gates.read_at = None


def gate_for(show_id, at):
    """The room in front of the show at `at` (a Gate), or None when it sells without one. From the moment an
    on-sale is marked until it closes, its shows have one (before the opening, nobody is admitted)."""
    if not _gates.fresh():
        _gates.read()
    return _gates.of(show_id, at)


async def agate_for(show_id, at):
    """gate_for on the event loop: the copy is read on a thread, once per GATE_SECONDS (through Django: the
    request's thread and connection; on the front: a pool thread that gives its connection back, on_a_thread)."""
    if not _gates.fresh():
        await on_a_thread(_gates.read)()
    return _gates.of(show_id, at)


# --- Passes -------------------------------------------------------------------------------------------------------

PASS_SALT = "cinemas.on_sales.admission-pass"


def _buyer_digest(buyer):
    """Binds a pass to its buyer without writing the session id into a token that travels."""
    return hashlib.sha256(f"{buyer.api_key_id}:{buyer.session_id}".encode()).hexdigest()[:24]


def admission_pass(*, on_sale_id, visitor_id, buyer, expires_at):
    """The signed pass the room gives an admitted visitor: good for `buyer`'s holds of the on-sale's shows until
    `expires_at`. The same arguments always sign to the same pass."""
    payload = [on_sale_id, str(visitor_id), _buyer_digest(buyer), int(expires_at.timestamp())]
    return signing.Signer(salt=PASS_SALT).sign_object(payload)


def _payload(token):
    """The pass's `[on_sale_id, visitor_id, buyer digest, expiry]` when its signature holds, else None."""
    if not isinstance(token, str) or not token or len(token) > 512:
        return None
    try:
        payload = signing.Signer(salt=PASS_SALT).unsign_object(token)
    except (signing.BadSignature, ValueError, TypeError):
        return None
    valid = isinstance(payload, list) and len(payload) == 4 and isinstance(payload[3], int)
    return payload if valid else None


def read_pass(token):
    """`(on_sale_id, visitor_id, expires_at)` of a pass whose signature holds, else None. Locks nothing."""
    payload = _payload(token)
    if payload is None:
        return None
    on_sale_id, visitor_id, _digest, expires = payload
    return on_sale_id, visitor_id, datetime.fromtimestamp(expires, tz=UTC)


def pass_admits(token, *, on_sale_id, buyer, at):
    """True when `token` is a pass of this on-sale's room, given to this buyer, not yet expired at `at`."""
    payload = _payload(token)
    if payload is None:
        return False
    pass_on_sale, _visitor, digest, expires = payload
    return pass_on_sale == on_sale_id and digest == _buyer_digest(buyer) and at.timestamp() < expires
