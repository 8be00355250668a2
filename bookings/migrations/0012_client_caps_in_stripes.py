"""The client caps in stripes: exact, and without a row every hold of one client waits on (issue 16, point 3).

Until now each client (an API key, or the website's visitors from one address) had one counter row per show,
and a hold's decisive check locked it until the hold committed: one key's holds of a show committed one after
another. Now the count is split into 8 rows per show and client, its stripes (escrow, or quota splitting).
Each stripe holds some of the client's seats (`held`) and may hold up to its `allowance`, a share of the cap
it records (`cap`): held <= allowance on every stripe (a CHECK constraint) and the allowances sum to at most
that cap, so the client holds at most its cap, exactly.

A hold takes its seats on one stripe with room for them, skipping stripes other calls hold (FOR UPDATE SKIP
LOCKED), so holds of one client don't wait on each other; the stripe is recorded on the reservation
(`cap_stripe`) and every end of the hold gives the seats back there, through the trigger, whoever writes the
reservation. Only when no stripe it can lock has room (the client nears its cap, or its cap changed) does a
hold take the slow path: lock every stripe of the client's count in stripe order, sum them exactly, refuse or
rebalance the allowances. bookings_take_client_seats says how; bookings_hold_seats and bookings_change_seats
are 0009's but for calling it, and the trigger and bookings_check_client_cap count in stripes.

Why 8 stripes. A stripe is locked only from a hold's take, the last step of its call, to its commit, so few of
the calls one client has running (a process's pool runs at most 10) are in that stretch at once: 8 stripes
leave the fast path a free one. And every stripe has a share of the client's spare seats: the slow path,
which waits, is needed only once no stripe has room for the hold, that is with at most 8 x (n - 1) seats to
spare for holds of n (the last 8 of the website's 40 seats per address for holds of two); 16 stripes would
double that stretch and halve each stripe's share (a key's default 200 gives each of 8 stripes 25 seats).

Counts made before this migration go to stripe 0 with an allowance of what they hold and no cap, so the
first hold of each client after it takes the slow path and rebalances. Going back sums the stripes into one
counter row per client and show and puts 0009's functions and trigger back.
"""

import re
from importlib import import_module

from django.db import migrations, models

