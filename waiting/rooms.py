"""The waiting room in front of an on-sale (cinemas.OnSale): joining it, the draw at the opening, admitting at
the on-sale's rate with signed passes, and leaving. The rules a moviegoer relies on (README, "On-sale day"):

- who arrives from the room's opening until the sale opens gets a random place at the opening: the visitors are
  ranked by HMAC-SHA256 of a secret drawn then (a uniform shuffle, reproducible from the secret: draw_order);
- who arrives after the opening goes to the back, in the order their joins commit;
- one place per browser (a partner's session) and per email where given; the same browser coming back (another
  tab, a reload, a reconnect) gets the same place;
- a place is kept while its visitor is away for up to TICKETING_ROOM_GRACE_SECONDS; one away longer when called
  is passed over (Left) and may join again at the back;
- the room admits `admissions_per_minute`, in place order, each with a pass good for `pass_seconds` (the hold
  path refuses the on-sale's shows without one: bookings.services.refuse_unadmitted); a pass that runs out
  unused gives its admission to the next in line.

The room's row orders everything: joins before the opening lock it FOR SHARE (side by side, they need no place
yet), the draw, later joins and admissions lock it FOR NO KEY UPDATE (one at a time). So a join before the
opening commits before the draw and is in it, or finds the room drawn and joins at the back. PostgreSQL holds
every place, admission and pass expiry; Redis only remembers when each visitor was last seen (a Redis that lost
it passes nobody over: missing means present).
"""

import hashlib
import hmac
import json
import logging
import math
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.db import connection, connections, transaction
from django.db.models import TextField
from django.db.models.functions import Cast
from django.utils import timezone

from bookings.services.holds import REFUSAL_SQLSTATE, acall_function, call_function
from cinemas.models import OnSale, OnSaleShow
from cinemas.on_sales import admission_pass
from ticketing import shards
from ticketing.broadcast import send_to_groups
from ticketing.buyers import Buyer
from ticketing.cached_reads import CACHE_ERRORS
from ticketing.error_codes import error_message
from ticketing.lean import on_a_pool_thread, redis_client
from ticketing.numbers import whole_number
from waiting.models import Room, RoomVisitor

logger = logging.getLogger(__name__)

Status = RoomVisitor.Status
ACTIVE = (Status.WAITING, Status.ADMITTED)

# The most admissions the rate saves up while a room's clock was not ticking (a worker restarting): after a pause,
# the room admits this many seconds' worth at once, never the whole pause's.
BURST_SECONDS = 5


class RoomError(Exception):
    """The room said no. `code` is the machine word, a key of ticketing.error_codes.ERROR_CODES."""

    def __init__(self, code, **details):
        self.code = code
        self.message = error_message(code, **details)
        self.extra = details.get("extra") or {}
        super().__init__(self.message)


# --- Reading ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Standing:
    """A visitor as its page and the API show it. `position`: 1 when next to be admitted, None when not (yet)
    in line; `wait_seconds`: at the room's rate. `version` rises whenever any of it may have changed (the room
    moved, the visitor's status changed): what long polls wait on."""

    visitor_id: uuid.UUID
    on_sale_id: int
    status: str
    place: int | None
    position: int | None
    wait_seconds: int | None
    opens_at: datetime
    admission_pass: str | None
    pass_expires_at: datetime | None
    version: int


_STATUS_RANK = {Status.WAITING: 0, Status.ADMITTED: 1, Status.PASS_EXPIRED: 2, Status.LEFT: 3}


def room_version(room):
    """Rises as the room moves: the draw, then every call of a place."""
    return room.called_through + (1 if room.drawn_at else 0)


def standing_of(visitor, room, on_sale, *, at=None):
    """The visitor's Standing (its pass, when admitted: give it to the visitor's own buyer only)."""
    return standing_when(visitor, on_sale, called_through=room.called_through, version=room_version(room), at=at)


