"""A capped hold waits for one stripe's commit, not for all of them, and a client has stripes by its cap
(issue 16, point 3).

0012 counted every client in 8 stripes and sent a hold that found every stripe with room held by other calls
to the slow path, which locks every stripe and so waits for the commits of all the calls holding them. With 2
web processes of 10 connections each, more of one key's calls are between their take and their commit than
it has stripes, and a capped key held a tenth less than an uncapped one (docs/performance, sitting 6).

Two changes, each found by sampling what PostgreSQL's sessions wait for during the capped benchmark:
- Such a hold now waits for the commit of one stripe's call, as it did for 0009's one counter row, and takes
  that stripe if it still has room; the slow path is left for a client near its cap or whose cap changed.
  Callers waiting at once are spread over the stripes (by their backend's pid), not queued on the roomiest.
- That left the ends of holds: a release gives its seats back to its own stripe and waits while a hold or
  another release holds it (0.38 of a session on average, against 0.07 for the holds). A client now has one
  stripe per 10 seats of its cap, at least 2 and at most 32: a key's default 200 has 20, the website's 40 per
  address 4, the benchmark's 4000 has 32, more than the connections of two processes' pools. A stripe's share
  of a fresh count is then about 10 seats or more, room for the largest hold.

The wait must not close a cycle with a slow path, which locks the stripes in order. A call that waits on one
stripe holds no other of the client's (unless its claims took over the client's lapsed hold, as before), but
FOR UPDATE in READ COMMITTED keeps a row it locked whose new version fails the WHERE clause (the stripe had no
room once its call committed): the call would then take the slow path holding a stripe out of order. So the
fast path and the wait run in a block of their own, rolled back (and the rows it locked let go) when neither
took a stripe. The block is a subtransaction; a capped hold pays it once.

Counts made under 0012 keep their 8 stripes until the client's next slow path, which adds the stripes its
cap calls for (never removes any: the allowances are spread over all of them).
"""

from importlib import import_module

from django.db import migrations

