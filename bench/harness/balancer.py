"""The site scaled out on one machine: K web processes behind HAProxy, C Celery workers and one beat.

    from bench.harness.balancer import stack_running

    with stack_running(web_processes=2, environment=env, celery_workers=2, beat=True) as stack:
        httpx.get(f"{stack.url}/api/v1/cities")    # through HAProxy
        stack.responses_by_process()               # {"web1": 12, "web2": 11}, from HAProxy's stats socket

What it starts, each process in a session of its own (so it and anything it forks stop together):
- K `uvicorn ticketing.asgi:application` processes, one worker each (`--workers 1` runs the app in the
  uvicorn process itself: no supervisor), each on its own free loopback port, named web1..webK, trusting the
  forwarding headers of HAProxy alone (TICKETING_TRUSTED_PROXIES=127.0.0.1, HAProxy's source address);
- HAProxy on a free loopback port (stack.url), its configuration rendered from the committed template
  deploy/haproxy.cfg (least connections, WebSocket tunnels, long-poll-friendly timeouts, a health check on
  /health/live, answered ahead of the requests queued for Django, an X-Served-By response header naming the
  process that answered, a stats socket);
- optionally C Celery workers (celery1..celeryC, `--pool solo` unless told otherwise) and one Celery beat,
  as scripts/run.sh starts them for `make serve` (a worker and a separate beat).
Each process logs to its own file in the stack's temporary folder (stack.log_text(name)); when the caller
passes `log` (an open file), everything is copied there at the end. The block returns only once every web
process answers directly, HAProxy has them all in rotation and every Celery worker said it is ready.

When the block ends, also on a failure: HAProxy, the web processes, the workers and beat get SIGTERM (a
warm shutdown: running tasks and requests finish), then whatever is left in their process groups SIGTERM and
SIGKILL, every child is reaped and the temporary folder removed. Nothing is left running.

The environment is the caller's (database, Redis, secret key, allowed hosts, pool sizes...); when the stack
runs Celery, it sets CELERY_TASK_ALWAYS_EAGER=0 everywhere, so tasks go to its workers through the broker.
HAProxy comes from Debian (`make debian-packages` installs it, being in the Makefile's DEBIAN_PACKAGES).
Every process is started and stopped as bench/harness/processes.py does it, with bench/harness/site.py's
command lines; a scenario's --balanced server (bench/harness/servers.py) is a stack.
"""

import contextlib
import os
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.harness import site
from bench.harness.haproxy import haproxy_executable, render_haproxy_config, web_server_stats
from bench.harness.processes import free_port, start_process, stop_processes
from ticketing.proxies import SETTING as TRUSTED_PROXIES_SETTING

HEALTH_PATH = "/health/live"  # what HAProxy's health check asks for (see the template)
# Where HAProxy's connections to the web processes come from: the one proxy they trust (TICKETING_TRUSTED_PROXIES),
# so a client's address is the X-Forwarded-For HAProxy adds, and a client's own X-Forwarded-For is not believed.
HAPROXY_SOURCE_ADDRESS = "127.0.0.1"
START_SECONDS = 60


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log_path: Path
    url: str | None = None  # web processes only: where it answers directly, bypassing HAProxy

    @property
    def pid(self):
        return self.popen.pid