FUNCTIONS = r"""
-- Add p_seats (negative: give them back) to what the client holds of the show on one stripe of its count. A
-- decrease updates that stripe (a hold's own, where its increase went), waiting only for the commit of a
-- call that holds it. An increase lands where bookings_take_client_seats made room and locked the stripe;
-- one nobody made room for (staff bringing a hold back, say) is counted all the same, its stripe's allowance
-- raised to fit and every stripe of the client marked as computed for no cap, so that the client's next hold
-- takes the slow path and rebalances against the whole count.
CREATE OR REPLACE FUNCTION bookings_add_client_seats(p_show bigint, p_client text, p_stripe int, p_seats int)
RETURNS void LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    v_cap int;
BEGIN
    IF p_seats < 0 THEN
        UPDATE bookings_clientheldseats counted SET held = counted.held + p_seats
         WHERE counted.show_id = p_show AND counted.client = p_client AND counted.stripe = p_stripe;
        RETURN;
    END IF;
    INSERT INTO bookings_clientheldseats AS counted (show_id, client, stripe, held, allowance, cap)
    VALUES (p_show, p_client, p_stripe, p_seats, p_seats, NULL)
    ON CONFLICT (show_id, client, stripe) DO UPDATE
       SET held = counted.held + EXCLUDED.held, allowance = greatest(counted.allowance, counted.held + EXCLUDED.held),
           cap = CASE WHEN counted.held + EXCLUDED.held <= counted.allowance THEN counted.cap END
    RETURNING counted.cap INTO v_cap;
    IF v_cap IS NULL THEN
        UPDATE bookings_clientheldseats counted SET cap = NULL
         WHERE counted.show_id = p_show AND counted.client = p_client AND counted.cap IS NOT NULL;
    END IF;
END $$;

-- Keeps bookings_clientheldseats: the seats each client holds unpaid of each show, counted from the
-- reservations' capped_seats while they are Reserved, on the stripe each names (cap_stripe). Whatever writes a
-- reservation (these functions, a payment, the sweep, staff through the ORM), the count follows: a hold that
-- ends, shrinks or is deleted gives its seats back to the stripe they were taken on.
CREATE OR REPLACE FUNCTION bookings_count_client_seats() RETURNS trigger
LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    v_before int := 0;
    v_after int := 0;
    v_before_client text;
    v_after_client text;
    v_before_stripe int;
    v_after_stripe int;
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.status = 'Reserved' THEN
        v_before_client := bookings_client_of(OLD.api_key_id, OLD.client_address);
        v_before := CASE WHEN v_before_client IS NULL THEN 0 ELSE OLD.capped_seats END;
        v_before_stripe := coalesce(OLD.cap_stripe, 0);
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.status = 'Reserved' THEN
        v_after_client := bookings_client_of(NEW.api_key_id, NEW.client_address);
        v_after := CASE WHEN v_after_client IS NULL THEN 0 ELSE NEW.capped_seats END;
        v_after_stripe := coalesce(NEW.cap_stripe, 0);
    END IF;
    IF v_before > 0 AND v_after > 0 AND v_before_client = v_after_client AND v_before_stripe = v_after_stripe THEN
        IF v_after <> v_before THEN
            PERFORM bookings_add_client_seats(NEW.show_id, v_after_client, v_after_stripe, v_after - v_before);
        END IF;
        RETURN NULL;
    END IF;
    IF v_before > 0 THEN
        PERFORM bookings_add_client_seats(OLD.show_id, v_before_client, v_before_stripe, -v_before);
    END IF;
    IF v_after > 0 THEN
        PERFORM bookings_add_client_seats(NEW.show_id, v_after_client, v_after_stripe, v_after);
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER bookings_reservation_client_seats
AFTER INSERT OR DELETE OR UPDATE OF status, capped_seats, cap_stripe ON bookings_reservation
FOR EACH ROW EXECUTE FUNCTION bookings_count_client_seats();

-- Refuse client_hold_cap unless the client's unpaid seats of the show (summed over the stripes of its count)
-- plus p_added fit p_cap. Holds of the client past their time are expired first if that is what it takes;
-- a refusal's retry_after is the seconds until the client's soonest hold lapses. Called twice by a call that
-- adds seats: before its claims, unlocked (a refusal costs no claim; the sum is of committed counts, so this
-- look lets no hold past the cap, it only spares the claims of most that the decisive one would refuse); and
-- in bookings_take_client_seats' slow path with every stripe of the client locked, where the sum is exact
-- and the answer decisive. Locks the lapsed holds it expires (skipping any locked elsewhere) and, through the
-- trigger, the stripes their seats go back to.
CREATE OR REPLACE FUNCTION bookings_check_client_cap(
    p_show bigint, p_api_key bigint, p_address inet, p_cap int, p_added int, p_at timestamptz, OUT p_freed jsonb
) LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    v_client text := bookings_client_of(p_api_key, p_address);
    v_held int;
    v_lapsed uuid[];
    v_soonest timestamptz;
BEGIN
    p_freed := '[]';
    SELECT sum(counted.held) INTO v_held FROM bookings_clientheldseats counted
     WHERE counted.show_id = p_show AND counted.client = v_client;
    IF coalesce(v_held, 0) + p_added <= p_cap THEN RETURN; END IF;
    SELECT array_agg(locked.id) INTO v_lapsed FROM (
        SELECT hold.id FROM bookings_reservation hold
         WHERE hold.show_id = p_show AND hold.status = 'Reserved' AND hold.held_until <= p_at
           AND (hold.api_key_id = p_api_key OR (p_api_key IS NULL AND hold.client_address = p_address))
         ORDER BY hold.id FOR UPDATE SKIP LOCKED) locked;
    IF v_lapsed IS NOT NULL THEN
        p_freed := bookings_release(v_lapsed, 'Expired', p_at);
        SELECT sum(counted.held) INTO v_held FROM bookings_clientheldseats counted
         WHERE counted.show_id = p_show AND counted.client = v_client;
        IF coalesce(v_held, 0) + p_added <= p_cap THEN RETURN; END IF;
    END IF;
    SELECT min(hold.held_until) INTO v_soonest FROM bookings_reservation hold
     WHERE hold.show_id = p_show AND hold.status = 'Reserved' AND hold.held_until > p_at
       AND (hold.api_key_id = p_api_key OR (p_api_key IS NULL AND hold.client_address = p_address));
    PERFORM bookings_refuse('client_hold_cap', jsonb_build_object(
        'retry_after', greatest(1, ceil(extract(epoch FROM coalesce(v_soonest, p_at) - p_at)))::int));
END $$;

-- Take p_added seats of the client's cap p_cap for a hold of the show (or for a hold that grows), on one
-- stripe of the client's count; or refuse client_hold_cap. Returns the stripe, locked until commit (the
-- caller writes the reservation with capped_seats and this cap_stripe, and the trigger adds the seats there),
-- and the seats freed by expiring the client's lapsed holds. p_stripe: the stripe a growing hold counts on
-- (a hold stays on its stripe), NULL for any.
-- The fast path locks one stripe that was computed for p_cap and has room (allowance - held) for p_added,
-- the roomiest first, skipping stripes other calls hold (FOR UPDATE SKIP LOCKED): it never waits, and holds
-- of one client wait neither for each other nor, since a client's stripes are its own, for other clients.
-- The slow path, when no stripe it could lock has room or the stripes were computed for another cap (staff
-- changed the key's), locks every stripe of the client's count in stripe order (making the 8 the first
-- time), waiting for the commits of the calls that hold them; bookings_check_client_cap then sums them
-- exactly (expiring lapsed holds of the client if that is what it takes, else refusing) and the allowances
-- are rebalanced for p_cap: each stripe's becomes what it holds plus an equal share of the spare seats,
-- p_added more on the stripe taken, so that they sum to p_cap. A refusal rolls back the call and with it
-- anything the slow path changed. Slow paths lock in stripe order, yet a cycle can still close: when a call
-- already holds a stripe of the client as it takes the slow path (its claims took over a lapsed hold of the
-- same client, whose seats went back to that stripe), and, seen now and then in the race tests under a cap
-- that binds, through the queue of a stripe's tuple lock. PostgreSQL then ends one of the calls, whole, and
-- the call is made again (bookings.services.holds.call_function), as it could happen with 0009's one counter
-- row when takeovers touched two clients' rows.
CREATE OR REPLACE FUNCTION bookings_take_client_seats(
    p_show bigint, p_api_key bigint, p_address inet, p_cap int, p_added int, p_stripe int, p_at timestamptz,
    OUT p_taken int, OUT p_freed jsonb
) LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    v_stripes CONSTANT int := 8;
    v_client text := bookings_client_of(p_api_key, p_address);
    v_found int;
    v_held int;
    v_spare int;
BEGIN
    p_freed := '[]';
    SELECT counted.stripe INTO p_taken FROM bookings_clientheldseats counted
     WHERE counted.show_id = p_show AND counted.client = v_client AND counted.cap = p_cap
       AND counted.allowance - counted.held >= p_added AND (p_stripe IS NULL OR counted.stripe = p_stripe)
     ORDER BY counted.allowance - counted.held DESC, counted.stripe
     LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF p_taken IS NOT NULL THEN RETURN; END IF;
    -- The slow path. Stripes another call is making are not seen until it commits: the insert waits for it.
    SELECT count(*) INTO v_found FROM (
        SELECT counted.stripe FROM bookings_clientheldseats counted
         WHERE counted.show_id = p_show AND counted.client = v_client ORDER BY counted.stripe FOR UPDATE) locked;
    IF v_found < v_stripes THEN
        INSERT INTO bookings_clientheldseats (show_id, client, stripe, held, allowance, cap)
        SELECT p_show, v_client, made.stripe, 0, 0, NULL FROM generate_series(0, v_stripes - 1) made (stripe)
        ON CONFLICT DO NOTHING;
        PERFORM FROM bookings_clientheldseats counted
         WHERE counted.show_id = p_show AND counted.client = v_client ORDER BY counted.stripe FOR UPDATE;
    END IF;
    p_freed := bookings_check_client_cap(p_show, p_api_key, p_address, p_cap, p_added, p_at);
    SELECT sum(counted.held) INTO v_held FROM bookings_clientheldseats counted
     WHERE counted.show_id = p_show AND counted.client = v_client;
    v_spare := p_cap - v_held - p_added;
    p_taken := coalesce(p_stripe, 0);
    UPDATE bookings_clientheldseats counted
       SET cap = p_cap,
           allowance = counted.held + v_spare / v_stripes + (counted.stripe < mod(v_spare, v_stripes))::int
                     + CASE WHEN counted.stripe = p_taken THEN p_added ELSE 0 END
     WHERE counted.show_id = p_show AND counted.client = v_client;
END $$;

-- ReserveSeats, the whole decision in one call (bookings.services.hold_seats and hold_seats_for_waiter).
-- p_seats: the seats to claim (chosen, or picked by best available), or NULL when best available found no
-- p_count seats to pick. p_best: a best-available hold (p_seat_type its type, if any). p_check_line: false
-- for the head of the waiting line being served. p_cap: the client's cap (the API key's seats per show, or
-- the address's), NULL for none. Locks: the buyer's advisory lock for the show (the session cap), the rows
-- of lapsed holds it takes seats from, and, for the end of the call, one stripe of the client's count
-- (bookings_take_client_seats: all of them when it takes the slow path).
-- Returns the reservation's id, version, amount, seats (map order: [id, row, number, type, price]) and
-- the seats freed by takeovers.
CREATE OR REPLACE FUNCTION bookings_hold_seats(
    p_show bigint, p_movie bigint, p_api_key bigint, p_session text, p_address inet, p_cap int,
    p_count int, p_seats bigint[], p_best boolean, p_seat_type text, p_check_line boolean,
    p_open_types text[], p_max_seats int, p_hold interval, p_grace interval, p_currency text, p_at timestamptz,
    OUT reservation_id uuid, OUT version bigint, OUT amount numeric, OUT seats jsonb, OUT freed jsonb
) LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    v_show cinemas_show;
    v_ids bigint[];
    v_types text[];
    v_prices numeric[];
    v_wanted_types text[];
    v_claim record;
    v_stripe int;
    v_cap_freed jsonb;
BEGIN
    IF bookings_client_of(p_api_key, p_address) IS NULL THEN p_cap := NULL; END IF;  -- no client, no cap
    SELECT * INTO v_show FROM cinemas_show WHERE id = p_show;
    IF NOT FOUND THEN PERFORM bookings_refuse('no_such_show'); END IF;
    IF p_movie IS NOT NULL AND v_show.movie_id <> p_movie THEN PERFORM bookings_refuse('movie_mismatch'); END IF;
    IF v_show.starts_at <= p_at THEN PERFORM bookings_refuse('show_started'); END IF;
    IF p_count IS NULL OR p_count < 1 THEN PERFORM bookings_refuse('no_seats'); END IF;
    IF p_count > p_max_seats THEN PERFORM bookings_refuse('too_many_seats'); END IF;
    IF p_seats IS NOT NULL THEN
        IF cardinality(p_seats) <> p_count THEN PERFORM bookings_refuse('no_seats'); END IF;
        SELECT * INTO v_ids, v_types, v_prices, seats FROM bookings_seats_to_claim(v_show, p_seats, p_max_seats);
    END IF;
    -- The types this hold could be given: those asked for, else the open types and those of chosen seats.
    IF p_best THEN
        v_wanted_types := CASE WHEN p_seat_type IS NULL THEN p_open_types ELSE ARRAY[p_seat_type] END;
    ELSE
        v_wanted_types := p_open_types || v_types;
    END IF;
    -- Freed seats of the types the line is served go to the people waiting first.
    IF p_check_line AND (CASE WHEN p_best THEN v_wanted_types ELSE v_types END) && p_open_types
       AND bookings_line_is_open(p_show) THEN
        PERFORM bookings_refuse('waiting_line');
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended(
        'buyer:' || coalesce(p_api_key::text, 'None') || ':' || p_session || ':' || p_show, 0));
    IF bookings_seats_of_buyer(p_show, p_api_key, p_session, p_at) + p_count > p_max_seats THEN
        PERFORM bookings_refuse('session_seat_cap');
    END IF;
    IF p_cap IS NOT NULL THEN
        freed := bookings_check_client_cap(p_show, p_api_key, p_address, p_cap, p_count, p_at);
    END IF;
    IF p_seats IS NULL THEN
        PERFORM bookings_refuse(bookings_refusal(p_show, v_wanted_types, p_count, p_at));
    END IF;
    reservation_id := gen_random_uuid();
    version := nextval('bookings_seat_version');
    SELECT * INTO v_claim FROM bookings_claim(reservation_id, p_show, v_ids, v_types, v_prices, version, p_at);
    IF NOT v_claim.p_claimed THEN
        PERFORM bookings_refuse(bookings_refusal(p_show, v_wanted_types, p_count, p_at));
    END IF;
    version := v_claim.p_version;
    freed := coalesce(freed, '[]') || v_claim.p_freed;
    amount := (SELECT sum(price) FROM unnest(v_prices) price);
    -- Last, so that the client's stripe (locked by the take) is held only until commit; the trigger counts
    -- the seats on it.
    IF p_cap IS NOT NULL THEN
        SELECT taken.p_taken, taken.p_freed INTO v_stripe, v_cap_freed
          FROM bookings_take_client_seats(p_show, p_api_key, p_address, p_cap, p_count, NULL, p_at) taken;
        freed := freed || v_cap_freed;
    END IF;
    INSERT INTO bookings_reservation (id, show_id, api_key_id, session_id, client_address, status, amount,
                                      currency, created_at, expires_at, held_until, capped_seats, cap_stripe)
    VALUES (reservation_id, p_show, p_api_key, p_session, p_address, 'Reserved', amount, p_currency, p_at,
            p_at + p_hold, p_at + p_hold + p_grace, CASE WHEN p_cap IS NULL THEN 0 ELSE p_count END, v_stripe);
END $$;

-- ChangeSeats: swap a hold's seats for p_seats in one step, keeping its clock; on any refusal the old seats
-- stay held (the call rolls back). Locks the buyer's advisory lock for the show, then the reservation row,
-- and, for the end of the call, the hold's stripe of its client's count (bookings_take_client_seats when it
-- grows: all the client's stripes on the slow path). Returns the show, the version, the new amount and
-- seats (as bookings_hold_seats does), the changes ([[seat id, "held" | "available"], ...]), the seats
-- freed by takeovers, and the hold's currency and clock for the answer.
CREATE OR REPLACE FUNCTION bookings_change_seats(
    p_reservation uuid, p_api_key bigint, p_session text, p_cap int, p_seats bigint[],
    p_open_types text[], p_max_seats int, p_at timestamptz,
    OUT show_id bigint, OUT version bigint, OUT amount numeric, OUT seats jsonb, OUT changes jsonb,
    OUT freed jsonb, OUT currency text, OUT created_at timestamptz, OUT expires_at timestamptz
) LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    v_hold bookings_reservation;
    v_show cinemas_show;
    v_count int := coalesce(cardinality(p_seats), 0);
    v_added int;
    v_stripe int;
    v_cap_freed jsonb;
    v_ids bigint[];
    v_types text[];
    v_prices numeric[];
    v_current bigint[];
    v_new bigint[];
    v_dropped bigint[];
    v_new_types text[];
    v_claim record;
BEGIN
    SELECT * INTO v_hold FROM bookings_reservation hold
     WHERE hold.id = p_reservation AND hold.api_key_id IS NOT DISTINCT FROM p_api_key AND hold.session_id = p_session;
    IF NOT FOUND THEN PERFORM bookings_refuse('not_found'); END IF;
    show_id := v_hold.show_id;
    currency := v_hold.currency;
    created_at := v_hold.created_at;
    expires_at := v_hold.expires_at;
    IF bookings_client_of(p_api_key, v_hold.client_address) IS NULL THEN p_cap := NULL; END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended(
        'buyer:' || coalesce(p_api_key::text, 'None') || ':' || p_session || ':' || show_id, 0));
    SELECT * INTO v_hold FROM bookings_reservation hold WHERE hold.id = p_reservation FOR UPDATE;
    IF v_hold.status = 'Booked' THEN PERFORM bookings_refuse('already_booked'); END IF;
    IF v_hold.status = 'Expired' OR (v_hold.status = 'Reserved' AND v_hold.held_until <= p_at) THEN
        PERFORM bookings_refuse('hold_expired');
    END IF;
    IF v_hold.status = 'Cancelled' THEN PERFORM bookings_refuse('hold_cancelled'); END IF;
    SELECT * INTO v_show FROM cinemas_show WHERE id = show_id;
    IF v_show.starts_at <= p_at THEN PERFORM bookings_refuse('show_started'); END IF;
    SELECT * INTO v_ids, v_types, v_prices, seats FROM bookings_seats_to_claim(v_show, p_seats, p_max_seats);
    IF bookings_seats_of_buyer(show_id, p_api_key, p_session, p_at, p_reservation) + v_count > p_max_seats THEN
        PERFORM bookings_refuse('session_seat_cap');
    END IF;
    freed := '[]';
    -- The seats the change adds to the client's count (its own already count; fewer: it gives some back).
    v_added := v_count - v_hold.capped_seats;
    IF p_cap IS NOT NULL THEN
        freed := bookings_check_client_cap(show_id, p_api_key, v_hold.client_address, p_cap, v_added, p_at);
    END IF;
    SELECT coalesce(array_agg(claim.seat_id), '{}') INTO v_current FROM bookings_seatclaim claim
     WHERE claim.reservation_id = p_reservation AND claim.released_at IS NULL;
    SELECT coalesce(array_agg(seat), '{}') INTO v_new FROM unnest(v_ids) seat WHERE seat <> ALL (v_current);
    SELECT coalesce(array_agg(seat), '{}') INTO v_dropped FROM unnest(v_current) seat WHERE seat <> ALL (v_ids);
    SELECT coalesce(array_agg(kind), '{}') INTO v_new_types
      FROM unnest(v_ids, v_types) chosen (seat, kind) WHERE chosen.seat = ANY (v_new);
    -- A swap is fine; growing would take seats owed to the people waiting.
    IF v_count > cardinality(v_current) AND v_new_types && p_open_types AND bookings_line_is_open(show_id) THEN
        PERFORM bookings_refuse('waiting_line');
    END IF;
    version := nextval('bookings_seat_version');
    SELECT * INTO v_claim FROM bookings_claim(
        p_reservation, show_id, v_new,
        ARRAY(SELECT kind FROM unnest(v_ids, v_types) chosen (seat, kind) WHERE chosen.seat = ANY (v_new) ORDER BY seat),
        ARRAY(SELECT price FROM unnest(v_ids, v_prices) chosen (seat, price) WHERE chosen.seat = ANY (v_new) ORDER BY seat),
        version, p_at);
    IF NOT v_claim.p_claimed THEN
        PERFORM bookings_refuse(bookings_refusal(show_id, p_open_types || v_types, v_count, p_at));
    END IF;
    version := v_claim.p_version;
    freed := freed || v_claim.p_freed;
    UPDATE bookings_seatclaim claim SET released_at = p_at, version = bookings_change_seats.version
     WHERE claim.reservation_id = p_reservation AND claim.released_at IS NULL AND claim.seat_id = ANY (v_dropped);
    amount := (SELECT sum(price) FROM unnest(v_prices) price);
    -- Last, as for a hold: a hold that grows takes the seats it adds on its own stripe (on any, if it counted
    -- toward no cap until now); one that shrinks gives seats back there through the trigger.
    v_stripe := v_hold.cap_stripe;
    IF p_cap IS NOT NULL AND v_added > 0 THEN
        SELECT taken.p_taken, taken.p_freed INTO v_stripe, v_cap_freed
          FROM bookings_take_client_seats(
              show_id, p_api_key, v_hold.client_address, p_cap, v_added,
              CASE WHEN v_hold.capped_seats > 0 THEN coalesce(v_hold.cap_stripe, 0) END, p_at) taken;
        freed := freed || v_cap_freed;
    END IF;
    UPDATE bookings_reservation hold
       SET amount = bookings_change_seats.amount, capped_seats = CASE WHEN p_cap IS NULL THEN 0 ELSE v_count END,
           cap_stripe = CASE WHEN p_cap IS NULL THEN NULL ELSE v_stripe END
     WHERE hold.id = p_reservation;
    changes := (SELECT coalesce(jsonb_agg(jsonb_build_array(seat, 'held')), '[]') FROM unnest(v_new) seat)
            || (SELECT coalesce(jsonb_agg(jsonb_build_array(seat, 'available')), '[]') FROM unnest(v_dropped) seat);
END $$;
"""