def standing_when(visitor, on_sale, *, called_through, version, at=None):
    """The visitor's Standing once its room has called through place `called_through` and is at `version`
    (room_version), as a "room.moved" message says: a live page's socket makes it from the visitor it read
    and the room's messages, without reading again (waiting.room_live)."""
    at = at or timezone.now()
    position = wait = None
    if visitor.status == Status.WAITING and visitor.place is not None:
        position = max(1, visitor.place - called_through)
        wait = math.ceil(position * 60 / on_sale.admissions_per_minute)
    admitted = visitor.status == Status.ADMITTED and visitor.pass_expires_at > at
    token = None
    if admitted:
        buyer = Buyer(api_key_id=visitor.api_key_id, session_id=visitor.session_id)
        token = admission_pass(
            on_sale_id=on_sale.pk, visitor_id=visitor.pk, buyer=buyer, expires_at=visitor.pass_expires_at
        )
    return Standing(
        visitor_id=visitor.pk,
        on_sale_id=on_sale.pk,
        status=visitor.status if visitor.status != Status.ADMITTED or admitted else Status.PASS_EXPIRED,
        place=visitor.place,
        position=position,
        wait_seconds=wait,
        opens_at=on_sale.opens_at,
        admission_pass=token,
        pass_expires_at=visitor.pass_expires_at if admitted else None,
        version=4 * version + _STATUS_RANK[visitor.status],
    )


def find_visitor(*, buyer, visitor_id):
    """The buyer's own visitor with its room and on-sale, or RoomError("not_found"): another's is never revealed."""
    visitor = (
        RoomVisitor.objects.select_related("room__on_sale")
        .filter(pk=visitor_id, api_key_id=buyer.api_key_id, session_id=buyer.session_id)
        .first()
    )
    if visitor is None:
        raise RoomError("not_found")
    return visitor


def read_standing(*, buyer, visitor_id, at=None):
    """The buyer's own Standing in its room (one query), or RoomError("not_found"). Notes the visitor as seen."""
    return seen_standing(find_visitor(buyer=buyer, visitor_id=visitor_id), at=at)


def seen_standing(visitor, *, at=None):
    """The Standing of a visitor read with its room and on-sale (find_visitor, active_visitor), noting it as seen:
    its buyer is asking."""
    note_seen(visitor)
    return standing_of(visitor, visitor.room, visitor.room.on_sale, at=at)


def read_visitors(visitor_ids):
    """The visitors of `visitor_ids` that exist, each with its room and on-sale, by id (str): one query."""
    visitors = RoomVisitor.objects.select_related("room__on_sale").filter(pk__in=visitor_ids)
    return {str(visitor.pk): visitor for visitor in visitors}


def active_visitor(*, buyer, on_sale_id):
    """The buyer's place in the on-sale's room (Waiting or Admitted), or None."""
    return (
        RoomVisitor.objects.select_related("room__on_sale")
        .filter(room_id=on_sale_id, api_key_id=buyer.api_key_id, session_id=buyer.session_id, status__in=ACTIVE)
        .first()
    )


# --- Presence (Redis, advisory) ---------------------------------------------------------------------------------------


def _seen_key(visitor_id):
    return f"room-seen:{visitor_id}"


def note_seen(visitor, *, at=None):
    """Remember that the visitor is here (its page is open, its partner asks): a day, in the cache, as whole
    seconds (which the cache stores as they are, so the lean path writes the same with Redis alone: anote_seen).
    Errors are logged: a visitor not noted is only never passed over as gone."""
    note_all_seen([visitor.pk], at=at)


def note_all_seen(visitor_ids, *, at=None):
    """note_seen for each of `visitor_ids`, in one cache call (the open pages' sockets, gathered)."""
    seen = _seen_value(at)
    try:
        cache.set_many({_seen_key(visitor_id): seen for visitor_id in visitor_ids}, timeout=SEEN_SECONDS)
    except CACHE_ERRORS:  # presence is advisory: the cache out of reach must not refuse a visitor
        logger.warning("Could not note room visitors %s as seen", list(visitor_ids)[:10], exc_info=True)


def last_seen(visitor_id):
    """When the visitor was last noted as seen (a POSIX timestamp), or None if the cache does not know."""
    return cache.get(_seen_key(visitor_id))


async def anote_seen(visitor_id, *, at=None):
    """note_seen on the event loop: one SET with the loop's Redis client (without Redis, on a thread)."""
    if not settings.REDIS_URL:
        await sync_to_async(note_all_seen)([visitor_id], at=at)
        return
    try:
        await redis_client().set(cache.make_key(_seen_key(visitor_id)), _seen_value(at), ex=SEEN_SECONDS)
    except CACHE_ERRORS:
        logger.warning("Could not note room visitor %s as seen", visitor_id, exc_info=True)


SEEN_SECONDS = 24 * 3600


def _seen_value(at):
    return int((at or timezone.now()).timestamp())


