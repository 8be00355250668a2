"""A sale's buyers as the users of one Locust process, the driver's side shared by the hot show (bench.hold_path)
and the sell-out (bench.sell_out): the load generator's options (--http-client with locust, --locust), the plan
Locust's users read (sale_plan, a JSON file), Locust's command line with every user spawned at once, and the run
(run_on_locust): timed between the same CPU snapshots as bench.sale.run_buyers, Locust's CPU (getrusage of this
process's children) added to the load generator's, the counts read back from the file the users wrote.

The users' side is bench/locust_users.py, each scenario's locustfile bench/<scenario>_locust.py.
"""

import asyncio
import json
import os
import resource
import tempfile
from dataclasses import replace
from pathlib import Path

from bench.harness.clients import CONNECTIONS_PER_CLIENT, bench_clients
from bench.harness.figures import take_cpu_snapshot
from bench.harness.processes import ROOT
from bench.harness.servers import wait_and_warm_up
from bench.show import BENCH_KEY

DEFAULT_LOCUST = ROOT / ".venv-locust" / "bin" / "locust"
ALL_AT_ONCE = 10_000  # users per second
# Added to the CPU report's note of a run on Locust.
CPU_NOTE = " The load generator is Locust's process (its start included) and this one."


def add_load_generator_options(parser):
    """--http-client (asyncio buyers on aiohttp or httpx, or the same buyers on Locust) and --locust."""
    parser.add_argument(
        "--http-client",
        choices=["locust", "aiohttp", "httpx"],
        default="locust",
        help="the load generator: the buyers as Locust users (default; --locust), or the same buyers as asyncio "
        "tasks on aiohttp (the client of the sittings before issue 17's Locust) or httpx",
    )
    parser.add_argument(
        "--locust", type=Path, default=DEFAULT_LOCUST, help=f"Locust's executable (default {DEFAULT_LOCUST})"
    )


def sale_plan(sale, *, users, options):
    """What the Locust users need to know of the sale (bench/locust_users.py's PLAN): the show and its rows, the
    run tag, the bench key, how many users, and the run's `options` (names) the buyers read."""
    return {
        "show_id": sale.show_id,
        "movie_id": sale.movie_id,
        "rows": sale.hall.rows,
        "run_tag": sale.run_tag,
        "api_key": BENCH_KEY,
        "users": users,
        "options": {name: getattr(sale.options, name) for name in options},
    }


def locust_command(options, *, locustfile, users, run_time, base_url):
    # Every user at once, as every asyncio buyer starts together (Locust's default ramp would start them over 1 s).
    return [str(options.locust), "-f", str(locustfile), "--headless", "--users", str(users)] + [
        *("--spawn-rate", str(ALL_AT_ONCE), "--run-time", f"{run_time:.0f}s", "--host", base_url),
        *("--only-summary", "--loglevel", "WARNING", "--exit-code-on-error", "0"),
    ]


def children_cpu():
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


async def run_on_locust(sale, plan, *, locustfile, run_time, base_url, server):
    """The buyers as plan["users"] users of one Locust process running `locustfile`, `run_time` seconds at most
    (Locust's --run-time: a safety net only), timed between the same CPU snapshots as run_buyers.

    The warm-up and the seat map at the end go through one aiohttp client (wait_and_warm_up wants async ones).
    Locust's CPU (its start included: it is this process's only child that ends meanwhile) is added to the
    load generator's. The users' counts fill the sale (sale.take_counts). Returns what run_buyers does.
    """
    options = sale.options
    async with bench_clients(base_url, CONNECTIONS_PER_CLIENT, api_key=BENCH_KEY, http_client="aiohttp") as clients:
        await wait_and_warm_up(clients, server, sale.show_id, options)
        with tempfile.TemporaryDirectory(prefix="bench-sale-locust-") as folder:
            plan_file, counts = Path(folder) / "plan.json", Path(folder) / "counts.json"
            plan_file.write_text(json.dumps(plan))
            environment = {**os.environ, "PYTHONPATH": str(ROOT), "SALE_PLAN": str(plan_file)}
            environment["SALE_COUNTS"] = str(counts)
            command = locust_command(
                options, locustfile=locustfile, users=plan["users"], run_time=run_time, base_url=base_url
            )
            before, cpu_before = take_cpu_snapshot(server, options.database_url), children_cpu()
            locust = await asyncio.create_subprocess_exec(
                *command,
                env=environment,
                cwd=ROOT,  # Locust puts its working directory first on sys.path: this checkout's bench/, not another's
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            output, _ = await locust.communicate()
            locust_cpu = children_cpu() - cpu_before
            after = take_cpu_snapshot(server, options.database_url)
            if locust.returncode != 0 or not counts.exists():
                raise RuntimeError(f"Locust exited with status {locust.returncode}:\n{output.decode()[-3000:]}")
            counted = json.loads(counts.read_text())
        seat_map = await clients[0].get(f"/api/v1/shows/{sale.show_id}/seats")
    sale.take_counts(counted)
    return counted["elapsed"], before, replace(after, client=after.client + locust_cpu), seat_map