# As in 0011: every statement of these finds its rows by index probes whatever the parameters, so one generic
# plan fits every call. CREATE OR REPLACE drops a function's settings, so the replaced ones get theirs again.
PLANNED_ONCE = (
    "bookings_add_client_seats",
    "bookings_count_client_seats",
    "bookings_check_client_cap",
    "bookings_take_client_seats",
    "bookings_hold_seats",
    "bookings_change_seats",
)

NEW_FUNCTIONS = ("bookings_take_client_seats", "bookings_add_client_seats")


def stripes_from_counters(apps, schema_editor):
    """Each client's count so far on its stripe 0, with room for nothing more and no cap (its next hold
    rebalances); the holds it counts name that stripe."""
    schema_editor.execute("UPDATE bookings_clientheldseats SET allowance = held")
    schema_editor.execute(
        "UPDATE bookings_reservation SET cap_stripe = 0 WHERE status = 'Reserved' AND capped_seats > 0"
    )


def counters_from_stripes(apps, schema_editor):
    """Going back: one row per client and show (stripe 0, the only one left) with the sum of its stripes."""
    schema_editor.execute(
        "INSERT INTO bookings_clientheldseats (show_id, client, stripe, held, allowance)"
        " SELECT show_id, client, 0, 0, 0 FROM bookings_clientheldseats GROUP BY show_id, client"
        " ON CONFLICT DO NOTHING"
    )
    schema_editor.execute(
        "UPDATE bookings_clientheldseats counted SET held = total.held, allowance = total.held"
        " FROM (SELECT show_id, client, sum(held) held FROM bookings_clientheldseats GROUP BY show_id, client) total"
        " WHERE counted.stripe = 0 AND counted.show_id = total.show_id AND counted.client = total.client"
    )
    schema_editor.execute("DELETE FROM bookings_clientheldseats WHERE stripe <> 0")


