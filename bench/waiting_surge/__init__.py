"""A waiting surge: thousands of long-polling waiters and a thousand seat-map watchers on ONE web process.

Usage:
    python -m bench.waiting_surge [--waiters 5000] [--watchers 1000] [--seats-wanted 1-4] [--pool-max 8]
                                  [--hold-seconds 20] [--lapse-spread 10] [--pay-share 0.8]
                                  [--max-serving-seconds 300] [--balanced K --celery-workers 2] [--json FILE]
    Developing on the shared machine: --waiters 500 --watchers 100 --pool-max 6

What it does, all on this machine:
1. Its own database (ticketing_bench_surge) and Redis database (/5), both emptied of earlier runs. The hold
   benchmark's show (bench/show.py.prepare_show: a 2,000-seat hall, tomorrow); every one of its seats held
   by 200 other buyers (10 seats each, through the hold service) on a clock long enough for the joins;
   then ANALYZE, as autovacuum would (harness.refresh_planner_statistics).
2. One uvicorn process (one worker, as harness.server_running starts it, DJANGO_DEBUG=0) and, as `make serve`
   runs them, a Celery worker (prefork, --worker-concurrency) and a separate Celery beat, so that the sweep of
   lapsed holds and the serving of the line run as in production. Every process gets the short hold clock
   (TICKETING_HOLD_SECONDS, TICKETING_HOLD_GRACE_SECONDS): the holds the line's waiters are given run on it.
   With --balanced K: K uvicorn processes behind HAProxy instead (bench/harness/balancer.py), and --celery-workers N
   workers: the same checks then show the line served in order and pushes crossing processes.
3. W WebSocket watchers on ws/shows/{id}/ (as bench/seat_push.py), then N waiters join the line one by one
   (POST /api/v1/shows/{id}/waitlist, --join-concurrency at a time, seats_wanted drawn from --seats-wanted).
   Each waiter then long-polls (GET /api/v1/waitlist/{id}?session_id=&wait=60&version=) over a keep-alive
   connection of its own, polling again at once whenever it is answered, like the waiting page does. The
   script waits until every waiter's poll has parked (its status line is in, its body not), then measures the
   server (a few polls are always between two answers: the figures count those parked at that moment).
4. The holders' clocks run out: the script moves their holds' expiry to a moment spread over the next
   --lapse-spread seconds (the only write the script makes behind the app's back; it stands for the minutes
   of a real hold clock). Beat's sweep expires them, the worker serves the line. A served waiter pays with
   probability --pay-share (sandbox card), else walks away and its hold lapses on the short clock, so its
   seats go to the next waiters in line: the line is served in waves until it is empty, nothing can move any
   more (no hold left to lapse), or --max-serving-seconds pass.
5. Figures (printed as JSON; --json FILE also writes them): the web process's RSS and threads idle, with the
   watchers connected (before joining), with every poll parked and at the end (and MB per parked poll), its
   database sessions open/busy while the polls are parked; join latency; for every served waiter, the time
   from being served to its long poll answering, measured from the after-commit notice of its serving
   (the first "line.moved" naming it, heard by a listener of this script on the channel layer, as the server
   hears it) and
   from its reservation's created_at (the serving transaction's clock, read from the database); WebSocket
   push latency (each seat-map message from the moment this script's listener heard it on the channel layer
   to each watcher reading it) and pushes missing; how many were served, paid, ended Show Full; the event-loop
   lag of this load generator (when it lags, every latency above is inflated by it); CPU per process
   (figures.cpu_report, plus the Celery worker and beat) for the joining and the serving phases.
6. Checks, from PostgreSQL: the line was served by its rule (waiting/services.py serve_waiting_line: strictly
   from the head; the first head that can't be seated stops the serving, whatever those behind it want), i.e.
   no waiter was served while one that joined earlier was still in the line. The transaction that took each
   waiter out of the line is its row's xmin (nothing writes a waiter once it has left the line; serving
   transactions take the line lock before their first write, so their transaction ids follow the order they
   ran in; created_at can't order them: a batch of waiters shares one). Every served waiter's hold has exactly
   the seats it wanted; every served waiter's poll answered with its reservation; 0 seats with two live
   claims; held + booked + free = hall size; 0 partial holds. The exit status is 1 on any violation, 5xx,
   unexpected status, connection error or poll that never answered.

Everything shares the machine's 2 cores with PostgreSQL, Redis and the load generator (one asyncio process,
uvloop): the report says how the CPU was split.

Why a hand-written asyncio client and not Locust (which the HTTP benchmarks use): Locust has no built-in
WebSocket client, and this scenario is mostly WebSockets and long polls held open: 1,000 seat-map sockets and
5,000 polls parked at once, each on a keep-alive connection of its own, in one process on the 2 cores the
server also runs on, with the moment each poll parked (its status line in, its body not) told apart from the
moment it answered. Even httpx's pool stalls a load generator at thousands of open connections
(tests/waiting/test_many_long_polls.py), so the polls go over plain asyncio streams (long_poll.py);
the joins and payments, a few at a time, go through httpx.

The modules: __main__ (the options and the run), database (the show's holders, the line, the server's
sessions), listener (the process hearing the channel layer), waiters (joins, long polls, payments), long_poll
(a poll's connection), watchers (the seat-map sockets and their push latency), phases (the surge, phase by
phase), figures (memory, CPU, latencies), invariants (the checks from PostgreSQL), report (the JSON report).
"""
