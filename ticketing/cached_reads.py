"""Reads everyone makes at once, built once and served from the shared cache (DESIGN decision 11).

An answer is cached under the *generations* of what it was built from: counters in the cache that the services
increment after each commit that changes it (`changed_after_commit`: a show's seats, the catalog). A reader
reads the generations first and the database after, so every change whose increment it saw is in what it
builds; a change that commits later increments a counter, and the entry stored under the old one is never
read again. Counting commits, not versions, is what makes this hold when transactions commit out of order
(bench/seat_map_version.py shows `max(version)` staying put across such a commit).

Two bounds stop a cached answer from going stale where no increment comes:
- an entry may carry `valid_until`, when what it shows changes with no write at all (a hold lapsing);
- every entry lives a few `seconds` at most, which bounds what a lost increment costs (a process dying
  between its commit and the increment, or Redis out of reach at that moment).

Used only outside transactions: a read inside one may see its own uncommitted writes, which must never reach
other readers. (Tests that run inside a transaction therefore always read afresh; the tests of the cache
itself commit.) A cache that can't be reached is a miss, never an error: the page is built from the database.

With a replica serving catalog reads (ticketing.db_routers), a fill made from it right after a change could
keep the replica's older rows under the new generation. So a change of a generation the replica serves also
leaves a mark in the cache, `recent:<name>`, for ticketing.db_routers.staleness_window_seconds() (set before
the increment, read in the same round trip as the generations): while it is there, and whenever the cache
can't say, fills read the primary. Past it, any replica a read may use has the change. A request pinned to
the primary (staff who just wrote) neither reads the cache nor shares another request's build: it builds from
the primary, and stores what it built.
"""

import hashlib
import logging
import math
import random
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.cache import caches
from django.db import connection, transaction
from django.utils import timezone
from django.utils.cache import get_conditional_response
from django.utils.translation import get_language
from redis.exceptions import RedisError

from ticketing import db_routers

logger = logging.getLogger(__name__)

# The cache these reads live in (settings.CACHES).
CACHE = "reads"
# A generation counter lives a day after it is first made, then starts again from a new random number: an
# old entry can never be mistaken for a new one, and counters of shows long gone don't pile up in Redis.
GENERATION_SECONDS = 24 * 3600
CACHE_ERRORS = (RedisError, OSError)


def generation_key(name):
    """The cache key of a name's generation counter."""
    return f"generation:{name}"


def recent_change_key(name):
    """The cache key that says a name changed less than the replica's staleness window ago."""
    return f"recent:{name}"


def generations(*names):
    """The current generation of each name, in one round trip (0 for one never changed; None out of reach)."""
    return _generations_and_recent_changes(names)[0]


def changed_after_commit(*names):
    """After the current transaction commits (at once outside one): a new generation for each name.

    Call it inside the transaction that makes the change: nothing happens if it rolls back.
    """
    if names:
        transaction.on_commit(lambda: mark_changed(*names), robust=True)


def mark_changed(*names):
    """A new generation for each name, now: every answer cached under the old one is built afresh."""
    cache = caches[CACHE]
    replicated = db_routers.replicated_generations(names)
    if replicated:
        # Before the increments: whoever reads a new generation also reads the mark.
        try:
            cache.set_many(
                {recent_change_key(name): 1 for name in replicated},
                timeout=db_routers.staleness_window_whole_seconds(),
            )
        except CACHE_ERRORS:
            logger.warning("Could not mark %s as changed in the cache", replicated, exc_info=True)
    for name in names:
        key = generation_key(name)
        try:
            try:
                cache.incr(key)
            except ValueError:  # not made yet, or expired: start from a number no earlier entry can carry
                if not cache.add(key, random.getrandbits(48) + 1, timeout=GENERATION_SECONDS):
                    cache.incr(key)
        except CACHE_ERRORS:
            # The entries of the old generation expire on their own within their few seconds.
            logger.warning("Could not mark %s as changed in the cache", name, exc_info=True)


def variant():
    """What every cached answer also depends on besides its data: language and time zone.

    Answers render times in the active time zone (DRF does) and words and amounts in the active language; none
    leaks into a request made under another. Currencies are data (each cinema's), not a variant.
    """
    return f"{get_language()}|{timezone.get_current_timezone_name()}"


def cache_key(kind, generations_seen, *parts):
    """A key for `kind` of answer built at these generations, from `parts` (hashed: any text may be in them)."""
    digest = hashlib.blake2b(repr((variant(), parts)).encode(), digest_size=16).hexdigest()
    return f"{kind}:{':'.join(map(str, generations_seen))}:{digest}"


@dataclass
class Built:
    """What a build returns: the value, and when it stops being true with no write (None: only a write).

    `expires` (a time.time() instant) is set when it is stored: the end of its few seconds, wherever it is read.
    """

    value: object
    valid_until: datetime | None = None
    expires: float | None = None