def replace_functions(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTIONS)
        for function in PLANNED_ONCE:
            schema_editor.execute(f"ALTER FUNCTION {function} SET plan_cache_mode = force_generic_plan")


def put_back_0009(apps, schema_editor):
    """Going back: 0009's definitions of the functions replaced here and its trigger (none of them did 0011
    replace), with the plan settings 0011 gave them; no stripe functions."""
    if schema_editor.connection.vendor != "postgresql":
        return
    replaced = set(re.findall(r"CREATE OR REPLACE FUNCTION (\w+)\(", FUNCTIONS)) - set(NEW_FUNCTIONS)
    earlier = import_module("bookings.migrations.0009_hold_functions").FUNCTIONS
    for definition in re.finditer(r"CREATE OR REPLACE FUNCTION (\w+)\(.*?\$\$.*?\$\$;", earlier, re.S):
        if definition.group(1) in replaced:
            schema_editor.execute(definition.group())
    schema_editor.execute(
        "CREATE OR REPLACE TRIGGER bookings_reservation_client_seats"
        " AFTER INSERT OR DELETE OR UPDATE OF status, capped_seats ON bookings_reservation"
        " FOR EACH ROW EXECUTE FUNCTION bookings_count_client_seats()"
    )
    planned_then = import_module("bookings.migrations.0011_hold_functions_planned_once").PLANNED_ONCE
    for function in sorted(replaced & set(planned_then)):
        schema_editor.execute(f"ALTER FUNCTION {function} SET plan_cache_mode = force_generic_plan")
    for function in NEW_FUNCTIONS:
        schema_editor.execute(f"DROP FUNCTION {function}")