FUNCTION = r"""
-- Take p_added seats of the client's cap p_cap for a hold of the show (or for a hold that grows), on one
-- stripe of the client's count; or refuse client_hold_cap. Returns the stripe, locked until commit (the
-- caller writes the reservation with capped_seats and this cap_stripe, and the trigger adds the seats there),
-- and the seats freed by expiring the client's lapsed holds. p_stripe: the stripe a growing hold counts on
-- (a hold stays on its stripe), NULL for any.
-- The fast path locks one stripe that was computed for p_cap and has room (allowance - held) for p_added,
-- the roomiest first, skipping stripes other calls hold (FOR UPDATE SKIP LOCKED): holds of one client don't
-- wait for each other and, since a client's stripes are its own, never for other clients. When every stripe
-- with room is held by other calls, it waits for one of them (the first with room counted from the caller's
-- backend pid, so that waiters spread) and takes it if it still has room once that call commits. Both run in
-- a block that is rolled back when neither took a stripe, so that what they locked is let go.
-- The slow path, when no stripe had room or the stripes were computed for another cap (staff changed the
-- key's), locks every stripe of the client's count in stripe order, making those its cap calls for (one per
-- 10 seats, 2 to 32) the first time or when the cap grew, and waiting for the commits of the calls that hold
-- them; bookings_check_client_cap then sums them exactly (expiring lapsed holds of the client if that is what
-- it takes, else refusing) and the allowances are rebalanced for p_cap: each stripe's becomes what it holds
-- plus an equal share of the spare seats, p_added more on the stripe taken, so that they sum to p_cap. A refusal rolls back the call and with it anything the slow path
-- changed. A cycle can still close when a call already holds a stripe of the client as it waits (its claims
-- took over a lapsed hold of the same client, whose seats went back to that stripe): PostgreSQL then ends one
-- of the calls, whole, and the call is made again (bookings.services.holds.call_function).
CREATE OR REPLACE FUNCTION bookings_take_client_seats(
    p_show bigint, p_api_key bigint, p_address inet, p_cap int, p_added int, p_stripe int, p_at timestamptz,
    OUT p_taken int, OUT p_freed jsonb
) LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    v_stripes CONSTANT int := least(32, greatest(2, p_cap / 10));
    v_client text := bookings_client_of(p_api_key, p_address);
    v_waited_on int;
    v_found int;
    v_held int;
    v_spare int;
BEGIN
    p_freed := '[]';
    BEGIN
        SELECT counted.stripe INTO p_taken FROM bookings_clientheldseats counted
         WHERE counted.show_id = p_show AND counted.client = v_client AND counted.cap = p_cap
           AND counted.allowance - counted.held >= p_added AND (p_stripe IS NULL OR counted.stripe = p_stripe)
         ORDER BY counted.allowance - counted.held DESC, counted.stripe
         LIMIT 1 FOR UPDATE SKIP LOCKED;
        IF p_taken IS NOT NULL THEN RETURN; END IF;
        -- Chosen unlocked, then locked alone: a lock that skips to the next row would wait twice.
        SELECT counted.stripe INTO v_waited_on FROM bookings_clientheldseats counted
         WHERE counted.show_id = p_show AND counted.client = v_client AND counted.cap = p_cap
           AND counted.allowance - counted.held >= p_added AND (p_stripe IS NULL OR counted.stripe = p_stripe)
         ORDER BY mod(counted.stripe + pg_backend_pid(), v_stripes), counted.stripe
         LIMIT 1;
        IF v_waited_on IS NOT NULL THEN
            SELECT counted.stripe INTO p_taken FROM bookings_clientheldseats counted
             WHERE counted.show_id = p_show AND counted.client = v_client AND counted.stripe = v_waited_on
               AND counted.cap = p_cap AND counted.allowance - counted.held >= p_added
               FOR UPDATE;
            IF p_taken IS NOT NULL THEN RETURN; END IF;
        END IF;
        RAISE SQLSTATE 'TKR02';
    EXCEPTION WHEN SQLSTATE 'TKR02' THEN
        p_taken := NULL;  -- and the stripes this block locked are let go
    END;
    -- The slow path. Stripes another call is making are not seen until it commits: the insert waits for it.
    SELECT count(*) INTO v_found FROM (
        SELECT counted.stripe FROM bookings_clientheldseats counted
         WHERE counted.show_id = p_show AND counted.client = v_client ORDER BY counted.stripe FOR UPDATE) locked;
    IF v_found < v_stripes THEN
        INSERT INTO bookings_clientheldseats (show_id, client, stripe, held, allowance, cap)
        SELECT p_show, v_client, made.stripe, 0, 0, NULL FROM generate_series(0, v_stripes - 1) made (stripe)
        ON CONFLICT DO NOTHING;
        SELECT count(*) INTO v_found FROM (
            SELECT counted.stripe FROM bookings_clientheldseats counted
             WHERE counted.show_id = p_show AND counted.client = v_client ORDER BY counted.stripe FOR UPDATE) locked;
    END IF;
    p_freed := bookings_check_client_cap(p_show, p_api_key, p_address, p_cap, p_added, p_at);
    SELECT sum(counted.held) INTO v_held FROM bookings_clientheldseats counted
     WHERE counted.show_id = p_show AND counted.client = v_client;
    v_spare := p_cap - v_held - p_added;
    p_taken := coalesce(p_stripe, 0);
    UPDATE bookings_clientheldseats counted
       SET cap = p_cap,
           allowance = counted.held + v_spare / v_found + (counted.stripe < mod(v_spare, v_found))::int
                     + CASE WHEN counted.stripe = p_taken THEN p_added ELSE 0 END
     WHERE counted.show_id = p_show AND counted.client = v_client;
END $$;
"""


def wait_for_one(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTION)


def wait_for_all(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        # 0012's text redefines its functions as they were; the others are the same as they are now.
        schema_editor.execute(import_module("bookings.migrations.0012_client_caps_in_stripes").FUNCTIONS)


class Migration(migrations.Migration):
    dependencies = [("bookings", "0013_taken_seats_function")]

    operations = [migrations.RunPython(wait_for_one, wait_for_all)]
