"""The hold path as SQL functions: one round trip decides a hold, a change of seats, a cancel or a sweep batch.

Every rule of ReserveSeats lives here once (the waiting-line check, the session and client caps, taking over
lapsed claims in the way, the all-or-nothing claims, the version, and the choice between Show Full, Retry and
Seats Unavailable); bookings.services.holds calls these functions and nothing else decides a hold.

A refusal is an exception with SQLSTATE TKR01: its message is the BookingError code, its detail a JSON object
of the code's extras. PostgreSQL then rolls the whole call back, so a refused hold writes nothing.

Each function runs with enable_seqscan off: an on-sale fills the claims table in seconds, long before an
ANALYZE runs, and a planner that still believes the table empty would scan all of it on every hold.

Holds made before this migration count toward no client's cap (capped_seats 0); they lapse within minutes.
"""

import django.db.models.deletion
from django.db import migrations, models

FUNCTIONS = r"""
-- The waiting line's answer to "does anyone wait for this show?". Bookings never reads the waiting app's
-- tables; the waiting app's migration replaces this body with its own query (nobody waits until then).
CREATE OR REPLACE FUNCTION bookings_line_is_open(p_show bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$ SELECT false $$;

CREATE OR REPLACE FUNCTION bookings_refuse(p_code text, p_detail jsonb DEFAULT '{}') RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'TKR01', MESSAGE = p_code, DETAIL = p_detail::text;
END $$;

-- The client a hold counts toward for the caps: its API key, else the website visitor's address.
CREATE OR REPLACE FUNCTION bookings_client_of(p_api_key bigint, p_address inet) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_api_key IS NOT NULL THEN 'key:' || p_api_key
                WHEN p_address IS NOT NULL THEN 'address:' || host(p_address) END
$$;

-- Keeps bookings_clientheldseats: the seats each client holds unpaid of each show, counted from the
-- reservations' capped_seats while they are Reserved. Whatever writes a reservation (these functions, a
-- payment through the ORM, staff), the count follows.
CREATE OR REPLACE FUNCTION bookings_count_client_seats() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_before int := 0;
    v_after int := 0;
    v_row bookings_reservation;
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.status = 'Reserved' THEN v_before := OLD.capped_seats; END IF;
    IF TG_OP <> 'DELETE' AND NEW.status = 'Reserved' THEN v_after := NEW.capped_seats; END IF;
    IF v_before = v_after THEN RETURN NULL; END IF;
    IF TG_OP = 'DELETE' THEN v_row := OLD; ELSE v_row := NEW; END IF;
    -- A decrease updates the row an earlier increase made (an insert is checked against seats >= 0 before
    -- PostgreSQL looks for the row it conflicts with).
    IF v_after < v_before THEN
        UPDATE bookings_clientheldseats SET seats = seats + v_after - v_before
         WHERE show_id = v_row.show_id AND client = bookings_client_of(v_row.api_key_id, v_row.client_address);
    ELSE
        INSERT INTO bookings_clientheldseats AS counted (show_id, client, seats)
        VALUES (v_row.show_id, bookings_client_of(v_row.api_key_id, v_row.client_address), v_after - v_before)
        ON CONFLICT (show_id, client) DO UPDATE SET seats = counted.seats + EXCLUDED.seats;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER bookings_reservation_client_seats
AFTER INSERT OR DELETE OR UPDATE OF status, capped_seats ON bookings_reservation
FOR EACH ROW EXECUTE FUNCTION bookings_count_client_seats();

-- Which refusal fits when p_count seats of these types can't be had (API.md's three 409 statuses): free now
-- (nobody holds or booked them; a hold past its time holds nothing) -> seats_unavailable; free once every
-- hold lapses -> retry; else show_full. Counted from the unique index of live claims (seat_type and booked
-- are in it) and the few holds past their time that the sweep has not reached yet.
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
    SELECT count(*), count(*) FILTER (WHERE claim.booked) INTO v_claimed, v_booked
      FROM bookings_seatclaim claim
     WHERE claim.show_id = p_show AND claim.released_at IS NULL AND claim.seat_type = ANY (p_types);
    SELECT count(*) INTO v_lapsed
      FROM bookings_reservation hold JOIN bookings_seatclaim claim ON claim.reservation_id = hold.id
     WHERE hold.status = 'Reserved' AND hold.held_until <= p_at AND hold.show_id = p_show
       AND claim.released_at IS NULL AND claim.seat_type = ANY (p_types);
    IF v_capacity - (v_claimed - v_lapsed) >= p_count THEN RETURN 'seats_unavailable'; END IF;
    IF v_capacity - v_booked >= p_count THEN RETURN 'retry'; END IF;
    RETURN 'show_full';
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
        UPDATE bookings_seatclaim SET released_at = p_at, version = v_version
         WHERE reservation_id = ANY (p_reservations) AND released_at IS NULL
        RETURNING show_id, seat_id
    ), ended AS (
        UPDATE bookings_reservation SET status = p_status, ended_at = p_at WHERE id = ANY (p_reservations)
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object('show', show_id, 'version', v_version, 'seats', seats)), '[]')
      INTO v_freed
      FROM (SELECT show_id, jsonb_agg(seat_id ORDER BY seat_id) seats FROM freed GROUP BY show_id) by_show;
    RETURN v_freed;
END $$;

-- Expire the holds past their time that still claim any of these seats of the show. One locked by someone
-- else (the sweep, another claimer, a late payment) is skipped rather than waited for, so claimers never wait
-- on each other in a cycle; the caller's next insert waits only for that row's fate.
CREATE OR REPLACE FUNCTION bookings_take_over_lapsed(p_show bigint, p_seats bigint[], p_at timestamptz)
RETURNS jsonb LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    v_lapsed uuid[];
BEGIN
    SELECT array_agg(locked.id) INTO v_lapsed FROM (
        SELECT hold.id FROM bookings_reservation hold
         WHERE hold.status = 'Reserved' AND hold.held_until <= p_at
           AND hold.id IN (SELECT claim.reservation_id FROM bookings_seatclaim claim
                            WHERE claim.show_id = p_show AND claim.seat_id = ANY (p_seats)
                              AND claim.released_at IS NULL)
         ORDER BY hold.id FOR UPDATE SKIP LOCKED) locked;
    RETURN bookings_release(coalesce(v_lapsed, '{}'), 'Expired', p_at);
END $$;

-- Claim p_seats (with their prices) for the reservation, all or none; lapsed holds in the way are taken over.
-- The partial unique index of live claims decides every race: the insert fails as a whole if any seat has a
-- live claim. Claims go in in seat-id order, so two holds of overlapping seats wait on each other's first
-- shared seat instead of deadlocking. Returns whether the claims went in, and the seats freed by takeovers.
CREATE OR REPLACE FUNCTION bookings_claim(
    p_reservation uuid, p_show bigint, p_seats bigint[], p_types text[], p_prices numeric[],
    INOUT p_version bigint, p_at timestamptz, OUT p_claimed boolean, OUT p_freed jsonb
) LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    v_freed jsonb;
BEGIN
    p_freed := '[]';
    p_claimed := false;
    FOR attempt IN 1..3 LOOP
        BEGIN
            INSERT INTO bookings_seatclaim (reservation_id, show_id, seat_id, seat_type, price, version, booked)
            SELECT p_reservation, p_show, wanted.seat, wanted.kind, wanted.price, p_version, false
              FROM unnest(p_seats, p_types, p_prices) wanted (seat, kind, price)
             ORDER BY wanted.seat;
            p_claimed := true;
            EXIT;
        EXCEPTION WHEN unique_violation THEN
            v_freed := bookings_take_over_lapsed(p_show, p_seats, p_at);
            EXIT WHEN v_freed = '[]';
            p_freed := p_freed || v_freed;
        END;
    END LOOP;
    IF p_claimed AND p_freed <> '[]' THEN
        -- The freed seats were announced with a newer version than this claim's: outdo it.
        p_version := nextval('bookings_seat_version');
        UPDATE bookings_seatclaim SET version = p_version
         WHERE reservation_id = p_reservation AND released_at IS NULL;
    END IF;
END $$;

-- The buyer's live seats of the show (booked, or held and not past their time), for the session cap.
CREATE OR REPLACE FUNCTION bookings_seats_of_buyer(
    p_show bigint, p_api_key bigint, p_session text, p_at timestamptz, p_excluding uuid DEFAULT NULL
) RETURNS int LANGUAGE sql STABLE SET enable_seqscan = off AS $$
    SELECT count(*)::int FROM bookings_seatclaim claim
     WHERE claim.released_at IS NULL AND claim.reservation_id IN (
        SELECT hold.id FROM bookings_reservation hold
         WHERE hold.show_id = p_show AND hold.session_id = p_session
           AND hold.api_key_id IS NOT DISTINCT FROM p_api_key
           AND hold.id IS DISTINCT FROM p_excluding
           AND (hold.status = 'Booked' OR (hold.status = 'Reserved' AND hold.held_until > p_at)))
$$;

-- Refuse client_hold_cap unless the client's unpaid seats of the show plus p_added fit p_cap. Holds of the
-- client past their time are expired first if that is what it takes. Called twice by a hold: before its
-- claims with p_added = its seats, unlocked (a refusal costs no claim); and, the decisive check, after its
-- reservation row has counted itself (the trigger) with p_added = 0. The trigger's update locks the
-- client's counter row until commit, so the client's own holds of the show wait on each other only for
-- the end of a call and its commit, never for its decisions; other clients never do.
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
    SELECT seats INTO v_held FROM bookings_clientheldseats WHERE show_id = p_show AND client = v_client;
    IF coalesce(v_held, 0) + p_added <= p_cap THEN RETURN; END IF;
    SELECT array_agg(locked.id) INTO v_lapsed FROM (
        SELECT hold.id FROM bookings_reservation hold
         WHERE hold.show_id = p_show AND hold.status = 'Reserved' AND hold.held_until <= p_at
           AND (hold.api_key_id = p_api_key OR (p_api_key IS NULL AND hold.client_address = p_address))
         ORDER BY hold.id FOR UPDATE SKIP LOCKED) locked;
    IF v_lapsed IS NOT NULL THEN
        p_freed := bookings_release(v_lapsed, 'Expired', p_at);
        SELECT seats INTO v_held FROM bookings_clientheldseats WHERE show_id = p_show AND client = v_client;
        IF coalesce(v_held, 0) + p_added <= p_cap THEN RETURN; END IF;
    END IF;
    SELECT min(hold.held_until) INTO v_soonest FROM bookings_reservation hold
     WHERE hold.show_id = p_show AND hold.status = 'Reserved' AND hold.held_until > p_at
       AND (hold.api_key_id = p_api_key OR (p_api_key IS NULL AND hold.client_address = p_address));
    PERFORM bookings_refuse('client_hold_cap', jsonb_build_object(
        'retry_after', greatest(1, ceil(extract(epoch FROM coalesce(v_soonest, p_at) - p_at)))::int));
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
      FROM cinemas_seat seat JOIN cinemas_showprice price
        ON price.show_id = p_show.id AND price.seat_type = seat.seat_type
     WHERE seat.hall_id = p_show.hall_id AND seat.id = ANY (p_seats);
    IF coalesce(cardinality(ids), 0) <> v_count THEN
        PERFORM bookings_refuse('seat_not_in_hall', jsonb_build_object('outside', (
            SELECT jsonb_agg(seat ORDER BY seat) FROM unnest(p_seats) seat WHERE seat <> ALL (coalesce(ids, '{}')))));
    END IF;
END $$;

-- ReserveSeats, the whole decision in one call (bookings.services.hold_seats and hold_seats_for_waiter).
-- p_seats: the seats to claim (chosen, or picked by best available), or NULL when best available found no
-- p_count seats to pick. p_best: a best-available hold (p_seat_type its type, if any). p_check_line: false
-- for the head of the waiting line being served. p_cap: the client's cap (the API key's seats per show, or
-- the address's), NULL for none. Locks: the buyer's advisory lock for the show (the session cap), the rows
-- of lapsed holds it takes seats from, and the client's counter row for the end of the call.
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
    -- Last, so that the client's counter row (locked by the trigger) is held only until commit.
    INSERT INTO bookings_reservation (id, show_id, api_key_id, session_id, client_address, status, amount,
                                      currency, created_at, expires_at, held_until, capped_seats)
    VALUES (reservation_id, p_show, p_api_key, p_session, p_address, 'Reserved', amount, p_currency, p_at,
            p_at + p_hold, p_at + p_hold + p_grace, CASE WHEN p_cap IS NULL THEN 0 ELSE p_count END);
    IF p_cap IS NOT NULL THEN
        v_cap_freed := bookings_check_client_cap(p_show, p_api_key, p_address, p_cap, 0, p_at);
        freed := freed || v_cap_freed;
    END IF;
END $$;
-- ChangeSeats: swap a hold's seats for p_seats in one step, keeping its clock; on any refusal the old seats
-- stay held (the call rolls back). Locks the buyer's advisory lock for the show, then the reservation row,
-- and the client's counter row for the end of the call. Returns the show, the version, the new amount and
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
    IF p_cap IS NOT NULL THEN
        freed := bookings_check_client_cap(show_id, p_api_key, v_hold.client_address, p_cap,
                                           v_count - v_hold.capped_seats, p_at);
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
    UPDATE bookings_reservation hold
       SET amount = bookings_change_seats.amount, capped_seats = CASE WHEN p_cap IS NULL THEN 0 ELSE v_count END
     WHERE hold.id = p_reservation;
    IF p_cap IS NOT NULL THEN
        freed := freed || bookings_check_client_cap(show_id, p_api_key, v_hold.client_address, p_cap, 0, p_at);
    END IF;
    changes := (SELECT coalesce(jsonb_agg(jsonb_build_array(seat, 'held')), '[]') FROM unnest(v_new) seat)
            || (SELECT coalesce(jsonb_agg(jsonb_build_array(seat, 'available')), '[]') FROM unnest(v_dropped) seat);
END $$;

-- CancelReservation of a hold: its seats are free at once. Locks the reservation row. A hold that already
-- ended is left as it is (cancelling twice is harmless); a booking is refused. Returns the status it has
-- now, when it ended, the seats freed, and what the answer shows of it: its show, amount, currency, clock
-- and the seats it had when it ended (map order, as bookings_hold_seats lists them).
CREATE OR REPLACE FUNCTION bookings_cancel_hold(
    p_reservation uuid, p_api_key bigint, p_session text, p_at timestamptz,
    OUT status text, OUT ended_at timestamptz, OUT freed jsonb, OUT show_id bigint, OUT amount numeric,
    OUT currency text, OUT created_at timestamptz, OUT expires_at timestamptz, OUT seats jsonb
) LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    v_hold bookings_reservation;
BEGIN
    SELECT * INTO v_hold FROM bookings_reservation hold
     WHERE hold.id = p_reservation AND hold.api_key_id IS NOT DISTINCT FROM p_api_key AND hold.session_id = p_session
       FOR UPDATE;
    IF NOT FOUND THEN PERFORM bookings_refuse('not_found'); END IF;
    IF v_hold.status = 'Booked' THEN PERFORM bookings_refuse('booked_not_cancellable'); END IF;
    freed := '[]';
    status := v_hold.status;
    ended_at := v_hold.ended_at;
    IF v_hold.status = 'Reserved' THEN
        status := CASE WHEN v_hold.held_until <= p_at THEN 'Expired' ELSE 'Cancelled' END;
        ended_at := p_at;
        freed := bookings_release(ARRAY[p_reservation], status, p_at);
    END IF;
    show_id := v_hold.show_id;
    amount := v_hold.amount;
    currency := v_hold.currency;
    created_at := v_hold.created_at;
    expires_at := v_hold.expires_at;
    SELECT coalesce(jsonb_agg(jsonb_build_array(seat.id, seat.row_label, seat.number, claim.seat_type,
                                                claim.price::text) ORDER BY seat.y, seat.x), '[]')
      INTO seats
      FROM bookings_seatclaim claim JOIN cinemas_seat seat ON seat.id = claim.seat_id
     WHERE claim.reservation_id = p_reservation AND claim.released_at IS NOT DISTINCT FROM ended_at;
END $$;

-- One batch of the sweep: up to p_batch holds past their time, oldest first, made Expired with their seats
-- freed. FOR UPDATE SKIP LOCKED, so several sweeps share the work instead of doing it twice.
CREATE OR REPLACE FUNCTION bookings_release_lapsed(p_at timestamptz, p_batch int, OUT released int, OUT freed jsonb)
LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    v_lapsed uuid[];
BEGIN
    SELECT array_agg(locked.id) INTO v_lapsed FROM (
        SELECT hold.id FROM bookings_reservation hold
         WHERE hold.status = 'Reserved' AND hold.held_until <= p_at
         ORDER BY hold.held_until LIMIT p_batch FOR UPDATE SKIP LOCKED) locked;
    released := coalesce(cardinality(v_lapsed), 0);
    freed := bookings_release(coalesce(v_lapsed, '{}'), 'Expired', p_at);
END $$;
"""