@dataclass
class Stack:
    """The running stack. `pid`, `poll()` and `returncode` make it usable where a uvicorn Popen was."""

    url: str
    balancer: Process
    web: list
    celery: list = field(default_factory=list)
    beat: Process | None = None
    stats_socket: Path | None = None
    folder: Path | None = None
    returncode: int | None = None

    @property
    def processes(self):
        return [self.balancer, *self.web, *self.celery, *([self.beat] if self.beat else [])]

    @property
    def pid(self):
        return self.balancer.pid

    @property
    def balancer_pid(self):
        return self.balancer.pid

    @property
    def web_pids(self):
        return [process.pid for process in self.web]

    def process(self, name):
        return next(process for process in self.processes if process.name == name)

    def poll(self):
        """None while every process runs; else the exit status of one that ended (and self.returncode)."""
        for process in self.processes:
            status = process.popen.poll()
            if status is not None:
                self.returncode = status
                return status
        return None

    def log_text(self, name):
        return self.process(name).log_path.read_text(errors="replace")

    def balancer_stats(self):
        """HAProxy's `show stat` for the web backend's servers: {server name: {column: value}}."""
        return web_server_stats(self.stats_socket)

    def responses_by_process(self):
        """How many HTTP responses each web process sent back through HAProxy (its hrsp_* counters)."""
        columns = ("hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other")
        return {name: sum(int(row[column] or 0) for column in columns) for name, row in self.balancer_stats().items()}


