"""Which database a show's sale lives on, and the scope that sends a request's or a task's SQL there.

A show's claims, holds, bookings, payments, waiters and their outboxes are written together and never read
across shows in a sale (docs/scaling.md, "What runs: the split by show id"), so each show belongs whole to one
shard: a PostgreSQL primary of its own, named in settings.DATABASE_SHARD_URLS, or "default", the home database,
which also keeps everything that is not a show's (the catalog, API keys, users, gift cards' balances, promo codes'
counts, waiting rooms) and replicates what a sale refers to (home_tables) to the other shards by PostgreSQL's
logical replication (`manage.py replicate_catalog`); a card's money and a code's uses move to a shard's copy of
them for a sale there (bookings.services.gift_cards, promo_codes). Without DATABASE_SHARD_URLS, "default" is the
only shard and nothing here costs a query.

The ring is uhashring's (MD5 points, 160 per shard and unit of weight): adding a shard moves only the shows
whose points it takes, about its weight's share of them, each from an old shard to the new one; nothing moves
between the old shards. (Not uhashring's ketama mode: libketama spreads a fixed number of points over the total
weight, so a new shard there also moves shows between weighted old ones.) The mapping is a pure function of
the shards' names and weights, the same in every process and every release (tests/ticketing/test_shards.py
pins a sample of it, since changing it would move data).

The scope: `in_show_database(show_id)` (and its kin for a reservation, or what a URL names) sets, for the code
inside it, the database that the show's models are read and written on (ticketing.db_routers.ShowShardRouter),
that `connection`, `atomic()` and `on_commit()` here mean, and that the lean path's pool connects to. Outside any
scope it is "default". Requests are scoped by the show, reservation or waiter their URL names
(ticketing.middleware.in_the_shows_database, the lean front, the sockets), services that take a show or a
reservation scope themselves (in_its_shows_database, in_its_reservations_database), and what spans shows (the
sweeps, a buyer's bookings, the sales) runs once per shard (`each_shard`) or reads every shard
(`from_every_shard`, `first_on_any_shard`).
"""

import contextlib
import contextvars
import functools
import inspect
import time

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from uhashring import HashRing


class ShardRing:
    """`shards`: the shards' names, or {name: weight} (a shard of weight 2 takes twice the shows)."""

    def __init__(self, shards):
        weights = shards if isinstance(shards, dict) else dict.fromkeys(shards, 1)
        if not weights:
            raise ValueError("a ring needs at least one shard")
        self.weights = dict(weights)
        self._ring = HashRing(nodes={name: {"weight": weight} for name, weight in self.weights.items()})

    def shard_of(self, show_id):
        """The name of the shard holding show `show_id` (an int)."""
        return self._ring.get_node(f"show:{int(show_id)}")

    def with_shard(self, name, weight=1):
        """A new ring with one more shard: what adding it would look like (this ring is left as it is)."""
        if name in self.weights:
            raise ValueError(f"{name!r} is already a shard of this ring")
        return ShardRing({**self.weights, name: weight})

    def moves(self, show_ids, to):
        """{show id: (its shard here, its shard in ring `to`)} for the shows that would change shard."""
        moving = {}
        for show_id in show_ids:
            here, there = self.shard_of(show_id), to.shard_of(show_id)
            if here != there:
                moving[show_id] = (here, there)
        return moving


# --- The shards of this site -------------------------------------------------------------------------------

# Model labels ("bookings.Reservation") whose rows live on their show's shard; registered by their apps.
_show_models = set()


def live_on_their_shows_shard(*models):
    """`models`' rows live on the shard of their show (or of the transaction that wrote them: the outboxes)."""
    _show_models.update(model._meta.label for model in models)


def lives_on_a_shard(model):
    return model._meta.label in _show_models


def names():
    """The shards' database aliases, "default" first."""
    return [DEFAULT_DB_ALIAS, *settings.TICKETING_SHARDS]


def sharded():
    return bool(settings.TICKETING_SHARDS)


@functools.cache
def _ring(shards):
    return ShardRing(list(shards))


def ring():
    return _ring(tuple(names()))


def database_of_show(show_id):
    """The alias of the database show `show_id`'s sale lives on."""
    if not sharded():
        return DEFAULT_DB_ALIAS
    return ring().shard_of(show_id)


_FIND_ROW = "SELECT 1 FROM {table} WHERE {column} = %s"


def by_shard(show_ids):
    """{shard: [the ids of `show_ids` it sells]}, for a read of several shows' rows (one query a shard)."""
    grouped = {}
    for show_id in show_ids:
        grouped.setdefault(database_of_show(show_id), []).append(show_id)
    return grouped


def database_of(table, row_id, column="id"):
    """The alias of the shard whose `table` has the row whose `column` is `row_id` (by default its id, a uuid: a
    reservation's, a waiter's; or a booking code), asked of each shard in turn; "default" when none has it (where
    a lookup then finds nothing, as it would unsharded)."""
    if not sharded():
        return DEFAULT_DB_ALIAS
    for alias in names():
        with connections[alias].cursor() as cursor:
            cursor.execute(_FIND_ROW.format(table=table, column=column), [str(row_id)])
            if cursor.fetchone():
                return alias
    return DEFAULT_DB_ALIAS


