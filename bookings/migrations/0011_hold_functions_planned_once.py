"""The hold functions, fast with whatever plan PostgreSQL caches for them (issue 16: refusals as cheap as holds).

PL/pgSQL plans a function's statements a few times with the call's values, then may keep one generic plan for
every call. Measured on a full 2,000-seat hall after ANALYZE, the generic plans of 0009's statements that
filter by a parameter array (`seat.id = ANY (p_seats)`) read all 2,000 of the hall's seats or live claims to
find two, and the count of a show's lapsed holds read every reservation of the show (8 ms with 128,000 of
them). Here such statements start from the array and look each seat up in a LATERAL subquery with LIMIT 1
(one live claim per seat; the planner can't merge it into a join), so the plan is index probes whatever the
planner knows; a show's lapsed holds and a hold's live claims have indexes of their own. The helpers written
in SQL are PL/pgSQL now: PostgreSQL 15 plans a non-inlined SQL function's query again on every call.

Refusals paid most: bookings_claim caught the unique_violation in an EXCEPTION block, which opens a
subtransaction on every call, and a refusal then counted the lapsed holds even when the show's live claims
already decide. Now the insert skips seats somebody holds (ON CONFLICT DO NOTHING waits for an undecided
claim of the same seat, as the failing insert did; the partial unique index still decides every race and
without it both claimers would win, as before), lapsed holds in the way are taken over and the skipped seats
tried again; when seats are still missing the caller refuses, and the refusal's error undoes the claims that
went in, so a hold stays all or none.

Same names, arguments and answers as 0009's, so callers are unchanged; going back puts 0009's bodies back.
"""

import re
from importlib import import_module

import django.db.models.deletion
from django.db import migrations, models

