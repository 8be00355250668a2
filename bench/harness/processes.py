"""Processes, for bench/, chaos/ and the tests alike: start one in a session of its own, stop it by its pid,
free loopback ports, and what runs below a process.

Every process any of them starts goes through start_process (its own session, so that it and whatever it
forks stop together) and is stopped by stop_processes or killed by kill_now. Nothing is ever stopped by name.
"""

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]  # the project: run the scenarios from here, `python -m bench.<name>`

# How long processes get to stop on their own (like scripts/run.sh's STOP_SECONDS).
STOP_SECONDS = 15


def free_port():
    """A loopback TCP port nothing listens on now (the system's pick), for a server about to start."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_process(command, *, environment=None, log=None, cwd=ROOT, preexec_fn=None):
    """Popen of `command` in a session of its own, stdin closed; its output to `log` (an open file; None: this
    process's own), stderr with stdout. `environment`: the whole environment (default os.environ)."""
    return subprocess.Popen(
        [str(part) for part in command],
        cwd=cwd,
        env=os.environ if environment is None else environment,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT if log is not None else None,
        start_new_session=True,
        preexec_fn=preexec_fn,
    )


@contextlib.contextmanager
def process_running(command, **options):
    """start_process, stopped (stop_process) when the block ends, also when it fails. Yields the Popen."""
    process = start_process(command, **options)
    try:
        yield process
    finally:
        stop_process(process)


def unwind_on_sigterm():
    """`kill` (SIGTERM) unwinds a bench like Ctrl-C, so its `finally` blocks stop the servers it started: they
    run in sessions of their own, and a bench killed outright leaves them serving (and, worse, a leftover
    Celery worker consuming the next run's tasks with the old code)."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def _popen(process):
    """The Popen of a Popen, or of anything holding one as `popen` (bench.harness.balancer.Process)."""
    return getattr(process, "popen", process)


def stop_process(process, *, seconds=STOP_SECONDS):
    """stop_processes for one process."""
    stop_processes([process], seconds=seconds)


def stop_processes(processes, *, seconds=STOP_SECONDS):
    """SIGTERM each leader alone (uvicorn's supervisor and Celery's main process stop their children and wait for
    them, running tasks finish), wait up to `seconds`; then SIGTERM, and at last SIGKILL, what is left of their
    sessions; reap. `processes`: Popens, or anything with a `popen`, each started by start_process."""
    processes = [_popen(process) for process in processes]
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + seconds
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
    for sig, grace in ((signal.SIGTERM, 3), (signal.SIGKILL, 5)):
        left = [process for process in processes if _group_alive(process.pid)]
        if not left:
            break
        for process in left:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
        deadline = time.monotonic() + grace
        while any(_group_alive(process.pid) for process in left) and time.monotonic() < deadline:
            time.sleep(0.1)
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)


def kill_now(process):
    """kill -9 of the process and everything in its session (a crash, as the fault scenarios make one); reaped."""
    process = _popen(process)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def wait_until_url_answers(url, process, name, seconds=30):
    """Return once a GET of `url` gets any HTTP answer; RuntimeError if `process` (the server, a Popen) exits or
    `seconds` pass first. `name` says which server in the error."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start") from None
            time.sleep(0.2)


def proc_stats():
    """(pid, command name, the fields after the name) of every process in /proc we may read (see proc(5)).

    fields[0] is the state, [1] the parent pid, [2] the process group, [11] and [12] the user and system CPU
    time in clock ticks.
    """
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # it exited meanwhile
        yield int(entry), stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()


def _group_alive(pgid):
    """True while process group `pgid` has a process that has not exited (zombies excepted)."""
    return any(int(fields[2]) == pgid and fields[0] != "Z" for _, _, fields in proc_stats())


TICKS = os.sysconf("SC_CLK_TCK")


def process_table():
    """{pid: (parent pid, command name, CPU seconds so far)} of every process we may read."""
    return {
        pid: (int(fields[1]), name, (int(fields[11]) + int(fields[12])) / TICKS) for pid, name, fields in proc_stats()
    }


def process_tree(pid, table=None):
    """`pid` and every process below it, from `table` (process_table's, read now when not given)."""
    table = process_table() if table is None else table
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(child for child, (parent, _, _) in table.items() if parent == current)
    return found
