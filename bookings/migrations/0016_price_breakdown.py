"""One price breakdown, computed where the hold's amount is (issue 18, point 2: money).

The price rule lives in one SQL function, bookings_price_breakdown: from a hold's seats (at the prices they were
held for) and the terms it is priced on (its cinema's currency and that currency's decimals, the convenience
fee per ticket, the tax: named, its rate, included in the prices or added on top; and the promo codes applied
to it), the lines a buyer sees and the total: per-seat lines, fees, taxes, discounts, total, currency. The hold
functions call it and store what it says on the reservation (price_breakdown, with the terms it was priced on)
and its total as the reservation's amount, which is what paying charges (bookings_start_charge, migration
0010). Every display (checkout, ticket, mail, API, admin) shows the stored breakdown (bookings.services.prices);
nothing in Python adds up money.

bookings_hold_seats, bookings_change_seats and bookings_cancel_hold are 0012's and 0009's but for how the amount
and currency are computed and the breakdown they return: a hold is priced in the currency of its show's
cinema (one more probe: the show's hall and cinema by their keys, in the same call), no longer in a currency
passed in; a change of seats prices the new seats on the terms the hold was made on (the fee and tax then,
its promo codes); a cancel answers with the breakdown it had. Their other statements are unchanged. They
get a new result column, so they are dropped and made again (with their plan settings).

Reservations made before this migration get the breakdown of what they were charged: their seats, no fee,
no tax. Going back puts the earlier functions back and drops the column.
"""

import re
from importlib import import_module

from django.db import migrations, models

# ISO 4217 currencies whose minor unit is not 2 digits, as Babel 2.17's CLDR data has them (babel.numbers.
# get_currency_precision; tests/bookings/test_price_breakdown.py checks they still agree): amounts are rounded
# to these many decimals.
ZERO_DECIMALS = (
    "ADP",
    "AFN",
    "ALL",
    "BIF",
    "BYR",
    "CLP",
    "DJF",
    "ESP",
    "GNF",
    "IQD",
    "IRR",
    "ISK",
    "ITL",
    "JPY",
    "KMF",
    "KPW",
    "KRW",
    "LAK",
    "LBP",
    "LUF",
    "MGA",
    "MGF",
    "MMK",
    "MRO",
    "PYG",
    "RSD",
    "RWF",
    "SLL",
    "SOS",
    "STD",
    "SYP",
    "TMM",
    "TRL",
    "UGX",
    "UYI",
    "VND",
    "VUV",
    "XAF",
    "XOF",
    "XPF",
    "YER",
    "ZMK",
    "ZWD",
)
THREE_DECIMALS = ("BHD", "JOD", "KWD", "LYD", "OMR", "TND")
FOUR_DECIMALS = ("CLF", "UYW")