def _gone(visitor_ids, at):
    """The visitors last seen longer ago than the grace. Unknown to the cache (never noted, or the cache lost
    it): present."""
    if not visitor_ids:
        return set()
    try:
        seen = cache.get_many([_seen_key(visitor_id) for visitor_id in visitor_ids])
    except CACHE_ERRORS:
        logger.warning("Room presence out of reach: passing nobody over", exc_info=True)
        return set()
    since = at.timestamp() - settings.TICKETING_ROOM_GRACE_SECONDS
    return {visitor_id for visitor_id in visitor_ids if seen.get(_seen_key(visitor_id), math.inf) < since}


# --- Joining ----------------------------------------------------------------------------------------------------------


def _locked_room(room_id, *, skip_locked=False):
    """The room with its on-sale, its row locked FOR NO KEY UPDATE until commit (the draw and admissions, one at
    a time; early joins hold it FOR SHARE in waiting_join_room). With `skip_locked`, None when another holds it."""
    with connection.cursor() as cursor:
        skip = " SKIP LOCKED" if skip_locked else ""
        cursor.execute(f"SELECT 1 FROM waiting_room WHERE on_sale_id = %s FOR NO KEY UPDATE{skip}", [room_id])
        if cursor.fetchone() is None and skip_locked:
            return None
    return Room.objects.select_related("on_sale").get(pk=room_id)


def room_of(on_sale):
    """The on-sale's Room, made on first use."""
    room, _ = Room.objects.get_or_create(on_sale=on_sale)
    return room


def normalized_email(email):
    return (email or "").strip().lower()


JOIN_FUNCTION = "waiting_join_room"
# What waiting_join_room (waiting migration 0011) says when the caller must call again (draw_first: after drawing
# the room; drawn_meanwhile: as a late arrival): no refusal, so not one of bookings_refuse's.
JOIN_AGAIN_SQLSTATE = "TKR02"
JOIN_ATTEMPTS = 3


def join_room(*, buyer, on_sale, email="", at=None):
    """A place in the on-sale's waiting room for the buyer: `(visitor, created)`, the visitor as a RoomVisitor
    with its `room` and the room's `on_sale` filled in as far as standing_of needs them (not saved objects).

    The buyer's place if it has one (Waiting or Admitted: another tab, a reload); else a new one, without a place
    before the opening (the draw gives it) or at the back after. One call of waiting_join_room (waiting migration
    0011), its own transaction: locks the room's row (FOR SHARE before the opening, else FOR NO KEY UPDATE) and
    counts a website visitor's network address (RoomAddress) up to the on-sale's cap, then notes it seen. A join
    after the opening that finds the room undrawn draws it (_draw, under the room's lock) and joins again.
    Raises RoomError: not_found (no such on-sale), room_not_open, room_closed, email_in_room (another browser
    has a place with that email), room_address_cap (429), retry_join (the buyer's own other tab won every race).
    """
    at = at or timezone.now()
    arguments = _join_arguments(buyer, on_sale.pk, email, at)
    for _attempt in range(JOIN_ATTEMPTS):
        try:
            row = call_function(JOIN_FUNCTION, *arguments, refusal_of=_join_refusal)
        except _JoinAgain as again:
            if again.draw_first:
                _draw_due(on_sale.pk, at)
            arguments[-1] = arguments[-1] or again.late
            continue
        visitor, created = _joined(buyer, on_sale.pk, row)
        note_seen(visitor, at=at)
        return visitor, created
    raise RoomError("retry_join")


async def ajoin_room(*, buyer, on_sale, email="", at=None):
    """join_room on the lean path's async pool (ticketing.lean): the same function call, one round trip; the draw,
    when due, on a thread. `on_sale` needs only its pk."""
    at = at or timezone.now()
    on_sale_id = on_sale.pk
    arguments = _join_arguments(buyer, on_sale_id, email, at)
    for _attempt in range(JOIN_ATTEMPTS):
        try:
            row = await acall_function(JOIN_FUNCTION, *arguments, refusal_of=_join_refusal)
        except _JoinAgain as again:
            if again.draw_first:
                await on_a_pool_thread(_draw_due)(on_sale_id, at)
            arguments[-1] = arguments[-1] or again.late
            continue
        visitor, created = _joined(buyer, on_sale_id, row)
        await anote_seen(visitor.pk, at=at)
        return visitor, created
    raise RoomError("retry_join")


