"""Catalog reads from a streaming replica (settings.DATABASE_REPLICA_URL), every other read on the primary.

Opt-in, safe by default: a read goes to the replica only when all of these hold, and to the primary otherwise.
- It runs inside a catalog read (`catalog_reads`: the catalog's pages and API, the static parts of a seat map).
- Its model is one of the catalog's (registered by the catalog app: `read_from_replica`), never a hold's, a
  booking's, a waiter's, a session's or an API key's: who has which seat is always read on the primary, as
  pretix warns (availability read from a replica oversells).
- No transaction is open on the primary (a read inside one sees the transaction's own writes only there).
- The request is not pinned to the primary (`pinned_to_the_primary`: staff who just wrote, read-your-writes),
  nor the code inside `reading_the_primary()`.
- The replica answers and lags the primary by at most TICKETING_REPLICA_MAX_LAG_SECONDS, as this process last
  measured it (ticketing.replica_health, about once a second, never per query).

A catalog read whose replica fails mid-way (a connection error) is read again on the primary, and the replica
is left out until it answers again. Without a replica configured this router is not installed at all.
"""

import contextlib
import contextvars
import functools
import logging
import math
from dataclasses import dataclass

from django.conf import settings
from django.db import InterfaceError, OperationalError, connections

from ticketing import shards

logger = logging.getLogger(__name__)

PRIMARY, REPLICA = "default", "replica"

# Model labels ("cinemas.Show") and cache generations the replica serves; registered by the catalog app.
_replica_models = set()
_replica_generations = set()


def read_from_replica(*models, generation):
    """The catalog app's rows (`models`) may be read from the replica in a catalog read; `generation` is the
    shared cache's generation their changes bump (ticketing.cached_reads keeps fills after one on the primary)."""
    _replica_models.update(model._meta.label for model in models)
    _replica_generations.add(generation)


def replica_configured():
    return REPLICA in settings.DATABASES


def replicated_generations(names):
    """Those of the generation `names` whose data the replica serves (none without a replica)."""
    return [name for name in names if name in _replica_generations] if replica_configured() else []


def staleness_window_seconds():
    """How long after a commit on the primary the replica may still lack it while reads go to it: its largest
    lag allowed, plus the age a health measurement may have when used, plus a second of margin. Past this
    window, any replica this process reads from has the commit (see ticketing.replica_health)."""
    return staleness_window(settings.TICKETING_REPLICA_MAX_LAG_SECONDS, settings.TICKETING_REPLICA_CHECK_SECONDS)


def staleness_window(max_lag_seconds, check_seconds):
    """staleness_window_seconds() for these settings."""
    return max_lag_seconds + 2 * check_seconds + 1


def staleness_window_whole_seconds():
    return math.ceil(staleness_window_seconds())


@dataclass
class _Scope:
    used_replica: bool = False


_catalog_scope = contextvars.ContextVar("catalog_read_scope", default=None)
_primary_only = contextvars.ContextVar("reading_the_primary", default=False)
_pinned = contextvars.ContextVar("pinned_to_the_primary", default=False)


def catalog_reads(function):
    """Decorator: `function` (a catalog view, or what builds a catalog answer) may read catalog rows from the
    replica. If the replica fails while it runs (a connection error), it is marked down and `function` runs
    again with every read on the primary: a visitor gets the page, never an error of the replica's. Only for
    functions that write nothing (they may run twice)."""

    @functools.wraps(function)
    def reading(*args, **kwargs):
        if not replica_configured():
            return function(*args, **kwargs)
        scope = _Scope()
        token = _catalog_scope.set(scope)
        try:
            return function(*args, **kwargs)
        except (OperationalError, InterfaceError) as error:
            if not scope.used_replica:
                raise
            from ticketing import replica_health

            replica_health.report_failure(error)
        finally:
            _catalog_scope.reset(token)
        with reading_the_primary():
            return function(*args, **kwargs)

    return reading


@contextlib.contextmanager
def reading_the_primary():
    """Every read inside the block goes to the primary, catalog reads included."""
    token = _primary_only.set(True)
    try:
        yield
    finally:
        _primary_only.reset(token)


@contextlib.contextmanager
def pinned_to_the_primary(pinned):
    """The request inside the block reads the primary only (when `pinned`): ticketing.middleware's
    read-your-writes for staff. ticketing.cached_reads builds such a request's answers afresh."""
    token = _pinned.set(bool(pinned))
    try:
        yield
    finally:
        _pinned.reset(token)


def reads_pinned():
    """Whether this request reads the primary only, whatever is cached (a pinned staff member's)."""
    return _pinned.get()


def would_read_the_replica(model):
    """Whether a read of `model` here and now goes to the replica (the rules in this module's docstring)."""
    scope = _catalog_scope.get()
    if scope is None or _primary_only.get() or _pinned.get() or model._meta.label not in _replica_models:
        return False
    if connections[PRIMARY].in_atomic_block:
        return False
    from ticketing import replica_health

    return replica_health.usable()


class CatalogReplicaRouter:
    """settings.DATABASE_ROUTERS' router when a replica is configured (settings.DATABASE_REPLICA_URL)."""

    def db_for_read(self, model, **hints):
        # Always an answer, never None: Django would otherwise read an object's relations from the database it
        # came from, and a catalog object read on the replica (or cached from one) would take reads of its
        # relations there, outside any catalog read.
        if would_read_the_replica(model):
            _catalog_scope.get().used_replica = True
            return REPLICA
        return PRIMARY

    def db_for_write(self, model, **hints):
        return PRIMARY

    def allow_relation(self, obj1, obj2, **hints):
        return obj1._state.db in (PRIMARY, REPLICA) and obj2._state.db in (PRIMARY, REPLICA)

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        # The replica replays the primary's WAL: its tables are the primary's, never migrated on their own.
        return db == PRIMARY


class ShowShardRouter:
    """First of settings.DATABASE_ROUTERS when the sales are split by show id (settings.DATABASE_SHARD_URLS):
    the rows of a show's sale (ticketing.shards.live_on_their_shows_shard) are read and written on the shard
    of the scope (ticketing.shards.current()), or on the one an object of them came from; everything else is
    written on "default" and read there or on its replica (the next router's say). Every shard has every table
    (migrations run on each); the home's own rows reach the others by logical replication (`manage.py
    replicate_catalog`)."""

    def _shard(self, hints):
        instance = hints.get("instance")
        if instance is not None and instance._state.db in shards.names():
            return instance._state.db
        return shards.current()

    def db_for_read(self, model, **hints):
        if shards.lives_on_a_shard(model):
            return self._shard(hints)
        # The home's rows are read at home (or on its replica, the next router's), never from a shard's copy of
        # them, where Django would otherwise read a relation of an object that came from a shard.
        return None if replica_configured() else PRIMARY

    def db_for_write(self, model, **hints):
        return self._shard(hints) if shards.lives_on_a_shard(model) else PRIMARY

    def allow_relation(self, obj1, obj2, **hints):
        # A reservation on a shard and its show (from "default", or the catalog's replica) go together: the
        # shard has the show's row too.
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return True if db in shards.names() else None