# The URL's words that name what a request is about, and the table of each (its shows' shard has the row).
_URL_ROWS = {"reservation_id": "bookings_reservation", "waiter_id": "waiting_waiter"}


def _named_by_url(kwargs):
    """(the shard, None) when a URL's `kwargs` say it (a show's id, or nothing: "default"), or (None, (table, row
    id)) when the shard is the one that has that row."""
    if not sharded():
        return DEFAULT_DB_ALIAS, None
    if "show_id" in kwargs:
        return database_of_show(kwargs["show_id"]), None
    for word, table in _URL_ROWS.items():
        if word in kwargs:
            return None, (table, kwargs[word])
    return DEFAULT_DB_ALIAS, None


def database_of_url(kwargs):
    """The shard a request is about, from its URL's `kwargs` (a show's, a reservation's or a waiter's id);
    "default" for the rest."""
    alias, row = _named_by_url(kwargs)
    return alias if row is None else database_of(*row)


async def adatabase_of_url(kwargs, ask):
    """database_of_url for the lean front: `ask(alias, sql, parameters)` answers a query's rows on that shard."""
    alias, row = _named_by_url(kwargs)
    if row is None:
        return alias
    table, row_id = row
    for alias in names():
        if await ask(alias, _FIND_ROW.format(table=table, column="id"), [str(row_id)]):
            return alias
    return DEFAULT_DB_ALIAS


# None until a scope is set: "default" then, but a service that can find its own shard (in_its_reservations_database)
# looks for it.
_current = contextvars.ContextVar("show_database", default=None)


def current():
    """The alias the code here reads and writes a show's rows on."""
    return _current.get() or DEFAULT_DB_ALIAS


@contextlib.contextmanager
def in_database(alias):
    token = _current.set(alias)
    try:
        yield alias
    finally:
        _current.reset(token)


def in_show_database(show_id):
    return in_database(database_of_show(show_id))


def in_reservation_database(reservation_id):
    return in_database(database_of(_URL_ROWS["reservation_id"], reservation_id))


def in_url_database(kwargs):
    """The scope of the shard a URL is about (its `kwargs`: database_of_url)."""
    return in_database(database_of_url(kwargs))


def each_shard():
    """For work that spans shows (a sweep, a fan-out read): yields each shard's alias, with its scope set while
    the loop's body runs."""
    for alias in names():
        with in_database(alias):
            yield alias


def from_every_shard(queryset):
    """The rows of `queryset` (of a model that lives on the shards) from every shard, as one list, each object
    knowing its shard: a read across shows (a buyer's bookings). Unsharded, the queryset's own rows."""
    if not sharded():
        return list(queryset)
    return [row for alias in names() for row in queryset.using(alias)]


def exists_on_any_shard(queryset):
    """Whether some shard's copy of `queryset` has a row (an EXISTS a shard, "default" first, until one has)."""
    return any(queryset.using(alias).exists() for alias in names())


def first_on_any_shard(queryset):
    """The first row of `queryset` found, shard by shard ("default" first), or None: a lookup by a key unique
    on each shard (a booking code) when nothing says which shard has it."""
    for alias in names():
        row = queryset.using(alias).first()
        if row is not None:
            return row
    return None


class _CurrentConnection:
    """Django's connection to the database of this scope (as django.db.connection is to "default")."""

    def __getattr__(self, item):
        return getattr(connections[current()], item)


connection = _CurrentConnection()


def atomic(**kwargs):
    """transaction.atomic on this scope's database."""
    return transaction.atomic(using=current(), **kwargs)


def on_commit(function, robust=False):
    """transaction.on_commit on this scope's database: after its transaction commits (at once outside one)."""
    transaction.on_commit(function, using=current(), robust=robust)


def _show_id_of(kwargs):
    show = kwargs.get("show")
    return show.pk if show is not None else kwargs["show_id"]


def in_its_reservations_database(service):
    """Decorator: `service`, which takes the keyword `reservation_id`, runs in the scope of that reservation's
    shard, unless a scope is set already (a request's, from its URL: the same reservation's). For the callers
    that have no scope of their own: the admin's actions, the staff's pages, tasks."""

    @functools.wraps(service)
    def scoped(*args, **kwargs):
        if _current.get() is not None or not sharded():
            return service(*args, **kwargs)
        with in_reservation_database(kwargs["reservation_id"]):
            return service(*args, **kwargs)

    return scoped


