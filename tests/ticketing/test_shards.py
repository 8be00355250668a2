"""The ring that says which shard a show's sale lives on (ticketing.shards)."""

from collections import Counter

import pytest

from ticketing.shards import ShardRing

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