def _join_arguments(buyer, on_sale_id, email, at):
    """waiting_join_room's arguments; RoomError("not_found") for an id past its bigint (a URL's <int:> takes any)."""
    if whole_number(str(on_sale_id)) is None:
        raise RoomError("not_found")
    address = buyer.client_address if buyer.api_key_id is None else None
    return [on_sale_id, buyer.api_key_id, buyer.session_id, normalized_email(email), address, at, False]


class _JoinAgain(Exception):
    """Join again: `late` (the room was drawn meanwhile, or the buyer's other tab just joined), after drawing the
    room when `draw_first`."""

    def __init__(self, *, late, draw_first=False):
        self.late, self.draw_first = late, draw_first


def _join_refusal(error):
    """What waiting_join_room's error means: a RoomError to answer, or _JoinAgain; None for any other error."""
    sqlstate = getattr(error, "sqlstate", None)
    if sqlstate == JOIN_AGAIN_SQLSTATE:
        return _JoinAgain(late=True, draw_first=error.diag.message_primary == "draw_first")
    if sqlstate == REFUSAL_SQLSTATE:
        return RoomError(error.diag.message_primary, **json.loads(error.diag.message_detail or "{}"))
    constraint = getattr(getattr(error, "diag", None), "constraint_name", None)
    if constraint == "waiting_roomvisitor_one_place_per_email":
        return RoomError("email_in_room")
    if constraint == "waiting_roomvisitor_one_place_per_buyer":
        return _JoinAgain(late=False)  # the buyer's other tab joined meanwhile: its place is this one's
    return None


def _joined(buyer, on_sale_id, row):
    visitor_id, created, status, place, early, pass_expires_at, called_through, drawn_at, opens_at, rate = row
    on_sale = OnSale(pk=on_sale_id, opens_at=opens_at, admissions_per_minute=rate)
    room = Room(on_sale=on_sale, called_through=called_through, drawn_at=drawn_at)
    visitor = RoomVisitor(
        pk=visitor_id,
        room=room,
        api_key_id=buyer.api_key_id,
        session_id=buyer.session_id,
        status=status,
        place=place,
        early=early,
        pass_expires_at=pass_expires_at,
    )
    return visitor, created


def _draw_due(on_sale_id, at):
    """Draw the room if the opening has come and nobody has yet (a join after the opening found it undrawn)."""
    Room.objects.get_or_create(on_sale_id=on_sale_id)  # the refused call's insert of it was rolled back
    with transaction.atomic(durable=True):
        room = _locked_room(on_sale_id)
        if room.drawn_at is None and at >= room.on_sale.opens_at:
            _draw(room, at)


def leave_room(*, buyer, visitor_id, at=None):
    """The visitor gives up its place (or its pass): status Left. Leaving a place already ended changes nothing.
    Locks the visitor's row. On commit: the room's group hears of it (the visitor's other tabs, its polls)."""
    at = at or timezone.now()
    visitor = find_visitor(buyer=buyer, visitor_id=visitor_id)
    with transaction.atomic(durable=True):
        left = RoomVisitor.objects.filter(pk=visitor.pk, status__in=ACTIVE).update(status=Status.LEFT, ended_at=at)
        if left:
            _tell_room(visitor.room, [visitor.pk])
    visitor.refresh_from_db()
    return visitor


def _tell_room(room, changed):
    """After commit, the room's group hears how far it has called and whose status changed (waiting.room_live)."""
    notice = {
        "type": "room.moved",
        "on_sale_id": room.pk,
        "version": room_version(room),
        "called_through": room.called_through,
        "changed": [str(pk) for pk in changed],
    }
    transaction.on_commit(lambda: send_to_groups([(room_group(room.pk), notice)]), robust=True)


# --- The draw ---------------------------------------------------------------------------------------------------------


def draw_order(secret, visitor_ids):
    """The drawn order of the visitors who arrived before the opening: ranked by HMAC-SHA256(secret, id), which
    is a uniform random order for a secret nobody knew beforehand, and which anyone can recompute from the
    published secret (manage.py audit_room_draw)."""
    key = bytes.fromhex(secret)
    return sorted(visitor_ids, key=lambda visitor_id: hmac.new(key, str(visitor_id).encode(), hashlib.sha256).digest())


@dataclass(frozen=True, slots=True)
class DrawAudit:
    """What audit_draw found: `drawn` visitors in the room's draw (as it recorded), `checked` of them placed as
    draw_order says; `mismatch` says the first place that isn't (None when all are)."""

    drawn: int
    checked: int
    mismatch: str | None