def _raise_open_files_limit():
    """In the child, before exec: as many open files as allowed (HAProxy's maxconn follows the limit)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _start(name, command, *, environment, folder, preexec_fn=None):
    log_path = folder / f"{name}.log"
    with open(log_path, "wb") as log:
        popen = start_process(command, environment=environment, log=log, preexec_fn=preexec_fn)
    return Process(name=name, popen=popen, log_path=log_path)


def _tail(process, characters=3000):
    try:
        return process.log_path.read_text(errors="replace")[-characters:]
    except OSError:
        return ""


def _check_alive(process, waiting_for):
    if process.popen.poll() is not None:
        raise RuntimeError(
            f"{process.name} exited with status {process.popen.returncode} before {waiting_for}; "
            f"its log ends with:\n{_tail(process)}"
        )


def _wait_for(condition, *, processes, what, seconds):
    deadline = time.monotonic() + seconds
    while True:
        for process in processes:
            _check_alive(process, what)
        if condition():
            return
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {process.name}:\n{_tail(process, 1000)}" for process in processes)
            raise RuntimeError(f"not {what} within {seconds} s\n{tails}")
        time.sleep(0.1)


def _answers(url, host):
    try:
        return httpx.head(f"{url}{HEALTH_PATH}", headers={"Host": host}, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@contextlib.contextmanager
def stack_running(
    *,
    web_processes=2,
    environment=None,
    web_environment=None,
    celery_workers=0,
    beat=False,
    celery_environment=None,
    celery_pool="solo",
    celery_concurrency=1,
    health_host="127.0.0.1",
    # Idle keep-alive connections outlive HAProxy's reuse of them (its pool-purge-delay is 5 s, uvicorn's
    # keep-alive timeout 5 s too): else uvicorn closes one just as HAProxy sends a request on it, and the
    # client's connection is cut without an answer (a few in each 1,000-buyer sale).
    uvicorn_options=("--timeout-keep-alive", "30"),
    log=None,
    start_seconds=START_SECONDS,
    haproxy_template=None,
):
    """Start the stack (see the module's docstring), yield a Stack, stop everything when the block ends.

    environment: for every process (default os.environ). web_environment / celery_environment: added for the
    web processes / the Celery workers and beat (e.g. smaller database pools for the workers).
    health_host: the Host header of HAProxy's health check; a name in DJANGO_ALLOWED_HOSTS.
    haproxy_template: another configuration template than deploy/haproxy.cfg (e.g. a benchmark's slacker checks).
    """
    if web_processes < 1:
        raise ValueError("a stack needs at least one web process")
    haproxy = haproxy_executable()
    base = dict(os.environ if environment is None else environment)
    if celery_workers or beat:
        base = site.celery_environment(base)
    folder = Path(tempfile.mkdtemp(prefix="ticketing-stack-"))
    started = []
    try:
        web_env = {**base, **(web_environment or {}), TRUSTED_PROXIES_SETTING: HAPROXY_SOURCE_ADDRESS}
        web = _start_web(web_processes, environment=web_env, uvicorn_options=uvicorn_options, folder=folder)
        started += web
        celery_env = {**base, **(celery_environment or {})}
        celery = _start_celery(
            celery_workers, environment=celery_env, pool=celery_pool, concurrency=celery_concurrency, folder=folder
        )
        beat_process = _start_beat(environment=celery_env, folder=folder) if beat else None
        started += celery + ([beat_process] if beat_process else [])
        _wait_for(
            lambda: all(_answers(process.url, health_host) for process in web),
            processes=web,
            what="every web process answering",
            seconds=start_seconds,
        )
        stack = _start_balancer(haproxy, web=web, health_host=health_host, folder=folder, template=haproxy_template)
        started.insert(0, stack.balancer)  # stopped first: no new connections while the rest stop
        stack.celery, stack.beat = celery, beat_process
        _wait_until_serving(stack, health_host=health_host, seconds=start_seconds)
        yield stack
    finally:
        stop_processes(started)
        if log is not None:
            for process in started:
                log.write(f"===== {process.name} =====\n{_tail(process, 10**9)}\n")
            log.flush()
        shutil.rmtree(folder, ignore_errors=True)


def _start_web(count, *, environment, uvicorn_options, folder):
    """`count` uvicorn processes of one worker each, web1..webN, each on a free port of its own."""
    web = []
    for number in range(1, count + 1):
        port = free_port()
        options = ["--timeout-graceful-shutdown", "5", *uvicorn_options]
        command = site.uvicorn_command(port=port, workers=1, environment=environment, options=options)
        process = _start(f"web{number}", command, environment=environment, folder=folder)
        process.url = f"http://127.0.0.1:{port}"
        web.append(process)
    return web


def _start_celery(count, *, environment, pool, concurrency, folder):
    """`count` Celery workers, celery1..celeryN (logging at info: their " ready." line says they are)."""
    return [
        _start(
            f"celery{number}",
            site.celery_worker_command(name=f"celery{number}", pool=pool, concurrency=concurrency, loglevel="info"),
            environment=environment,
            folder=folder,
        )
        for number in range(1, count + 1)
    ]


def _start_beat(*, environment, folder):
    command = site.celery_beat_command(schedule=folder / "celerybeat-schedule", loglevel="info")
    return _start("beat", command, environment=environment, folder=folder)


def _start_balancer(haproxy, *, web, health_host, folder, template=None):
    """HAProxy on a free port in front of `web`, configured from the template; returns the Stack it heads."""
    port = free_port()
    stats_socket = folder / "haproxy.sock"
    config = folder / "haproxy.cfg"
    servers = [(process.name, process.url.removeprefix("http://")) for process in web]
    config.write_text(
        render_haproxy_config(
            bind=f"127.0.0.1:{port}",
            servers=servers,
            stats_socket=stats_socket,
            health_host=health_host,
            **({"template": template} if template else {}),
        )
    )
    command = [haproxy, "-db", "-f", str(config)]
    balancer = _start(
        "haproxy", command, environment=dict(os.environ), folder=folder, preexec_fn=_raise_open_files_limit
    )
    url = f"http://127.0.0.1:{port}"
    return Stack(url=url, balancer=balancer, web=web, stats_socket=stats_socket, folder=folder)


def _wait_until_serving(stack, *, health_host, seconds):
    """Until HAProxy has every web process up and answers, and every Celery worker is ready."""

    def in_rotation():
        try:
            states = [row["status"] for row in stack.balancer_stats().values()]
        except OSError:
            return False
        return len(states) == len(stack.web) and all(state.startswith("UP") for state in states)

    balancer = [stack.balancer]
    _wait_for(in_rotation, processes=balancer, what="HAProxy with every web process up", seconds=seconds)
    _wait_for(lambda: _answers(stack.url, health_host), processes=balancer, what="HAProxy answering", seconds=10)
    _wait_for(
        lambda: all(" ready." in _tail(process, 100_000) for process in stack.celery),
        processes=stack.celery + ([stack.beat] if stack.beat else []),
        what="every Celery worker ready",
        seconds=seconds,
    )