FUNCTIONS = r"""
-- Keeps bookings_showseatcount (see ShowSeatCount): what each statement on the claims changed of a show's
-- live and booked claims of each type, added to this session's own row. One statement, one upsert.
CREATE OR REPLACE FUNCTION bookings_count_show_seats() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_shows bigint[];
    v_types text[];
    v_live int[];
    v_booked int[];
BEGIN
    -- Each event knows only its own transition tables (new_claims, old_claims): +1 a live claim now, -1 before.
    -- A statement that changed no claim (a refused claim's insert) still fires its trigger: it ends there.
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(show_id), array_agg(seat_type), array_agg(1), array_agg(booked::int)
          INTO v_shows, v_types, v_live, v_booked FROM new_claims WHERE released_at IS NULL;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(show_id), array_agg(seat_type), array_agg(-1), array_agg(-booked::int)
          INTO v_shows, v_types, v_live, v_booked FROM old_claims WHERE released_at IS NULL;
    ELSE
        SELECT array_agg(show_id), array_agg(seat_type), array_agg(live), array_agg(live_booked)
          INTO v_shows, v_types, v_live, v_booked
          FROM (SELECT show_id, seat_type, 1 live, booked::int live_booked FROM new_claims WHERE released_at IS NULL
                UNION ALL
                SELECT show_id, seat_type, -1, -booked::int FROM old_claims WHERE released_at IS NULL) change;
    END IF;
    IF v_shows IS NULL THEN RETURN NULL; END IF;
    INSERT INTO bookings_showseatcount AS counted (show_id, seat_type, backend, claimed, booked)
    SELECT show_id, seat_type, pg_backend_pid(), sum(live), sum(live_booked)
      FROM unnest(v_shows, v_types, v_live, v_booked) change (show_id, seat_type, live, live_booked)
     GROUP BY show_id, seat_type HAVING sum(live) <> 0 OR sum(live_booked) <> 0
    ON CONFLICT (show_id, seat_type, backend) DO UPDATE
       SET claimed = counted.claimed + EXCLUDED.claimed, booked = counted.booked + EXCLUDED.booked;
    RETURN NULL;
END $$;

CREATE TRIGGER bookings_seatclaim_count_inserted AFTER INSERT ON bookings_seatclaim
REFERENCING NEW TABLE AS new_claims FOR EACH STATEMENT EXECUTE FUNCTION bookings_count_show_seats();
CREATE TRIGGER bookings_seatclaim_count_updated AFTER UPDATE ON bookings_seatclaim
REFERENCING OLD TABLE AS old_claims NEW TABLE AS new_claims FOR EACH STATEMENT
EXECUTE FUNCTION bookings_count_show_seats();
CREATE TRIGGER bookings_seatclaim_count_deleted AFTER DELETE ON bookings_seatclaim
REFERENCING OLD TABLE AS old_claims FOR EACH STATEMENT EXECUTE FUNCTION bookings_count_show_seats();

INSERT INTO bookings_showseatcount (show_id, seat_type, backend, claimed, booked)
SELECT show_id, seat_type, 0, count(*), count(*) FILTER (WHERE booked)
  FROM bookings_seatclaim WHERE released_at IS NULL GROUP BY show_id, seat_type;

CREATE OR REPLACE FUNCTION bookings_client_of(p_api_key bigint, p_address inet) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN CASE WHEN p_api_key IS NOT NULL THEN 'key:' || p_api_key
                WHEN p_address IS NOT NULL THEN 'address:' || host(p_address) END;
END $$;

-- Which refusal fits when p_count seats of these types can't be had (API.md's three 409 statuses): free now
-- (nobody holds or booked them; a hold past its time holds nothing) -> seats_unavailable; free once every
-- hold lapses -> retry; else show_full. The show's live and booked claims are summed from its counters (the
-- sessions' rows of bookings_showseatcount); the holds past their time that the sweep has not reached yet
-- are counted only when they decide.
CREATE OR REPLACE FUNCTION bookings_refusal(p_show bigint, p_types text[], p_count int, p_at timestamptz)
RETURNS text LANGUAGE plpgsql STABLE SET enable_seqscan = off AS $$
DECLARE
    v_capacity int;
    v_claimed int;
    v_booked int;
    v_lapsed int;
BEGIN
    SELECT coalesce(sum((hall.capacity ->> kind)::int), 0) INTO v_capacity
      FROM cinemas_show the_show JOIN cinemas_hall hall ON hall.id = the_show.hall_id,
           (SELECT DISTINCT unnest(p_types)) kinds (kind)
     WHERE the_show.id = p_show;
    SELECT coalesce(sum(counted.claimed), 0), coalesce(sum(counted.booked), 0) INTO v_claimed, v_booked
      FROM bookings_showseatcount counted WHERE counted.show_id = p_show AND counted.seat_type = ANY (p_types);
    IF v_capacity - v_claimed >= p_count THEN RETURN 'seats_unavailable'; END IF;
    IF v_capacity - v_booked < p_count THEN RETURN 'show_full'; END IF;
    SELECT count(*) INTO v_lapsed
      FROM bookings_reservation hold JOIN bookings_seatclaim claim ON claim.reservation_id = hold.id
     WHERE hold.status = 'Reserved' AND hold.show_id = p_show AND hold.held_until <= p_at
       AND claim.released_at IS NULL AND claim.seat_type = ANY (p_types);
    IF v_capacity - (v_claimed - v_lapsed) >= p_count THEN RETURN 'seats_unavailable'; END IF;
    RETURN 'retry';
END $$;

-- Release every live claim of these reservations and give them p_status (Expired or Cancelled). The caller
-- has locked the reservations. Returns the freed seats as [{"show", "version", "seats": [id, ...]}].
CREATE OR REPLACE FUNCTION bookings_release(p_reservations uuid[], p_status text, p_at timestamptz)
RETURNS jsonb LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    v_version bigint;
    v_freed jsonb;
BEGIN
    IF cardinality(p_reservations) = 0 THEN RETURN '[]'; END IF;
    v_version := nextval('bookings_seat_version');
    WITH freed AS (
        UPDATE bookings_seatclaim claim SET released_at = p_at, version = v_version
         WHERE claim.reservation_id = ANY (p_reservations) AND claim.released_at IS NULL
        RETURNING claim.show_id, claim.seat_id
    ), ended AS (
        UPDATE bookings_reservation hold SET status = p_status, ended_at = p_at WHERE hold.id = ANY (p_reservations)
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object('show', show_id, 'version', v_version, 'seats', seats)), '[]')
      INTO v_freed
      FROM (SELECT show_id, jsonb_agg(seat_id ORDER BY seat_id) seats FROM freed GROUP BY show_id) by_show;
    RETURN v_freed;
END $$;

-- Expire the holds past their time that still claim any of these seats of the show. One locked by someone
-- else (the sweep, another claimer, a late payment) is skipped rather than waited for, so claimers never wait
-- on each other in a cycle; the caller's next insert waits only for that row's fate. Seat by seat, from
-- its live claim to its hold (LATERAL: never from all the holds past their time).
CREATE OR REPLACE FUNCTION bookings_take_over_lapsed(p_show bigint, p_seats bigint[], p_at timestamptz)
RETURNS jsonb LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    v_lapsed uuid[];
BEGIN
    SELECT array_agg(lapsed.id) INTO v_lapsed
      FROM unnest(p_seats) wanted (seat)
     CROSS JOIN LATERAL (SELECT claim.reservation_id FROM bookings_seatclaim claim
                          WHERE claim.show_id = p_show AND claim.seat_id = wanted.seat AND claim.released_at IS NULL
                          LIMIT 1) live
     CROSS JOIN LATERAL (SELECT hold.id FROM bookings_reservation hold
                          WHERE hold.id = live.reservation_id AND hold.status = 'Reserved' AND hold.held_until <= p_at
                            FOR UPDATE SKIP LOCKED) lapsed;
    RETURN bookings_release(coalesce(v_lapsed, '{}'), 'Expired', p_at);
END $$;

-- Claim p_seats (with their prices) for the reservation, all or none; lapsed holds in the way are taken over.
-- The partial unique index of live claims decides every race: a seat with a live claim is skipped. Claims go
-- in in seat-id order, so two holds of overlapping seats wait on each other's first shared seat instead of
-- deadlocking. Returns whether the claims went in, and the seats freed by takeovers. When they did not, some
-- may have: the caller refuses, and the refusal's error undoes them with the rest of the call.
CREATE OR REPLACE FUNCTION bookings_claim(
    p_reservation uuid, p_show bigint, p_seats bigint[], p_types text[], p_prices numeric[],
    INOUT p_version bigint, p_at timestamptz, OUT p_claimed boolean, OUT p_freed jsonb
) LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    v_missing bigint[] := p_seats;
    v_freed jsonb;
    v_claimed_at bigint;
BEGIN
    p_freed := '[]';
    FOR attempt IN 1..3 LOOP
        WITH claimed AS (
            INSERT INTO bookings_seatclaim (reservation_id, show_id, seat_id, seat_type, price, version, booked)
            SELECT p_reservation, p_show, wanted.seat, wanted.kind, wanted.price, p_version, false
              FROM unnest(p_seats, p_types, p_prices) wanted (seat, kind, price)
             WHERE wanted.seat = ANY (v_missing)
             ORDER BY wanted.seat
            ON CONFLICT DO NOTHING
            RETURNING seat_id
        )
        SELECT coalesce(array_agg(seat), '{}') INTO v_missing
          FROM unnest(v_missing) seat WHERE seat NOT IN (SELECT seat_id FROM claimed);
        EXIT WHEN cardinality(v_missing) = 0;
        v_freed := bookings_take_over_lapsed(p_show, v_missing, p_at);
        EXIT WHEN v_freed = '[]';
        p_freed := p_freed || v_freed;
    END LOOP;
    p_claimed := cardinality(v_missing) = 0;
    IF p_claimed AND p_freed <> '[]' THEN
        -- The freed seats were announced with a newer version than this call's claims: outdo it. (Its claims
        -- are the reservation's at its version; "live" the planner might look up among all the show's.)
        v_claimed_at := p_version;
        p_version := nextval('bookings_seat_version');
        UPDATE bookings_seatclaim SET version = p_version
         WHERE reservation_id = p_reservation AND version = v_claimed_at;
    END IF;
END $$;

-- The buyer's live seats of the show (booked, or held and not past their time), for the session cap. Plain
-- index scans are off: a generic plan could otherwise walk the whole primary key of the reservations (on
-- statistics of a small table the planner finds that as cheap), and a bitmap scan needs the conditions of
-- an index, so the buyer's index (show, session) is the one way in.
CREATE OR REPLACE FUNCTION bookings_seats_of_buyer(
    p_show bigint, p_api_key bigint, p_session text, p_at timestamptz, p_excluding uuid DEFAULT NULL
) RETURNS int LANGUAGE plpgsql STABLE SET enable_seqscan = off SET enable_indexscan = off AS $$
BEGIN
    RETURN (SELECT count(*) FROM bookings_reservation hold
              JOIN bookings_seatclaim claim ON claim.reservation_id = hold.id AND claim.released_at IS NULL
             WHERE hold.show_id = p_show AND hold.session_id = p_session
               AND hold.api_key_id IS NOT DISTINCT FROM p_api_key
               AND hold.id IS DISTINCT FROM p_excluding
               AND (hold.status = 'Booked' OR (hold.status = 'Reserved' AND hold.held_until > p_at)));
END $$;

-- The chosen seats of the show's hall with this show's price for each, in seat-id order, and as the answer
-- lists them (map order: [id, row, number, type, price]); or the refusal for a bad choice: none, too many,
-- one twice, or seats that are not in the hall.
CREATE OR REPLACE FUNCTION bookings_seats_to_claim(
    p_show cinemas_show, p_seats bigint[], p_max_seats int,
    OUT ids bigint[], OUT types text[], OUT prices numeric[], OUT seats jsonb
) LANGUAGE plpgsql STABLE SET enable_seqscan = off AS $$
DECLARE
    v_count int := coalesce(cardinality(p_seats), 0);
BEGIN
    IF v_count = 0 THEN PERFORM bookings_refuse('no_seats'); END IF;
    IF v_count > p_max_seats THEN PERFORM bookings_refuse('too_many_seats'); END IF;
    IF (SELECT count(DISTINCT seat) FROM unnest(p_seats) seat) <> v_count THEN
        PERFORM bookings_refuse('duplicate_seats');
    END IF;
    SELECT array_agg(seat.id ORDER BY seat.id), array_agg(seat.seat_type ORDER BY seat.id),
           array_agg(price.price ORDER BY seat.id),
           jsonb_agg(jsonb_build_array(seat.id, seat.row_label, seat.number, seat.seat_type, price.price::text)
                     ORDER BY seat.y, seat.x)
      INTO ids, types, prices, seats
      FROM unnest(p_seats) wanted (id)
     CROSS JOIN LATERAL (SELECT * FROM cinemas_seat seat
                          WHERE seat.id = wanted.id AND seat.hall_id = p_show.hall_id LIMIT 1) seat
      JOIN cinemas_showprice price ON price.show_id = p_show.id AND price.seat_type = seat.seat_type;
    IF coalesce(cardinality(ids), 0) <> v_count THEN
        PERFORM bookings_refuse('seat_not_in_hall', jsonb_build_object('outside', (
            SELECT jsonb_agg(seat ORDER BY seat) FROM unnest(p_seats) seat WHERE seat <> ALL (coalesce(ids, '{}')))));
    END IF;
END $$;

"""