def in_its_shows_database(service):
    """Decorator: `service`, which takes its show as the keyword `show` or `show_id`, runs in the scope of the
    show's shard (from a form's or a body's show id, a task, another service)."""
    if inspect.iscoroutinefunction(service):

        @functools.wraps(service)
        async def scoped_coroutine(*args, **kwargs):
            with in_show_database(_show_id_of(kwargs)):
                return await service(*args, **kwargs)

        return scoped_coroutine

    @functools.wraps(service)
    def scoped(*args, **kwargs):
        with in_show_database(_show_id_of(kwargs)):
            return service(*args, **kwargs)

    return scoped


# --- The home's rows on every shard ---------------------------------------------------------------------------

PUBLICATION = "ticketing_home"

# Models whose rows are the home's ("default") and copied to every other shard, where a show's sale reads them
# (its show, seats, prices, API key, webhook endpoints) and its rows refer to them; registered by their apps.
_home_models = []


def replicated_to_every_shard(*models):
    """`models`' rows are written at home only and reach the other shards by logical replication."""
    _home_models.extend(model for model in models if model not in _home_models)


def home_tables():
    """The tables replicated from home: the registered models' and their many-to-many tables'."""
    tables = set()
    for model in _home_models:
        tables.add(model._meta.db_table)
        tables.update(field.remote_field.through._meta.db_table for field in model._meta.local_many_to_many)
    return sorted(tables)


def _subscription(alias):
    return f"{PUBLICATION}_{alias}".lower()


def replicate_home_to_shards(home_conninfo):
    """Publish the home's tables (home_tables) and subscribe every other shard to them, or, when that is done
    already, bring the publication and the subscriptions up to the tables of the latest migrations. Run after
    `migrate` on every shard (`manage.py replicate_catalog`). A shard's first subscription empties its copies of
    those tables (a migration may have written rows there) and copies the home's; it is refused for a shard
    that has sold anything. Needs wal_level=logical at home, which the shards reach at `home_conninfo`. Returns
    the new subscriptions' names."""
    tables = home_tables()
    listed = ", ".join(connections[DEFAULT_DB_ALIAS].ops.quote_name(table) for table in tables)
    with connections[DEFAULT_DB_ALIAS].cursor() as home:
        home.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", [PUBLICATION])
        verb = "ALTER PUBLICATION {} SET TABLE {}" if home.fetchone() else "CREATE PUBLICATION {} FOR TABLE {}"
        home.execute(verb.format(PUBLICATION, listed))
    subscribed = []
    for alias in settings.TICKETING_SHARDS:
        name = _subscription(alias)
        with connections[alias].cursor() as shard:
            shard.execute("SELECT 1 FROM pg_subscription WHERE subname = %s", [name])
            if shard.fetchone():
                shard.execute(f"ALTER SUBSCRIPTION {name} REFRESH PUBLICATION")
                continue
            shard.execute("SELECT EXISTS (SELECT 1 FROM bookings_reservation) OR EXISTS (SELECT 1 FROM waiting_waiter)")
            if shard.fetchone()[0]:
                raise RuntimeError(f"shard {alias} has sold seats: its copies of the home's tables are not emptied")
            shard.execute(f"TRUNCATE {listed} CASCADE")
        with connections[DEFAULT_DB_ALIAS].cursor() as home:
            # The slot is made at home first, not by CREATE SUBSCRIPTION: that would wait forever for itself when
            # the shard is a database of the home's own server.
            home.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", [name])
            if not home.fetchone():
                home.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", [name])
        with connections[alias].cursor() as shard:
            shard.execute(
                f"CREATE SUBSCRIPTION {name} CONNECTION %s PUBLICATION {PUBLICATION}"
                " WITH (create_slot = false, slot_name = %s)",
                [home_conninfo, name],
            )
        subscribed.append(name)
    return subscribed


def home_replicated(alias):
    """Whether shard `alias` has copied the home's tables and applied every change the home had committed when
    asked (its subscription's tables ready, its slot's flushed position past the home's WAL position then)."""
    name = _subscription(alias)
    with connections[DEFAULT_DB_ALIAS].cursor() as home:
        home.execute("SELECT pg_current_wal_lsn()::text")
        (position,) = home.fetchone()
    with connections[alias].cursor() as shard:
        shard.execute(
            "SELECT count(*) FILTER (WHERE rel.srsubstate <> 'r'), count(*) FROM pg_subscription_rel rel"
            " JOIN pg_subscription sub ON sub.oid = rel.srsubid WHERE sub.subname = %s",
            [name],
        )
        not_ready, listed = shard.fetchone()
    if not listed or not_ready:
        return False
    with connections[DEFAULT_DB_ALIAS].cursor() as home:
        home.execute(
            "SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots WHERE slot_name = %s", [position, name]
        )
        row = home.fetchone()
    return bool(row and row[0])


def shards_behind_the_home(seconds):
    """Wait up to `seconds` for every other shard to apply what the home has committed (home_replicated, asked
    every 0.2 s); returns those still behind then (none: every shard has it)."""
    deadline = time.monotonic() + seconds
    behind = list(settings.TICKETING_SHARDS)
    while behind:
        behind = [alias for alias in behind if not home_replicated(alias)]
        if not behind or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    return behind
