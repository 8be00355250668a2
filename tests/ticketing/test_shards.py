"""The ring that says which shard a show's sale lives on, the scope that follows it and the router that reads the
scope (ticketing.shards, ticketing.db_routers.ShowShardRouter)."""

import asyncio
import uuid
from collections import Counter

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.test import override_settings

from bookings.models import GiftCard, OutgoingMail, Payment, PromoCode, Reservation, SeatClaim
from cinemas.models import Cinema, City, Hall, MenuItem, Movie, OnSale, Seat, Show, ShowPrice
from ticketing import shards
from ticketing.db_routers import ShowShardRouter
from ticketing.models import ApiKey, WebhookDelivery, WebhookEndpoint
from ticketing.shards import ShardRing
from waiting.models import Room, Waiter

SHOWS = range(1, 100_001)


def test_every_show_has_one_shard_and_two_shards_share_the_shows_within_a_few_percent():
    ring = ShardRing(["shard_0", "shard_1"])
    shares = Counter(ring.shard_of(show_id) for show_id in SHOWS)
    assert set(shares) == {"shard_0", "shard_1"}
    assert all(abs(count / len(SHOWS) - 0.5) < 0.05 for count in shares.values()), shares


def test_the_mapping_is_the_same_in_every_process_and_release():
    """Pinned: a change of hash or of the key's format would move every show's rows to another shard."""
    ring = ShardRing(["shard_0", "shard_1"])
    assert {show_id: ring.shard_of(show_id) for show_id in (1, 2, 3, 42, 1000, 123456789)} == {
        1: "shard_1",
        2: "shard_1",
        3: "shard_1",
        42: "shard_1",
        1000: "shard_1",
        123456789: "shard_0",
    }


def test_adding_a_shard_moves_only_its_share_and_only_to_it():
    ring = ShardRing(["shard_0", "shard_1"])
    grown = ring.with_shard("shard_2")
    moving = ring.moves(SHOWS, grown)
    assert {to for _, to in moving.values()} == {"shard_2"}  # nothing moves between the old shards
    assert abs(len(moving) / len(SHOWS) - 1 / 3) < 0.05, len(moving)
    assert {show_id for show_id in SHOWS if grown.shard_of(show_id) == "shard_2"} == set(moving)
    # Both old shards give up part of theirs, in about equal measure.
    given_up = Counter(origin for origin, _ in moving.values())
    assert set(given_up) == {"shard_0", "shard_1"}
    assert all(abs(count / len(moving) - 0.5) < 0.1 for count in given_up.values()), given_up


def test_negative_control_a_plain_modulo_moves_most_shows_when_a_shard_is_added():
    """What the ring is for: show_id % n sends two thirds of the shows elsewhere going from 2 shards to 3."""
    moved = sum(1 for show_id in SHOWS if show_id % 2 != show_id % 3)
    assert moved / len(SHOWS) > 0.6


def test_a_heavier_shard_takes_more_shows_and_removing_a_shard_brings_its_shows_back():
    ring = ShardRing({"shard_0": 1, "shard_1": 2})
    shares = Counter(ring.shard_of(show_id) for show_id in SHOWS)
    assert 1.8 < shares["shard_1"] / shares["shard_0"] < 2.2, shares
    grown = ring.with_shard("shard_2")
    assert all(
        grown.shard_of(show_id) == ring.shard_of(show_id) for show_id in SHOWS if grown.shard_of(show_id) != "shard_2"
    )


def test_a_ring_without_shards_or_adding_a_shard_twice_is_refused():
    with pytest.raises(ValueError):
        ShardRing([])
    with pytest.raises(ValueError, match="already"):
        ShardRing(["shard_0"]).with_shard("shard_0")


# --- The site's shards and the scope (ticketing.shards), and the router that follows it ------------------------
# Decisions only: no query runs, so the aliases needn't reach a database. The end-to-end tests on two real
# primaries are tests/ticketing/test_show_shards.py.

split = override_settings(TICKETING_SHARDS=["shard2"], DATABASE_ROUTERS=["ticketing.db_routers.ShowShardRouter"])


def test_unsharded_every_show_and_every_url_is_the_home_databases_and_nothing_is_asked():
    assert shards.names() == ["default"] and not shards.sharded()
    assert shards.database_of_show(123456789) == "default"
    assert shards.database_of_url({"reservation_id": uuid.uuid4()}) == "default"  # no query: no database here
    with shards.in_show_database(123456789):
        assert shards.current() == "default"


