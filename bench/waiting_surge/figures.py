"""The surge's figures: the web process's memory and threads, the CPU of each phase (the Celery worker and beat
counted by name), and the time from a waiter's serving to its poll's answer.
"""

import asyncio
import time
from dataclasses import dataclass

from bench.harness.figures import cpu_report, summary_ms, take_cpu_snapshot
from bench.harness.processes import process_tree


def summary_of_seconds(seconds):
    """figures.summary_ms of durations in seconds."""
    return summary_ms([value * 1000 for value in seconds])


def footprint(server):
    """Resident memory in MB and threads of the web process (with --balanced: of all of them, and each's)."""
    pids = server.web_pids if hasattr(server, "web_pids") else [server.pid]
    each = [process_footprint(pid) for pid in pids]
    total = {"rss_mb": round(sum(one["rss_mb"] for one in each), 1), "threads": sum(one["threads"] for one in each)}
    return total if len(each) == 1 else {**total, "per_process": each}


def process_footprint(pid):
    """(resident memory in MB, threads) of one process."""
    rss_kb = threads = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return {"rss_mb": round(rss_kb / 1024, 1), "threads": threads}


def cpu_of_phase(before, after, *, server_pid, elapsed, worker_pids, beat_pid):
    """figures.cpu_report for one phase, with the Celery workers (and their pools) and beat counted by name."""
    report = cpu_report(before, after, server_pid, elapsed)

    def spent(pids):
        return sum(after.table[pid][2] - before.table.get(pid, (0, "", 0.0))[2] for pid in pids if pid in after.table)

    worker = spent([pid for worker_pid in worker_pids for pid in process_tree(worker_pid, after.table)])
    beat = spent(process_tree(beat_pid, after.table))
    seconds = report["cpu_seconds"]
    web = seconds.pop("server_workers")
    seconds["web_process"] = round(sum(web), 1)
    if len(web) > 1:
        seconds["web_processes"] = web
    seconds["celery_worker"] = round(worker, 1)
    seconds["celery_beat"] = round(beat, 1)
    seconds["everything_else"] = round(seconds["everything_else"] - worker - beat, 1)
    return report


@dataclass
class PhaseCpu:
    """The processes whose CPU each phase counts: the web server(s), the Celery workers and beat."""

    server: object
    workers: list
    beat: object
    database_url: str

    async def snapshot(self):
        return await asyncio.to_thread(take_cpu_snapshot, self.server, self.database_url)

    async def since(self, before, started):
        """(the snapshot now, the CPU of the phase since `before`, taken at monotonic `started`)."""
        after = await self.snapshot()
        phase = cpu_of_phase(
            before,
            after,
            server_pid=self.server.pid,
            elapsed=time.monotonic() - started,
            worker_pids=[worker.pid for worker in self.workers],
            beat_pid=self.beat.pid,
        )
        return after, phase


def latency_figures(line, surge, listener):
    """Served → poll answered, from the after-commit notice and from the reservation's created_at."""
    from_notice, from_created, unheard = [], [], 0
    answers = {waiter.waiter_id: waiter for waiter in surge.waiters if waiter.waiter_id}
    for waiter_id, _, status, _, _, _, created_at, _, _ in line:
        waiter = answers.get(waiter_id)
        if status != "Seats Available" or waiter is None or waiter.answered_at is None:
            continue
        from_created.append(waiter.answered_at - float(created_at))
        notice = listener.served_notices.get(waiter_id)
        if notice is None:
            unheard += 1
        else:
            from_notice.append(waiter.answered_at - notice)
    return {
        "from_notice_ms": summary_of_seconds(from_notice),
        "from_reservation_created_ms": summary_of_seconds(from_created),
        "served_without_a_notice_heard": unheard,
    }