DROP_FUNCTIONS = """
DROP FUNCTION IF EXISTS bookings_release_lapsed;
DROP FUNCTION IF EXISTS bookings_cancel_hold;
DROP FUNCTION IF EXISTS bookings_change_seats;
DROP FUNCTION IF EXISTS bookings_hold_seats;
DROP FUNCTION IF EXISTS bookings_seats_to_claim;
DROP FUNCTION IF EXISTS bookings_check_client_cap;
DROP FUNCTION IF EXISTS bookings_seats_of_buyer;
DROP FUNCTION IF EXISTS bookings_claim;
DROP FUNCTION IF EXISTS bookings_take_over_lapsed;
DROP FUNCTION IF EXISTS bookings_release;
DROP FUNCTION IF EXISTS bookings_refusal;
DROP TRIGGER IF EXISTS bookings_reservation_client_seats ON bookings_reservation;
DROP FUNCTION IF EXISTS bookings_count_client_seats;
DROP FUNCTION IF EXISTS bookings_client_of;
DROP FUNCTION IF EXISTS bookings_refuse;
DROP FUNCTION IF EXISTS bookings_line_is_open;
"""


def mark_booked_claims(apps, schema_editor):
    schema_editor.execute(
        "UPDATE bookings_seatclaim SET booked = true WHERE reservation_id IN"
        " (SELECT id FROM bookings_reservation WHERE status = 'Booked')"
    )