@split
def test_split_a_show_is_on_the_rings_shard_of_it_and_its_url_says_so():
    ring = ShardRing(["default", "shard2"])
    for show_id in (1, 2, 3, 42, 1000, 123456789):
        assert shards.database_of_show(show_id) == ring.shard_of(show_id)
        assert shards.database_of_url({"show_id": show_id}) == ring.shard_of(show_id)
    assert {shards.database_of_show(show_id) for show_id in range(1, 200)} == {"default", "shard2"}
    assert shards.database_of_url({"on_sale_id": 7}) == "default"  # a room is the home's


@split
def test_scopes_nest_and_each_ends_with_its_block():
    assert shards.current() == "default"
    with shards.in_database("shard2"):
        with shards.in_database("default"):
            assert shards.current() == "default"
        assert shards.current() == "shard2"
    assert shards.current() == "default" and shards.connection.alias == "default"
    scopes = [(alias, shards.current()) for alias in shards.each_shard()]
    assert scopes == [("default", "default"), ("shard2", "shard2")]
    assert shards.current() == "default"


@split
def test_a_service_that_takes_a_show_runs_in_its_shards_scope_sync_and_async():
    show_id = next(show_id for show_id in range(1, 200) if shards.database_of_show(show_id) == "shard2")

    @shards.in_its_shows_database
    def service(*, show_id):
        return shards.current()

    @shards.in_its_shows_database
    async def aservice(*, show_id):
        return shards.current()

    class Show:
        pk = show_id

    @shards.in_its_shows_database
    def taking_a_show(*, show):
        return shards.current()

    assert service(show_id=show_id) == "shard2"
    assert asyncio.run(aservice(show_id=show_id)) == "shard2"
    assert taking_a_show(show=Show()) == "shard2"
    assert shards.current() == "default"


@split
def test_the_router_sends_a_shows_sale_to_the_scopes_shard_and_the_rest_home():
    router = ShowShardRouter()
    for model in (Reservation, SeatClaim, Payment, Waiter, OutgoingMail, WebhookDelivery):
        assert router.db_for_write(model) == "default" and router.db_for_read(model) == "default"
        with shards.in_database("shard2"):
            assert router.db_for_write(model) == "shard2" and router.db_for_read(model) == "shard2"
    with shards.in_database("shard2"):
        for model in (Show, Seat, ApiKey, GiftCard, PromoCode, Room, get_user_model()):
            assert router.db_for_write(model) == "default" and router.db_for_read(model) == "default"


@split
def test_an_object_from_a_shard_takes_its_relations_reads_and_its_saves_there_outside_any_scope():
    router = ShowShardRouter()
    reservation = Reservation(show_id=1)
    reservation._state.db = "shard2"
    assert router.db_for_read(Payment, instance=reservation) == "shard2"
    assert router.db_for_write(Reservation, instance=reservation) == "shard2"
    # Its show is read at home, not from the shard's copy (which a save would write).
    assert router.db_for_read(Show, instance=reservation) == "default"
    assert router.db_for_write(Show, instance=reservation) == "default"
    assert router.allow_relation(reservation, Show(pk=1))


@split
def test_migrations_run_on_every_shard_and_not_on_the_replica():
    router = ShowShardRouter()
    assert router.allow_migrate("default", "bookings") and router.allow_migrate("shard2", "cinemas")
    assert router.allow_migrate("replica", "cinemas") is None  # the replica's router says no (it replays WAL)


def test_the_home_replicates_the_catalog_keys_users_and_endpoints_and_none_of_a_shows_sale():
    tables = shards.home_tables()
    for model in (City, Cinema, Hall, Seat, Movie, Show, ShowPrice, OnSale, MenuItem, ApiKey, WebhookEndpoint):
        assert model._meta.db_table in tables
    assert get_user_model()._meta.db_table in tables
    for model in (Reservation, SeatClaim, Payment, Waiter, OutgoingMail, WebhookDelivery, GiftCard, Room):
        assert model._meta.db_table not in tables
    assert not any(shards.lives_on_a_shard(model) for model in apps.get_models() if model._meta.db_table in tables)
