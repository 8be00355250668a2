"""The sales split by show id on this machine: a PostgreSQL primary of its own for each shard (the home,
"default", and more), with wal_level=logical so that the home's catalog reaches the others (ticketing.shards).

    with own_shards(["default", "shard2"]) as shards:
        environment = shard_environment(shards)      # DATABASE_URL and DATABASE_SHARD_URLS
        prepare_shards(environment, ["default", "shard2"])  # migrate each, then replicate_catalog
"""

import contextlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.harness.failover import own_failover_cluster
from bench.harness.processes import ROOT
from bench.harness.services import OwnPostgres

DATABASE = "ticketing"
LOGICAL_REPLICATION = {"wal_level": "logical", "max_replication_slots": 10, "max_wal_senders": 10}


@contextlib.contextmanager
def own_shards(names, *, max_connections=100):
    """{name: OwnPostgres} for each shard's name ("default" among them), started, each with the database
    DATABASE; all stopped (immediate) and removed when the block ends."""
    folder = Path(tempfile.mkdtemp(prefix="shards-"))
    folder.chmod(0o755)  # the postgres user must reach the data folders inside
    clusters = {}
    try:
        for name in names:
            (folder / name).mkdir()
            clusters[name] = OwnPostgres(folder / name, max_connections=max_connections, settings=LOGICAL_REPLICATION)
            clusters[name].start()
            clusters[name].create_database(DATABASE)
        yield clusters
    finally:
        for cluster in clusters.values():
            with contextlib.suppress(subprocess.CalledProcessError):
                cluster.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)


def shard_environment(clusters):
    """DATABASE_URL (the home, "default") and DATABASE_SHARD_URLS (the others) for these clusters."""
    others = [f"{name}={cluster.url(DATABASE)}" for name, cluster in clusters.items() if name != "default"]
    return {"DATABASE_URL": clusters["default"].url(DATABASE), "DATABASE_SHARD_URLS": " ".join(others)}


def prepare_shards(environment, names):
    """`manage.py migrate` on every shard, then `replicate_catalog` (the home's tables copied to the others)."""
    for name in names:
        _manage(environment, "migrate", "--database", name, "--verbosity", "0")
    _manage(environment, "replicate_catalog")


def _manage(environment, *arguments):
    subprocess.run(
        [sys.executable, "manage.py", *arguments],
        env=environment,
        check=True,
        capture_output=True,
        cwd=ROOT,
    )


@contextlib.contextmanager
def own_home_and_a_failover_shard(database):
    """(home, shard2): the home as an OwnPostgres with logical replication and the database `database`, and the
    second shard as a primary with a synchronous standby and pg_auto_failover's monitor (OwnFailoverCluster,
    its database `database` too); all stopped and removed when the block ends. For chaos/shards.py."""
    with own_shards(["default"]) as clusters, own_failover_cluster(database) as shard2:
        clusters["default"].create_database(database)
        yield clusters["default"], shard2


def shows_until(show_id, *, key, count):
    """{key(show id): show id} for the show `show_id` and more of its movie in its hall, three hours apart, until
    `count` keys are had (key=ticketing.shards.database_of_show: a show on each of `count` shards). In this
    process's Django (bench.show.prepare_show sets it up); with shards, then waits until every shard has the
    home's catalog, these shows included."""
    from datetime import timedelta

    from cinemas.demo import ticket_prices
    from cinemas.models import Show
    from cinemas.services import schedule_show
    from ticketing import shards

    first = Show.objects.select_related("hall__cinema").get(pk=show_id)
    chosen = {key(show_id): show_id}
    later = 0
    while len(chosen) < count:
        later += 1
        show = schedule_show(
            movie=first.movie,
            hall=first.hall,
            starts_at=first.starts_at + timedelta(hours=3 * later),
            prices=ticket_prices(first.hall.capacity, first.hall.cinema.currency),
        )
        chosen.setdefault(key(show.pk), show.pk)
    if shards.shards_behind_the_home(60):
        raise RuntimeError("a shard did not catch up with the home's catalog")
    return chosen