class Migration(migrations.Migration):
    dependencies = [("bookings", "0011_hold_functions_planned_once")]

    operations = [
        migrations.RemoveConstraint(model_name="clientheldseats", name="bookings_clientheldseats_one_per_client"),
        migrations.RemoveConstraint(model_name="clientheldseats", name="bookings_clientheldseats_not_negative"),
        migrations.RenameField(model_name="clientheldseats", old_name="seats", new_name="held"),
        migrations.AddField(
            model_name="clientheldseats",
            name="stripe",
            field=models.PositiveSmallIntegerField(default=0),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="clientheldseats",
            name="allowance",
            field=models.IntegerField(default=0),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="clientheldseats",
            name="cap",
            field=models.IntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="reservation",
            name="cap_stripe",
            field=models.PositiveSmallIntegerField(blank=True, editable=False, null=True),
        ),
        migrations.AddConstraint(
            model_name="clientheldseats",
            constraint=models.UniqueConstraint(
                fields=("show", "client", "stripe"), name="bookings_clientheldseats_one_per_stripe"
            ),
        ),
        migrations.RunPython(stripes_from_counters, counters_from_stripes),
        migrations.AddConstraint(
            model_name="clientheldseats",
            constraint=models.CheckConstraint(
                condition=models.Q(("held__gte", 0)), name="bookings_clientheldseats_not_negative"
            ),
        ),
        migrations.AddConstraint(
            model_name="clientheldseats",
            constraint=models.CheckConstraint(
                condition=models.Q(("held__lte", models.F("allowance"))),
                name="bookings_clientheldseats_within_allowance",
            ),
        ),
        migrations.RunPython(replace_functions, put_back_0009),
    ]