FUNCTIONS = r"""
-- How many decimals amounts in this ISO 4217 currency have (JPY 0, USD 2, KWD 3).
CREATE OR REPLACE FUNCTION bookings_currency_exponent(p_currency text) RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p_currency = ANY (%(zero)s::text[]) THEN 0
                WHEN p_currency = ANY (%(three)s::text[]) THEN 3
                WHEN p_currency = ANY (%(four)s::text[]) THEN 4
                ELSE 2 END
$$;

-- The terms a hold of a show in this hall is priced on: its cinema's currency (and its decimals), convenience
-- fee per ticket and tax; no promo code yet. Amounts and rates as text (exact decimals in JSON).
CREATE OR REPLACE FUNCTION bookings_price_terms(p_hall bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE SET enable_seqscan = off AS $$
BEGIN
    RETURN (SELECT jsonb_build_object(
                'currency', cinema.currency, 'exponent', bookings_currency_exponent(cinema.currency),
                'fee', cinema.convenience_fee::text, 'tax_name', cinema.tax_name,
                'tax_rate', trim_scale(cinema.tax_rate)::text, 'tax_included', cinema.tax_included,
                'discounts', '[]'::jsonb)
              FROM cinemas_hall hall JOIN cinemas_cinema cinema ON cinema.id = hall.cinema_id
             WHERE hall.id = p_hall);
END $$;

-- THE price rule. p_seats: a hold's seats in map order as the hold functions list them ([id, row, number,
-- type, price]); p_terms: bookings_price_terms' object, with the promo codes applied to the hold, in the order
-- they were applied, in "discounts" ([{"code", "percent"} or {"code", "fixed"}]). Returns API.md's
-- price_breakdown ({"seats": [{"id", "type", "price"}], "fees": [{"name", "amount"}], "taxes": [{"name", "rate",
-- "amount", "included"}], "discounts": [{"code", "amount"}], "total", "currency"}, amounts as decimal text with
-- the currency's decimals) and the terms it was computed on ("terms"), so that a change of seats or of promo
-- codes is priced again on them.
--   tickets   = the seats' prices, each rounded to the currency's decimals
--   fee       = the fee per ticket x the number of tickets
--   discounts = each code in turn takes its percentage of what is left of the tickets, or its fixed amount,
--               never more than is left (the fee is never discounted)
--   taxed     = tickets - discounts + fee
--   tax       = included in the prices: taxed - taxed / (1 + rate / 100); on top: taxed x rate / 100
--   total     = taxed, plus the tax when it is on top
-- Every line is rounded to the currency's decimals, half away from zero; the total is the sum of the lines.
CREATE OR REPLACE FUNCTION bookings_price_breakdown(p_seats jsonb, p_terms jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_exponent int := (p_terms ->> 'exponent')::int;
    v_rate numeric := coalesce((p_terms ->> 'tax_rate')::numeric, 0);
    v_included boolean := coalesce((p_terms ->> 'tax_included')::boolean, true);
    v_seats jsonb;
    v_tickets numeric;
    v_fee numeric;
    v_left numeric;
    v_off numeric;
    v_discount jsonb;
    v_discounts jsonb := '[]';
    v_taxed numeric;
    v_tax numeric := 0;
BEGIN
    SELECT coalesce(jsonb_agg(jsonb_build_object('id', listed.seat -> 0, 'type', listed.seat ->> 3,
                                                 'price', round((listed.seat ->> 4)::numeric, v_exponent)::text)
                              ORDER BY listed.place), '[]'),
           coalesce(sum(round((listed.seat ->> 4)::numeric, v_exponent)), 0)
      INTO v_seats, v_tickets
      FROM jsonb_array_elements(p_seats) WITH ORDINALITY listed (seat, place);
    v_fee := round(coalesce((p_terms ->> 'fee')::numeric, 0) * jsonb_array_length(p_seats), v_exponent);
    v_left := v_tickets;
    FOR v_discount IN SELECT * FROM jsonb_array_elements(coalesce(p_terms -> 'discounts', '[]')) LOOP
        v_off := round(least(v_left, CASE WHEN v_discount ? 'percent'
                                          THEN v_left * (v_discount ->> 'percent')::numeric / 100
                                          ELSE (v_discount ->> 'fixed')::numeric END), v_exponent);
        v_left := v_left - v_off;
        v_discounts := v_discounts || jsonb_build_object('code', v_discount ->> 'code', 'amount', v_off::text);
    END LOOP;
    v_taxed := v_left + v_fee;
    IF v_rate > 0 THEN
        v_tax := round(CASE WHEN v_included THEN v_taxed - v_taxed / (1 + v_rate / 100)
                            ELSE v_taxed * v_rate / 100 END, v_exponent);
    END IF;
    RETURN jsonb_build_object(
        'seats', v_seats,
        'fees', CASE WHEN v_fee > 0 THEN jsonb_build_array(jsonb_build_object(
                    'name', 'Convenience fee', 'amount', v_fee::text)) ELSE '[]' END,
        'taxes', CASE WHEN v_rate > 0 THEN jsonb_build_array(jsonb_build_object(
                     'name', coalesce(nullif(p_terms ->> 'tax_name', ''), 'Tax'), 'rate', trim_scale(v_rate)::text,
                     'amount', v_tax::text, 'included', v_included)) ELSE '[]' END,
        'discounts', v_discounts,
        'total', round(v_taxed + CASE WHEN v_included THEN 0 ELSE v_tax END, v_exponent)::text,
        'currency', p_terms ->> 'currency',
        'terms', p_terms);
END $$;
""" % {
    "zero": "'{" + ",".join(ZERO_DECIMALS) + "}'",
    "three": "'{" + ",".join(THREE_DECIMALS) + "}'",
    "four": "'{" + ",".join(FOUR_DECIMALS) + "}'",
}

