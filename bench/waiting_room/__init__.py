"""The on-sale waiting room (issue 20) at full size: 100,000 visitors join one show's room before the sale opens,
then the sale opens and the room admits them at its rate into a 2,000-seat hall.

Usage:
    python -m bench.waiting_room [--visitors 100000] [--rate 3000] [--drive 1500] [--late 200]
                                 [--join-concurrency 300] [--json FILE]
    A smoke run: --visitors 5000 --drive 600 --late 50
    --api-joins K (NOT the issue's figure: a shortcut for short runs) joins K through the API on each server and
    writes the rest into the room in one INSERT; by default every visitor joins through the API, on each server.

What it does, all on this machine (2 cores shared by the servers, PostgreSQL, Redis and this load generator):
1. Its own database (ticketing_bench_room) and Redis database (/10, prefix roombench:), emptied of earlier runs'
   on-sales and visitors; the benchmarks' show (bench/show.py: a 2,000-seat hall, tomorrow).
2. Joining on ONE uvicorn process: an on-sale of the show whose room is open and whose sale opens tomorrow
   (cinemas.on_sales.mark_on_sale); N partner-key sessions (not challenged, not address-capped) each POST
   /api/v1/on-sales/{id}/room, --join-concurrency at a time. Figures: joins/s (per 1-s window: median; and
   overall), join latency; memory per visitor: PostgreSQL (pg_total_relation_size of waiting_roomvisitor with
   its indexes / rows), Redis (used_memory before and after, and MEMORY USAGE of sampled presence keys), the
   web process's RSS grown per joined visitor. That on-sale is then deleted (a show is in one room at a time).
3. Joining again behind HAProxy with 2 web processes (bench/harness/balancer.py, with one Celery worker and beat
   running waiting.tend_rooms every second): a fresh on-sale, the same figures.
4. The opening: the second on-sale's opening moved to a few seconds ahead (mark_on_sale, as staff would);
   beat's tend_rooms draws the room and admits --rate a minute. The bench drives the --drive first places
   (read from the database once drawn: the only visitors whose pages would be asking often) and --late
   visitors who join after the opening, one at a time: each polls GET /api/v1/room/{visitor}?session_id= as
   its wait says (every 1-30 s: the estimated wait, at most 30 s), and once Admitted holds 1-4 seats best
   available with its Admission-Pass, pays for them (the sandbox card), or takes a 409: `retry` (others'
   unpaid holds may come free: it tries again after Retry-After while its pass lasts) or `show_full` (done).
5. The drain: once every driven early visitor is done, the room's rate is raised to --drain-rate (staff would,
   the show being full) so that the room reaches the late joiners at the back; they take their Show Full.
6. Checks, from PostgreSQL: 0 seats with two live claims; held + booked + free = the hall; every driven visitor
   admitted got a 201 (then paid) or a 409 show_full, nothing else (no 5xx, no connection error); the
   admission order (admitted_at, place) equals draw_order(room.secret, the early visitors' ids) followed by
   those who joined after the opening in place order, and the late joiners' places follow the order they
   joined in; the admissions per second (from admitted_at) against the rate; the holds per second against the
   hold path's measured capacity (docs/performance/README.md, 275 granted holds/s at 200 clients).

Figures are printed as JSON (--json FILE also writes them, and FILE with .md a markdown summary).

The load generator's own failures are not the room's findings, so its clients do what a page would
(visitors.sent_again): a web process's 503 is sent again after its Retry-After, HAProxy's own 502/503/504 and a
time-out (60 s) or cut connection after a back-off, for requests safe to repeat (polls, joins, holds and payments
under an Idempotency-Key); HAProxy's health checks get more slack than deploy/haproxy.cfg's
(__main__.HEALTH_CHECK_SLACK), so that a saturated machine does not take every web process out of rotation.
Every retry is counted in the figures ("sent again: ...").

Presence: the bench's visitors that are not driven stand for visitors whose pages are open (long polls), so the
servers run with a grace of an hour (TICKETING_ROOM_GRACE_SECONDS): nobody is passed over as gone.

The modules: __main__ (options, the run), database (on-sales, memory, the run's rows read back), visitors (the
joins, the polls, holds and payments), checks (the invariants), report (figures, JSON and markdown).
"""