def cached(kind, names, parts, build, *, seconds, local=False):
    """The answer of `kind` for `parts`, built by `build()` (a Built) at most once per generation of `names`
    and process, and kept `seconds` at most (less when its `valid_until` comes sooner).

    `local`: also keep the process's own copy of the entry (see _local), for the big ones.
    Inside a transaction, or with the cache out of reach, it is built afresh and not stored.
    """
    if connection.in_atomic_block:
        return build().value
    if db_routers.reads_pinned():
        return _build_pinned(kind, names, parts, build, seconds=seconds)
    seen, recent = _generations_and_recent_changes(names)
    if seen is None:
        with db_routers.reading_the_primary():
            return build().value
    if recent:
        build = _on_the_primary(build)
    key = cache_key(kind, seen, *parts)
    entry = _local.get(key) if local else None
    if entry is None:
        entry = _get(key)
        if entry is not None and local:
            _local.put(key, entry)
    if entry is not None and _still_valid(entry):
        return entry.value
    built = _build_once(key, build, seconds=seconds)
    if local:
        _local.put(key, built)
    return built.value


def _generations_and_recent_changes(names):
    """`(generations(*names), whether any of them the replica serves changed within its staleness window)`,
    in one round trip; (None, True) when the cache is out of reach."""
    keys = [generation_key(name) for name in names]
    marks = [recent_change_key(name) for name in db_routers.replicated_generations(names)]
    try:
        found = caches[CACHE].get_many(keys + marks)
    except CACHE_ERRORS:
        logger.warning("The cache is out of reach: reading from the database", exc_info=True)
        return None, True
    return tuple(found.get(key, 0) for key in keys), any(mark in found for mark in marks)


def _on_the_primary(build):
    def building():
        with db_routers.reading_the_primary():
            return build()

    return building


def _build_pinned(kind, names, parts, build, *, seconds):
    seen = generations(*names)  # before the build, as every reader: what it builds has at least these changes
    built = _on_the_primary(build)()
    if seen is not None:
        _store(cache_key(kind, seen, *parts), built, seconds=seconds)
    return built.value


def kept_here(kind, generations_seen, *parts):
    """The answer of `kind` for `parts` at these generations if this process keeps a copy still valid (a
    `local` entry), else None: what the lean path serves without a thread or a database (ticketing.lean)."""
    entry = _local.get(cache_key(kind, generations_seen, *parts))
    return entry.value if entry is not None and _still_valid(entry) else None


def _get(key):
    try:
        return caches[CACHE].get(key)
    except CACHE_ERRORS:
        logger.warning("The cache is out of reach: reading from the database", exc_info=True)
        return None


def _still_valid(entry):
    if entry.expires is not None and time.time() >= entry.expires:
        return False
    return entry.valid_until is None or timezone.now() < entry.valid_until


class _LocalCopies:
    """A process's own copies of the last few big entries it read or built, as objects (least recently used
    out first). A copy is exactly as fresh as the shared entry: its key carries the generations this request
    read from the shared cache, and it keeps the entry's `valid_until` and `expires`. What the shared cache
    saves is the building; this saves reading a 2,000-seat map back (1.7 MB from Redis, ~3 ms) on every read.
    Entries are never changed once built, so requests share them.
    """

    def __init__(self, size):
        self.size = size
        self.entries = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            entry = self.entries.get(key)
            if entry is not None:
                self.entries.move_to_end(key)
            return entry

    def put(self, key, entry):
        with self.lock:
            self.entries[key] = entry
            self.entries.move_to_end(key)
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)


# About 2 MB each for a 2,000-seat map's page: a few tens of MB at most per process.
_local = _LocalCopies(size=24)


@dataclass
class _Flight:
    done: threading.Event
    built: Built | None = None


_flights = {}
_flights_lock = threading.Lock()


def _build_once(key, build, *, seconds):
    """Build and store the entry, once per process however many requests miss it together: the others wait
    for that build (a hot show's map read by hundreds at the moment its version changes)."""
    with _flights_lock:
        flight = _flights.get(key)
        leading = flight is None
        if leading:
            flight = _flights[key] = _Flight(done=threading.Event())
    if not leading:
        flight.done.wait(timeout=30)
        if flight.built is not None and _still_valid(flight.built):
            return flight.built
        return _stamped(build(), seconds)  # the build failed, or took too long: this request's own
    try:
        flight.built = _store(key, build(), seconds=seconds)
        return flight.built
    finally:
        with _flights_lock:
            del _flights[key]
        flight.done.set()


def _stamped(built, seconds):
    """The entry with its `expires`: `seconds` from now, or sooner when its valid_until comes first."""
    built.expires = time.time() + seconds
    if built.valid_until is not None:
        built.expires = min(built.expires, time.time() + (built.valid_until - timezone.now()) / timedelta(seconds=1))
    return built


def _store(key, built, *, seconds):
    _stamped(built, seconds)
    seconds_left = math.ceil(built.expires - time.time())  # whole seconds, as the cache keeps them
    if seconds_left > 0:
        try:
            caches[CACHE].set(key, built, timeout=seconds_left)
        except CACHE_ERRORS:
            logger.warning("Could not store %s in the cache", key, exc_info=True)
    return built


def etag_of(content):
    """A strong ETag for these bytes: it changes whenever they do."""
    return f'"{hashlib.blake2b(content, digest_size=16).hexdigest()}"'


def answer_with_etag(request, response, etag):
    """The response with its ETag, or 304 Not Modified (with the same headers) when the client has it already."""
    response["ETag"] = etag
    return get_conditional_response(request, etag=etag, response=response)