HOLD_FUNCTIONS = r"""
-- ReserveSeats, the whole decision in one call (bookings.services.hold_seats and hold_seats_for_waiter).
-- p_seats: the seats to claim (chosen, or picked by best available), or NULL when best available found no
-- p_count seats to pick. p_best: a best-available hold (p_seat_type its type, if any). p_check_line: false
-- for the head of the waiting line being served. p_cap: the client's cap (the API key's seats per show, or
-- the address's), NULL for none. Locks: the buyer's advisory lock for the show (the session cap), the rows
-- of lapsed holds it takes seats from, and, for the end of the call, one stripe of the client's count
-- (bookings_take_client_seats: all of them when it takes the slow path).
-- Returns the reservation's id, version, amount, seats (map order: [id, row, number, type, price]), the seats
-- freed by takeovers and the price breakdown (bookings_price_breakdown; amount is its total, in the currency
-- of the show's cinema, on whose terms the hold is priced).
CREATE OR REPLACE FUNCTION bookings_hold_seats(
    p_show bigint, p_movie bigint, p_api_key bigint, p_session text, p_address inet, p_cap int,
    p_count int, p_seats bigint[], p_best boolean, p_seat_type text, p_check_line boolean,
    p_open_types text[], p_max_seats int, p_hold interval, p_grace interval, p_at timestamptz,
    OUT reservation_id uuid, OUT version bigint, OUT amount numeric, OUT seats jsonb, OUT freed jsonb,
    OUT breakdown jsonb
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
    breakdown := bookings_price_breakdown(seats, bookings_price_terms(v_show.hall_id));
    amount := (breakdown ->> 'total')::numeric;
    -- Last, so that the client's stripe (locked by the take) is held only until commit; the trigger counts
    -- the seats on it.
    IF p_cap IS NOT NULL THEN
        SELECT taken.p_taken, taken.p_freed INTO v_stripe, v_cap_freed
          FROM bookings_take_client_seats(p_show, p_api_key, p_address, p_cap, p_count, NULL, p_at) taken;
        freed := freed || v_cap_freed;
    END IF;
    INSERT INTO bookings_reservation (id, show_id, api_key_id, session_id, client_address, status, amount,
                                      currency, created_at, expires_at, held_until, capped_seats, cap_stripe,
                                      price_breakdown)
    VALUES (reservation_id, p_show, p_api_key, p_session, p_address, 'Reserved', amount, breakdown ->> 'currency',
            p_at, p_at + p_hold, p_at + p_hold + p_grace, CASE WHEN p_cap IS NULL THEN 0 ELSE p_count END, v_stripe,
            breakdown);
END $$;

-- ChangeSeats: swap a hold's seats for p_seats in one step, keeping its clock; on any refusal the old seats
-- stay held (the call rolls back). Locks the buyer's advisory lock for the show, then the reservation row,
-- and, for the end of the call, the hold's stripe of its client's count (bookings_take_client_seats when it
-- grows: all the client's stripes on the slow path). Returns the show, the version, the new amount and
-- seats (as bookings_hold_seats does), the changes ([[seat id, "held" | "available"], ...]), the seats
-- freed by takeovers, the hold's currency and clock for the answer, and its new price breakdown: the seats
-- priced on the terms the hold was made on (its cinema's fee and tax then, and the promo codes applied to it).
CREATE OR REPLACE FUNCTION bookings_change_seats(
    p_reservation uuid, p_api_key bigint, p_session text, p_cap int, p_seats bigint[],
    p_open_types text[], p_max_seats int, p_at timestamptz,
    OUT show_id bigint, OUT version bigint, OUT amount numeric, OUT seats jsonb, OUT changes jsonb,
    OUT freed jsonb, OUT currency text, OUT created_at timestamptz, OUT expires_at timestamptz, OUT breakdown jsonb
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
    breakdown := bookings_price_breakdown(
        seats, coalesce(v_hold.price_breakdown -> 'terms', bookings_price_terms(v_show.hall_id)));
    amount := (breakdown ->> 'total')::numeric;
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
       SET amount = bookings_change_seats.amount, price_breakdown = breakdown,
           capped_seats = CASE WHEN p_cap IS NULL THEN 0 ELSE v_count END,
           cap_stripe = CASE WHEN p_cap IS NULL THEN NULL ELSE v_stripe END
     WHERE hold.id = p_reservation;
    changes := (SELECT coalesce(jsonb_agg(jsonb_build_array(seat, 'held')), '[]') FROM unnest(v_new) seat)
            || (SELECT coalesce(jsonb_agg(jsonb_build_array(seat, 'available')), '[]') FROM unnest(v_dropped) seat);
END $$;

-- CancelReservation of a hold: its seats are free at once. Locks the reservation row. A hold that already
-- ended is left as it is (cancelling twice is harmless); a booking is refused. Returns the status it has
-- now, when it ended, the seats freed, and what the answer shows of it: its show, amount, currency, clock
-- and the seats it had when it ended (map order, as bookings_hold_seats lists them), and its price breakdown.
CREATE OR REPLACE FUNCTION bookings_cancel_hold(
    p_reservation uuid, p_api_key bigint, p_session text, p_at timestamptz,
    OUT status text, OUT ended_at timestamptz, OUT freed jsonb, OUT show_id bigint, OUT amount numeric,
    OUT currency text, OUT created_at timestamptz, OUT expires_at timestamptz, OUT seats jsonb,
    OUT breakdown jsonb
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
    breakdown := v_hold.price_breakdown;
    SELECT coalesce(jsonb_agg(jsonb_build_array(seat.id, seat.row_label, seat.number, claim.seat_type,
                                                claim.price::text) ORDER BY seat.y, seat.x), '[]')
      INTO seats
      FROM bookings_seatclaim claim JOIN cinemas_seat seat ON seat.id = claim.seat_id
     WHERE claim.reservation_id = p_reservation AND claim.released_at IS NOT DISTINCT FROM ended_at;
END $$;
"""