def create_functions(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTIONS)


def drop_functions(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_FUNCTIONS)


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0008_outgoing_mail"),
        ("cinemas", "0004_order_seats_and_prices_by_id"),
    ]

    operations = [
        migrations.CreateModel(
            name="ClientHeldSeats",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("client", models.CharField(max_length=64)),
                ("seats", models.IntegerField()),
            ],
        ),
        migrations.RemoveConstraint(
            model_name="seatclaim",
            name="bookings_seatclaim_one_live_claim_per_seat",
        ),
        migrations.AddField(
            model_name="reservation",
            name="capped_seats",
            field=models.PositiveSmallIntegerField(db_default=0, default=0, editable=False),
        ),
        migrations.AddField(
            model_name="seatclaim",
            name="booked",
            field=models.BooleanField(db_default=False, default=False),
        ),
        migrations.AddConstraint(
            model_name="seatclaim",
            constraint=models.UniqueConstraint(
                condition=models.Q(("released_at__isnull", True)),
                fields=("show", "seat"),
                include=("seat_type", "booked"),
                name="bookings_seatclaim_one_live_claim_per_seat",
            ),
        ),
        migrations.AddField(
            model_name="clientheldseats",
            name="show",
            field=models.ForeignKey(
                db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="cinemas.show"
            ),
        ),
        migrations.AddConstraint(
            model_name="clientheldseats",
            constraint=models.UniqueConstraint(
                fields=("show", "client"), name="bookings_clientheldseats_one_per_client"
            ),
        ),
        migrations.AddConstraint(
            model_name="clientheldseats",
            constraint=models.CheckConstraint(
                condition=models.Q(("seats__gte", 0)), name="bookings_clientheldseats_not_negative"
            ),
        ),
        migrations.RunPython(mark_booked_claims, migrations.RunPython.noop),
        migrations.RunPython(create_functions, drop_functions),
    ]
