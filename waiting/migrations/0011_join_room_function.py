"""Joining a waiting room is one call of waiting_join_room: the room's row locked as the rules want it, the buyer's
place if it has one, the email's and the address's limits, the next place after the opening, the insert. One round
trip, so that the API's join can be a lean endpoint (issue 20: through the ORM a join cost ~20 ms of web CPU in
about 7 round trips, and 100,000 joins took over half an hour of one process). Its lookups are the ones its indexes
serve: "api_key_id IS NOT DISTINCT FROM p_api_key" can use none, and read every visitor of the room each join.

Refusals are bookings_refuse's (SQLSTATE TKR01, the code as message): not_found, room_not_open, room_closed,
email_in_room, room_address_cap. SQLSTATE TKR02 is no refusal but a word to the caller: draw_first when a join
after the opening finds the room not yet drawn (the draw, a shuffle by HMAC whose one implementation is
waiting.rooms.draw_order, is Python's: the caller draws and calls again), drawn_meanwhile (see p_late). `p_late` makes a join that arrived before the opening by its clock join at the back: it found the
room drawn, and holding its row FOR SHARE it may not take the lock a place needs.
"""

from django.db import migrations

JOIN_ROOM = """
CREATE OR REPLACE FUNCTION waiting_join_room(
    p_on_sale bigint, p_api_key bigint, p_session text, p_email text, p_address inet, p_at timestamptz,
    p_late boolean,
    OUT visitor_id uuid, OUT created boolean, OUT status text, OUT place bigint, OUT early boolean,
    OUT pass_expires_at timestamptz, OUT called_through bigint, OUT drawn_at timestamptz,
    OUT opens_at timestamptz, OUT admissions_per_minute integer
) LANGUAGE plpgsql AS $$
DECLARE
    v_sale cinemas_onsale;
    v_room waiting_room;
    v_visitor waiting_roomvisitor;
BEGIN
    SELECT * INTO v_sale FROM cinemas_onsale o WHERE o.id = p_on_sale;
    IF NOT FOUND THEN PERFORM bookings_refuse('not_found'); END IF;
    IF p_at < v_sale.queue_opens_at THEN
        PERFORM bookings_refuse('room_not_open', jsonb_build_object('opens_at', v_sale.queue_opens_at));
    END IF;
    IF p_at >= v_sale.closes_at THEN PERFORM bookings_refuse('room_closed'); END IF;
    INSERT INTO waiting_room (on_sale_id, secret, drawn_count, last_place, called_through, admissions_due, admitted)
    VALUES (p_on_sale, '', 0, 0, 0, 0, 0) ON CONFLICT (on_sale_id) DO NOTHING;

    early := p_at < v_sale.opens_at AND NOT p_late;
    IF early THEN
        -- Early joins side by side; the draw waits for them (it locks the row FOR NO KEY UPDATE).
        SELECT * INTO v_room FROM waiting_room r WHERE r.on_sale_id = p_on_sale FOR SHARE;
        IF v_room.drawn_at IS NOT NULL THEN RAISE EXCEPTION USING ERRCODE = 'TKR02', MESSAGE = 'drawn_meanwhile'; END IF;
    ELSE
        SELECT * INTO v_room FROM waiting_room r WHERE r.on_sale_id = p_on_sale FOR NO KEY UPDATE;
        IF v_room.drawn_at IS NULL THEN RAISE EXCEPTION USING ERRCODE = 'TKR02', MESSAGE = 'draw_first'; END IF;
    END IF;
    opens_at := v_sale.opens_at;
    admissions_per_minute := v_sale.admissions_per_minute;
    called_through := v_room.called_through;
    drawn_at := v_room.drawn_at;

    -- Two lookups, each on the index of one place per buyer: "api_key_id IS NOT DISTINCT FROM p_api_key" can't use
    -- it, and read every visitor of the room, each join (a plan's seq scan: O(n), 100,000 joins O(n^2)).
    IF p_api_key IS NULL THEN
        SELECT * INTO v_visitor FROM waiting_roomvisitor v
         WHERE v.room_id = p_on_sale AND v.api_key_id IS NULL AND v.session_id = p_session
           AND v.status IN ('Waiting', 'Admitted');
    ELSE
        SELECT * INTO v_visitor FROM waiting_roomvisitor v
         WHERE v.room_id = p_on_sale AND v.api_key_id = p_api_key AND v.session_id = p_session
           AND v.status IN ('Waiting', 'Admitted');
    END IF;
    IF FOUND THEN
        visitor_id := v_visitor.id; created := false; status := v_visitor.status; place := v_visitor.place;
        early := v_visitor.early; pass_expires_at := v_visitor.pass_expires_at;
        RETURN;
    END IF;
    IF p_email <> '' AND EXISTS (
        SELECT 1 FROM waiting_roomvisitor v
         -- "email <> ''" as the index of one place per email has it, so that a generic plan can use that index
         WHERE v.room_id = p_on_sale AND v.email = p_email AND v.email <> '' AND v.status IN ('Waiting', 'Admitted')
    ) THEN
        PERFORM bookings_refuse('email_in_room');
    END IF;
    IF p_api_key IS NULL AND p_address IS NOT NULL THEN
        -- The count rises only while below the cap: concurrent joins from one address can't pass it.
        INSERT INTO waiting_roomaddress AS counted (room_id, address, joins) VALUES (p_on_sale, p_address, 1)
        ON CONFLICT (room_id, address) DO UPDATE SET joins = counted.joins + 1
         WHERE counted.joins < v_sale.joins_per_address;
        IF NOT FOUND THEN PERFORM bookings_refuse('room_address_cap'); END IF;
    END IF;
    place := NULL;
    IF NOT early THEN
        UPDATE waiting_room r SET last_place = r.last_place + 1 WHERE r.on_sale_id = p_on_sale
        RETURNING r.last_place INTO place;
    END IF;
    visitor_id := gen_random_uuid();
    INSERT INTO waiting_roomvisitor (
        id, room_id, api_key_id, session_id, email, client_address, early, place, status, joined_at
    ) VALUES (visitor_id, p_on_sale, p_api_key, p_session, p_email, p_address, early, place, 'Waiting', p_at);
    created := true;
    status := 'Waiting';
    pass_expires_at := NULL;
END $$;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("waiting", "0010_waiting_rooms"),
        ("bookings", "0033_sales_tally_folding"),
    ]

    operations = [
        migrations.RunSQL(JOIN_ROOM, "DROP FUNCTION IF EXISTS waiting_join_room(bigint, bigint, text, text, inet, timestamptz, boolean)"),
    ]
