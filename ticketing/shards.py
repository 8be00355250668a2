"""Which shard a show's sale lives on: a consistent-hash ring of the shards' names, keyed by show id.

A show's claims, holds, bookings, payments and waiters are written together and never read across shows in a
sale (docs/scaling.md, "What partitions by show id"), so each show belongs whole to one shard. The ring is
uhashring's (MD5 points, 160 per shard and unit of weight): adding a shard moves only the shows whose points it
takes, about its weight's share of them, each from an old shard to the new one; nothing moves between the old
shards. (Not uhashring's ketama mode: libketama spreads a fixed number of points over the total weight, so a
new shard there also moves shows between weighted old ones.) The mapping is a pure function of the shards'
names and weights, the same in every process and every release (tests/ticketing/test_shards.py pins a sample of
it, since changing it would move data). The routing that uses it (the hold, pay, line and sweep paths by show
id) is issue 21's next step; today every show lives in the one database.
"""

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