def audit_draw(on_sale_id):
    """Recompute the room's draw from its published secret and its early visitors' ids (draw_order) and compare
    with the places in the database. Locks nothing, changes nothing. Raises RoomError("not_found") for an
    on-sale without a room; a room not drawn yet (its draw is at the opening) has nothing to audit: None."""
    room = Room.objects.filter(pk=on_sale_id).first()
    if room is None:
        raise RoomError("not_found")
    if room.drawn_at is None:
        return None
    placed = dict(RoomVisitor.objects.filter(room=room, early=True, place__isnull=False).values_list("place", "pk"))
    expected = draw_order(room.secret, placed.values())
    found = [placed[place] for place in sorted(placed)]
    if len(placed) != room.drawn_count or sorted(placed) != list(range(1, len(placed) + 1)):
        mismatch = f"{len(placed)} early visitors hold places {min(placed, default=0)}..{max(placed, default=0)}"
        return DrawAudit(room.drawn_count, 0, f"{mismatch}; the room drew {room.drawn_count}")
    for place, (drawn, held) in enumerate(zip(expected, found, strict=True), start=1):
        if drawn != held:
            return DrawAudit(room.drawn_count, place - 1, f"place {place}: the draw gives {drawn}, the database {held}")
    return DrawAudit(room.drawn_count, len(found), None)


# The drawn order as one comma-separated text, its places the ordinality: 100,000 ids sent as two arrays were ~1 s
# of psycopg's quoting of each element in the draw's tick (bench/waiting_room/profile_draw.py).
PLACE_DRAWN = """
UPDATE waiting_roomvisitor visitor SET place = drawn.place
  FROM unnest(string_to_array(%s, ',')::uuid[]) WITH ORDINALITY AS drawn(id, place)
 WHERE visitor.id = drawn.id
"""


def _draw(room, at):
    """Draw the early visitors' places (1..n) with a new secret. The caller holds the room's row FOR NO KEY UPDATE."""
    early = list(
        RoomVisitor.objects.filter(room=room, early=True, status=Status.WAITING, place__isnull=True)
        .annotate(text_id=Cast("pk", TextField()))  # as text: no UUID objects made and turned back into text
        .values_list("text_id", flat=True)
    )
    room.secret = secrets.token_hex(32)
    order = draw_order(room.secret, early)
    if order:
        with connection.cursor() as cursor:
            cursor.execute(PLACE_DRAWN, [",".join(order)])
    room.drawn_at = at
    room.drawn_count = len(order)
    room.last_place = len(order)
    room.due_at = room.on_sale.opens_at
    room.save(update_fields=["secret", "drawn_at", "drawn_count", "last_place", "due_at"])


# --- Admitting --------------------------------------------------------------------------------------------------------


def room_group(on_sale_id):
    """The channel-layer group told when the room moves (the draw, admissions, passes running out)."""
    return f"waiting-room-{on_sale_id}"


def admit_from_room(*, on_sale_id, at=None):
    """Let the room's next visitors in, at its rate; returns how many were admitted.

    Locks the room's row FOR NO KEY UPDATE for one short transaction (none when another holds it: then it admits
    nobody this time): draws the room if the opening has come;
    ends passes that ran out (Pass Expired; one unused, its buyer having held no seat of the on-sale's shows since
    admitted, gives its admission back); adds the admissions the rate earned since the last time (at most
    BURST_SECONDS' worth saved); admits that many from the head in place order with a pass each, passing over (Left)
    visitors gone longer than the grace. Before the opening or after the room closes, does nothing. On commit:
    tells the room's group who changed and how far the room has called.
    """
    with transaction.atomic(durable=True):
        # A room another holds is drawing (100,000 places take seconds) or admitting: this tick's turn is the
        # next one's, rather than a wait past the database's lock timeout.
        room = _locked_room(on_sale_id, skip_locked=True)
        if room is None:
            return 0
        at = at or timezone.now()  # read once the room is ours, as the waiting line's serving does
        on_sale = room.on_sale
        if at < on_sale.opens_at or at >= on_sale.closes_at:
            return 0
        if room.drawn_at is None:
            _draw(room, at)
        changed = _end_passes(room, on_sale, at)
        per_second = on_sale.admissions_per_minute / 60
        earned = per_second * max(0.0, (at - (room.due_at or on_sale.opens_at)).total_seconds())
        room.admissions_due = min(room.admissions_due + earned, max(1.0, per_second * BURST_SECONDS))
        room.due_at = at
        admitted = 0
        wanted = math.floor(room.admissions_due + 1e-9)
        line = RoomVisitor.objects.filter(room=room, status=Status.WAITING, place__isnull=False).order_by("place")
        while admitted < wanted:
            batch = list(line.filter(place__gt=room.called_through).values_list("pk", "place")[: wanted - admitted])
            if not batch:
                break
            gone = _gone([pk for pk, _ in batch], at)
            called = [pk for pk, _ in batch if pk not in gone]
            RoomVisitor.objects.filter(pk__in=gone).update(status=Status.LEFT, ended_at=at)
            RoomVisitor.objects.filter(pk__in=called).update(
                status=Status.ADMITTED, admitted_at=at, pass_expires_at=at + timedelta(seconds=on_sale.pass_seconds)
            )
            room.called_through = batch[-1][1]
            admitted += len(called)
            changed += [*gone, *called]
        room.admissions_due -= admitted
        room.admitted += admitted
        room.save(update_fields=["called_through", "admissions_due", "due_at", "admitted"])
        _tell_room(room, changed)
    return admitted