# Every statement of these finds its rows by index probes whatever the parameters, so one generic plan fits
# every call: planning each call anew (PL/pgSQL's default while custom plans look cheaper) cost more than
# running the statements.
PLANNED_ONCE = (
    "bookings_count_show_seats",
    "bookings_refusal",
    "bookings_release",
    "bookings_take_over_lapsed",
    "bookings_claim",
    "bookings_seats_of_buyer",
    "bookings_seats_to_claim",
    "bookings_check_client_cap",
    "bookings_hold_seats",
    "bookings_change_seats",
    "bookings_cancel_hold",
    "bookings_release_lapsed",
)


def replace_functions(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTIONS)
        for function in PLANNED_ONCE:
            schema_editor.execute(f"ALTER FUNCTION {function} SET plan_cache_mode = force_generic_plan")


def put_back_0009(apps, schema_editor):
    """Going back: 0009's own definitions of the functions replaced here, and no counters."""
    if schema_editor.connection.vendor != "postgresql":
        return
    replaced = set(re.findall(r"CREATE OR REPLACE FUNCTION (\w+)\(", FUNCTIONS)) - {"bookings_count_show_seats"}
    earlier = import_module("bookings.migrations.0009_hold_functions").FUNCTIONS
    for definition in re.finditer(r"CREATE OR REPLACE FUNCTION (\w+)\(.*?\$\$.*?\$\$;", earlier, re.S):
        if definition.group(1) in replaced:
            schema_editor.execute(definition.group())
    for function in PLANNED_ONCE:
        schema_editor.execute(f"ALTER FUNCTION {function} RESET plan_cache_mode")
    for event in ("inserted", "updated", "deleted"):
        schema_editor.execute(f"DROP TRIGGER bookings_seatclaim_count_{event} ON bookings_seatclaim")
    schema_editor.execute("DROP FUNCTION bookings_count_show_seats")


class Migration(migrations.Migration):
    dependencies = [("bookings", "0010_pay_functions"), ("cinemas", "0004_order_seats_and_prices_by_id")]

    operations = [
        migrations.AddIndex(
            model_name="reservation",
            index=models.Index(
                condition=models.Q(("status", "Reserved")),
                fields=["show", "held_until"],
                name="bookings_show_holds_lapsing",
            ),
        ),
        migrations.CreateModel(
            name="ShowSeatCount",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("seat_type", models.CharField(max_length=16)),
                ("backend", models.IntegerField()),
                ("claimed", models.IntegerField()),
                ("booked", models.IntegerField()),
                (
                    "show",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="cinemas.show",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("show", "seat_type", "backend"), name="bookings_showseatcount_one_per_session"
                    )
                ],
            },
        ),
        migrations.RunPython(replace_functions, put_back_0009),
    ]
