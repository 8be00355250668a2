"""What the benchmarks (bench/), the fault scenarios (chaos/) and the tests share to run the site for real.

- processes: start a process in a session of its own, stop it by its pid (SIGTERM, then SIGKILL), kill -9 it,
  free loopback ports, the processes below one and their CPU time (/proc).
- site: the project's own processes as production runs them (uvicorn, Celery workers and beat, the payment
  sandbox's HTTP service) and their environment: one command line for each.
- balancer: K web processes behind HAProxy, with Celery workers and beat (the scaled-out stack); haproxy:
  HAProxy's executable, its configuration from deploy/haproxy.cfg, its counters.
- services: a PostgreSQL cluster and a Redis server of a run's own, to restart or kill.
- database: a scenario's database, Django in the scenario's process, the planner's statistics.
- servers: the server a scenario asks for (--workers, --balanced, --pool-max) and a sale served on it.
- clients: the load generator's HTTP clients, timed requests, 503s sent again after their Retry-After.
- figures: where the CPU went, percentiles, the JSON report and the commit it belongs to.

Nothing here knows a scenario's show, buyers or invariants: those are the scenario's (bench/show.py makes the
benchmarks' show).
"""