DESCRIBE = r"""
-- What an answer shows of a reservation, so that no caller reads it back: its clock, booking, show start (for
-- the ticket), price breakdown and seats in map order ([id, row, number, type, price]; once ended, those it had
-- then).
CREATE OR REPLACE FUNCTION bookings_describe_reservation(p_reservation uuid) RETURNS jsonb
LANGUAGE sql STABLE SET enable_seqscan = off AS $$
    SELECT jsonb_build_object(
        'id', hold.id, 'show', hold.show_id, 'show_starts_at', the_show.starts_at, 'status', hold.status,
        'amount', hold.amount::text, 'currency', hold.currency, 'created_at', hold.created_at,
        'expires_at', hold.expires_at, 'held_until', hold.held_until, 'ended_at', hold.ended_at,
        'booking_code', hold.booking_code, 'booked_at', hold.booked_at, 'email', hold.email,
        'price_breakdown', hold.price_breakdown,
        'seats', (SELECT coalesce(jsonb_agg(jsonb_build_array(seat.id, seat.row_label, seat.number,
                                                              claim.seat_type, claim.price::text)
                                            ORDER BY seat.y, seat.x), '[]')
                    FROM bookings_seatclaim claim JOIN cinemas_seat seat ON seat.id = claim.seat_id
                   WHERE claim.reservation_id = hold.id AND claim.released_at IS NOT DISTINCT FROM hold.ended_at))
      FROM bookings_reservation hold JOIN cinemas_show the_show ON the_show.id = hold.show_id
     WHERE hold.id = p_reservation
$$;
"""