# Passes ended per tick: a drain's wave of them ends over a few ticks rather than making one tick late.
PASSES_ENDED_PER_TICK = 5000

# The passes that ran out, ended (at home, with the rooms). Then, on each shard that sells the on-sale's shows
# (ticketing.shards; unsharded, the one database), those of them whose buyer held a seat of those shows since
# admitted (the Reservation index on (show, session_id) finds it).
END_PASSES = """
UPDATE waiting_roomvisitor visitor SET status = 'Pass Expired', ended_at = %(at)s
 WHERE visitor.id IN (
    SELECT id FROM waiting_roomvisitor
     WHERE room_id = %(room)s AND status = 'Admitted' AND pass_expires_at <= %(at)s
     ORDER BY pass_expires_at LIMIT %(limit)s
 )
RETURNING visitor.id, visitor.api_key_id, visitor.session_id, visitor.admitted_at
"""
PASSES_USED = """
SELECT ended.id FROM unnest(%(ids)s::uuid[], %(keys)s::bigint[], %(sessions)s::text[], %(admitted)s::timestamptz[])
       AS ended (id, api_key_id, session_id, admitted_at)
 WHERE EXISTS (
    SELECT 1 FROM bookings_reservation held
     WHERE held.show_id = ANY(%(shows)s)
       AND held.session_id = ended.session_id AND held.api_key_id IS NOT DISTINCT FROM ended.api_key_id
       AND held.created_at >= ended.admitted_at
 )
"""


def _end_passes(room, on_sale, at):
    """Passes that ran out: Pass Expired (up to PASSES_ENDED_PER_TICK). Returns their ids, and adds to the room's
    admissions those unused (their buyer held no seat of the on-sale's shows since admitted)."""
    with connection.cursor() as cursor:
        cursor.execute(END_PASSES, {"at": at, "room": room.pk, "limit": PASSES_ENDED_PER_TICK})
        ended = cursor.fetchall()
    if not ended:
        return []
    ids, keys, sessions, admitted = (list(column) for column in zip(*ended, strict=True))
    shows = OnSaleShow.objects.filter(on_sale_id=room.pk).values_list("show_id", flat=True)
    used = set()
    for alias, show_ids in shards.by_shard(shows).items():
        with connections[alias].cursor() as cursor:
            cursor.execute(
                PASSES_USED,
                {"ids": ids, "keys": keys, "sessions": sessions, "admitted": admitted, "shows": show_ids},
            )
            used.update(visitor_id for (visitor_id,) in cursor.fetchall())
    room.admissions_due += sum(1 for visitor_id in ids if visitor_id not in used)
    return ids


def tend_rooms(*, at=None):
    """Beat's clock (every second): admit from every room whose sale is open. Returns how many were admitted."""
    at = at or timezone.now()
    started = time.monotonic()
    open_rooms = OnSale.objects.filter(opens_at__lte=at, closes_at__gt=at).values_list("pk", flat=True)
    admitted = 0
    for on_sale_id in list(open_rooms):
        admitted += admit_from_room(on_sale_id=on_sale_id)  # a room nobody joined yet has no row: it admits nobody
    logger.debug("Tended rooms in %.3f s", time.monotonic() - started)
    return admitted