# What reservations made before this migration were charged: their seats, no fee and no tax.
BACKFILL = r"""
UPDATE bookings_reservation hold SET price_breakdown = bookings_price_breakdown(
    (SELECT coalesce(jsonb_agg(jsonb_build_array(seat.id, seat.row_label, seat.number, claim.seat_type,
                                                 claim.price::text) ORDER BY seat.y, seat.x), '[]')
       FROM bookings_seatclaim claim JOIN cinemas_seat seat ON seat.id = claim.seat_id
      WHERE claim.reservation_id = hold.id AND claim.released_at IS NOT DISTINCT FROM hold.ended_at),
    jsonb_build_object('currency', hold.currency, 'exponent', bookings_currency_exponent(hold.currency),
                       'fee', '0', 'tax_name', '', 'tax_rate', '0', 'tax_included', true, 'discounts', '[]'::jsonb))
 WHERE hold.price_breakdown IS NULL
"""

REPLACED = ("bookings_hold_seats", "bookings_change_seats", "bookings_cancel_hold")
# As in 0011 and 0012: one generic plan fits every call of these.
PLANNED_ONCE = (*REPLACED, "bookings_price_terms")


def price_holds(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FUNCTIONS)
    for function in REPLACED:
        schema_editor.execute(f"DROP FUNCTION {function}")
    schema_editor.execute(HOLD_FUNCTIONS)
    schema_editor.execute(DESCRIBE)
    for function in PLANNED_ONCE:
        schema_editor.execute(f"ALTER FUNCTION {function} SET plan_cache_mode = force_generic_plan")
    schema_editor.execute(BACKFILL)


def price_holds_as_before(apps, schema_editor):
    """Going back: 0012's hold and change functions, 0009's cancel, 0010's description, no price functions."""
    if schema_editor.connection.vendor != "postgresql":
        return
    for function in REPLACED:
        schema_editor.execute(f"DROP FUNCTION {function}")
    earlier = import_module("bookings.migrations.0012_client_caps_in_stripes").FUNCTIONS
    earlier += import_module("bookings.migrations.0009_hold_functions").FUNCTIONS
    put_back = set()
    for definition in re.finditer(r"CREATE OR REPLACE FUNCTION (\w+)\(.*?\$\$.*?\$\$;", earlier, re.S):
        if definition.group(1) in REPLACED and definition.group(1) not in put_back:  # 0012's, else 0009's
            schema_editor.execute(definition.group())
            put_back.add(definition.group(1))
    for function in REPLACED:
        schema_editor.execute(f"ALTER FUNCTION {function} SET plan_cache_mode = force_generic_plan")
    pay = import_module("bookings.migrations.0010_pay_functions").FUNCTIONS
    schema_editor.execute(
        re.search(r"CREATE OR REPLACE FUNCTION bookings_describe_reservation\(.*?\$\$;", pay, re.S).group()
    )
    for function in ("bookings_price_breakdown", "bookings_price_terms", "bookings_currency_exponent"):
        schema_editor.execute(f"DROP FUNCTION {function}")


class Migration(migrations.Migration):
    dependencies = [("bookings", "0015_outgoing_mail_language"), ("cinemas", "0006_cinema_money_and_policies")]

    operations = [
        migrations.AddField(
            model_name="reservation",
            name="price_breakdown",
            field=models.JSONField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(price_holds, price_holds_as_before),
    ]
