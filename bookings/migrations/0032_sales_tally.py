"""The staff's sales report reads a per-show tally kept as sales happen (issue 19, point 2: the chain's report
read 6.7 million bookings' breakdowns in 23 s), instead of every booking's price breakdown.

bookings_sales_of is the rule, in one place: what one reservation adds to its show's figures (the definitions
bookings.sales documents). Triggers add a change's difference (its figures after, less before) to this database
session's own row of bookings_showsales (ShowSales), in the change's transaction, whoever makes it (the pay and
cancel functions, the box office, rows written around them): when a reservation becomes Booked or stops being
Booked, or is deleted booked; when a refund succeeds (or is written succeeded, or deleted). A hold never fires
them: their WHEN conditions are false for a hold's insert and for every update of a hold that is not its
booking, so the hold path runs no trigger function. They stand beside 0029's webhook triggers rather than in
them: those fire for partners' bookings only.

The back-fill sums the existing rows set-based, after the triggers are made: CREATE TRIGGER (and the LOCK first)
takes SHARE ROW EXCLUSIVE on both tables until this migration commits, so no booking or refund commits between
the back-fill's snapshot and the triggers; writers wait for the migration (a minute or two at the study's 6.7
million bookings).
"""

import django.db.models.deletion
from django.db import migrations, models

FUNCTIONS = r"""
LOCK TABLE bookings_reservation, bookings_payment IN SHARE ROW EXCLUSIVE MODE;

-- A reservation's seats: its breakdown's, or (house seats have none) its seat claims, those it has or, once it
-- ended, those released with it (Reservation.seat_claims). Reads the reservation's row as it is now, so an
-- after-trigger of its cancellation counts the seats its claims' release (the same statement) took from it.
CREATE OR REPLACE FUNCTION bookings_reservation_seats(p_reservation uuid, p_breakdown jsonb) RETURNS int
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p_breakdown IS NOT NULL THEN coalesce(jsonb_array_length(p_breakdown -> 'seats'), 0)
                ELSE (SELECT count(*)::int FROM bookings_seatclaim claim
                        JOIN bookings_reservation hold ON hold.id = claim.reservation_id
                       WHERE claim.reservation_id = p_reservation
                         AND (claim.released_at IS NULL AND hold.ended_at IS NULL
                              OR claim.released_at = hold.ended_at)) END
$$;

-- The sum of a breakdown's lines (fees, taxes or discounts: [{"amount": "1.50", ...}]): one line or none (a
-- fee line and a tax line at most, by 0016's rule; discounts one a promo code) read in place by path, more by
-- bookings_breakdown_lines_total (0030).
CREATE OR REPLACE FUNCTION bookings_breakdown_lines(p_breakdown jsonb, p_lines text) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p_breakdown -> p_lines -> 1 IS NULL
                THEN coalesce((p_breakdown -> p_lines -> 0 ->> 'amount')::numeric, 0)
                ELSE bookings_breakdown_lines_total(p_breakdown -> p_lines) END
$$;

-- What one reservation adds to its show's sales (bookings.sales): its seats while it stands (Booked), by
-- channel, house seats apart; and, once sold (booked_at set, house seats never), what was charged (its amount,
-- the breakdown's total) and of it fees, taxes and discounts, also after it was cancelled.
CREATE OR REPLACE FUNCTION bookings_sales_of(
    p_reservation uuid, p_status text, p_booked_at timestamptz, p_channel text, p_partner boolean,
    p_amount numeric, p_breakdown jsonb)
RETURNS TABLE (website int, partners int, box_office int, house int, gross_online numeric,
               gross_box_office numeric, fees numeric, taxes numeric, discounts numeric)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN standing AND p_channel = 'online' AND NOT p_partner THEN seats ELSE 0 END,
           CASE WHEN standing AND p_channel = 'online' AND p_partner THEN seats ELSE 0 END,
           CASE WHEN standing AND p_channel = 'box_office' THEN seats ELSE 0 END,
           CASE WHEN standing AND p_channel = 'house' THEN seats ELSE 0 END,
           CASE WHEN sale AND p_channel = 'online' THEN p_amount ELSE 0 END,
           CASE WHEN sale AND p_channel = 'box_office' THEN p_amount ELSE 0 END,
           CASE WHEN sale THEN bookings_breakdown_lines(p_breakdown, 'fees') ELSE 0 END,
           CASE WHEN sale THEN bookings_breakdown_lines(p_breakdown, 'taxes') ELSE 0 END,
           CASE WHEN sale THEN bookings_breakdown_lines(p_breakdown, 'discounts') ELSE 0 END
      FROM (SELECT p_status = 'Booked' AS standing, p_booked_at IS NOT NULL AND p_channel <> 'house' AS sale,
                   CASE WHEN p_status = 'Booked' THEN bookings_reservation_seats(p_reservation, p_breakdown)
                        ELSE 0 END AS seats) reservation
$$;

-- What one payment adds to its show's refunds: a refund that succeeded, of a sale (house seats are never money).
CREATE OR REPLACE FUNCTION bookings_refunded_by(p_kind text, p_status text, p_amount numeric, p_channel text)
RETURNS numeric LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p_kind = 'refund' AND p_status = 'succeeded' AND p_channel <> 'house' THEN p_amount ELSE 0 END
$$;

-- A reservation's change, its figures after less before, added to this session's row of its show's tally.
CREATE OR REPLACE FUNCTION bookings_tally_reservation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bookings_showsales AS tally (show_id, backend, website, partners, box_office, house, gross_online,
                                             gross_box_office, fees, taxes, discounts, refunds)
    SELECT show_id, pg_backend_pid(), sum(sign * figures.website), sum(sign * figures.partners),
           sum(sign * figures.box_office), sum(sign * figures.house), sum(sign * figures.gross_online),
           sum(sign * figures.gross_box_office), sum(sign * figures.fees), sum(sign * figures.taxes),
           sum(sign * figures.discounts), 0
      FROM (SELECT 1 AS sign, NEW.show_id AS show_id, now_.*
              FROM bookings_sales_of(NEW.id, NEW.status, NEW.booked_at, NEW.channel, NEW.api_key_id IS NOT NULL,
                                     NEW.amount, NEW.price_breakdown) now_
             WHERE TG_OP <> 'DELETE'
            UNION ALL
            SELECT -1, OLD.show_id, before.*
              FROM bookings_sales_of(OLD.id, OLD.status, OLD.booked_at, OLD.channel, OLD.api_key_id IS NOT NULL,
                                     OLD.amount, OLD.price_breakdown) before
             WHERE TG_OP <> 'INSERT') figures
     GROUP BY show_id
    ON CONFLICT (show_id, backend) DO UPDATE
       SET website = tally.website + EXCLUDED.website, partners = tally.partners + EXCLUDED.partners,
           box_office = tally.box_office + EXCLUDED.box_office, house = tally.house + EXCLUDED.house,
           gross_online = tally.gross_online + EXCLUDED.gross_online,
           gross_box_office = tally.gross_box_office + EXCLUDED.gross_box_office,
           fees = tally.fees + EXCLUDED.fees, taxes = tally.taxes + EXCLUDED.taxes,
           discounts = tally.discounts + EXCLUDED.discounts;
    RETURN NULL;
END $$;

-- A refund's change, added to this session's row of its reservation's show's tally.
CREATE OR REPLACE FUNCTION bookings_tally_refund() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_show bigint;
    v_channel text;
    v_refunds numeric;
BEGIN
    SELECT show_id, channel INTO v_show, v_channel FROM bookings_reservation
     WHERE id = coalesce(NEW.reservation_id, OLD.reservation_id);
    v_refunds := CASE WHEN TG_OP = 'DELETE' THEN 0 ELSE bookings_refunded_by(NEW.kind, NEW.status, NEW.amount, v_channel) END
                 - CASE WHEN TG_OP = 'INSERT' THEN 0 ELSE bookings_refunded_by(OLD.kind, OLD.status, OLD.amount, v_channel) END;
    IF v_show IS NULL OR v_refunds = 0 THEN RETURN NULL; END IF;
    INSERT INTO bookings_showsales AS tally (show_id, backend, website, partners, box_office, house, gross_online,
                                             gross_box_office, fees, taxes, discounts, refunds)
    VALUES (v_show, pg_backend_pid(), 0, 0, 0, 0, 0, 0, 0, 0, 0, v_refunds)
    ON CONFLICT (show_id, backend) DO UPDATE SET refunds = tally.refunds + EXCLUDED.refunds;
    RETURN NULL;
END $$;

CREATE TRIGGER bookings_reservation_tally_inserted AFTER INSERT ON bookings_reservation FOR EACH ROW
    WHEN (NEW.status = 'Booked' OR NEW.booked_at IS NOT NULL)
    EXECUTE FUNCTION bookings_tally_reservation();
CREATE TRIGGER bookings_reservation_tally_updated AFTER UPDATE OF status, booked_at ON bookings_reservation
    FOR EACH ROW
    WHEN ((OLD.status = 'Booked') IS DISTINCT FROM (NEW.status = 'Booked')
          OR (OLD.booked_at IS NULL) IS DISTINCT FROM (NEW.booked_at IS NULL))
    EXECUTE FUNCTION bookings_tally_reservation();
CREATE TRIGGER bookings_reservation_tally_deleted AFTER DELETE ON bookings_reservation FOR EACH ROW
    WHEN (OLD.status = 'Booked' OR OLD.booked_at IS NOT NULL)
    EXECUTE FUNCTION bookings_tally_reservation();
CREATE TRIGGER bookings_payment_tally_inserted AFTER INSERT ON bookings_payment FOR EACH ROW
    WHEN (NEW.kind = 'refund' AND NEW.status = 'succeeded')
    EXECUTE FUNCTION bookings_tally_refund();
CREATE TRIGGER bookings_payment_tally_updated AFTER UPDATE OF status ON bookings_payment FOR EACH ROW
    WHEN (NEW.kind = 'refund' AND (OLD.status = 'succeeded') IS DISTINCT FROM (NEW.status = 'succeeded'))
    EXECUTE FUNCTION bookings_tally_refund();
CREATE TRIGGER bookings_payment_tally_deleted AFTER DELETE ON bookings_payment FOR EACH ROW
    WHEN (OLD.kind = 'refund' AND OLD.status = 'succeeded')
    EXECUTE FUNCTION bookings_tally_refund();

-- The back-fill: every show's sales so far in one row (backend 0, no session's), set-based.
INSERT INTO bookings_showsales (show_id, backend, website, partners, box_office, house, gross_online,
                                gross_box_office, fees, taxes, discounts, refunds)
SELECT hold.show_id, 0, sum(figures.website), sum(figures.partners), sum(figures.box_office), sum(figures.house),
       sum(figures.gross_online), sum(figures.gross_box_office), sum(figures.fees), sum(figures.taxes),
       sum(figures.discounts), 0
  FROM bookings_reservation hold
 CROSS JOIN LATERAL bookings_sales_of(hold.id, hold.status, hold.booked_at, hold.channel, hold.api_key_id IS NOT NULL,
                                      hold.amount, hold.price_breakdown) figures
 WHERE hold.status = 'Booked' OR hold.booked_at IS NOT NULL
 GROUP BY hold.show_id;

INSERT INTO bookings_showsales AS tally (show_id, backend, website, partners, box_office, house, gross_online,
                                         gross_box_office, fees, taxes, discounts, refunds)
SELECT hold.show_id, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
       sum(bookings_refunded_by(refund.kind, refund.status, refund.amount, hold.channel))
  FROM bookings_payment refund
  JOIN bookings_reservation hold ON hold.id = refund.reservation_id
 WHERE refund.kind = 'refund' AND refund.status = 'succeeded'
 GROUP BY hold.show_id
ON CONFLICT (show_id, backend) DO UPDATE SET refunds = tally.refunds + EXCLUDED.refunds;
"""

DROP_FUNCTIONS = """
DROP TRIGGER bookings_payment_tally_deleted ON bookings_payment;
DROP TRIGGER bookings_payment_tally_updated ON bookings_payment;
DROP TRIGGER bookings_payment_tally_inserted ON bookings_payment;
DROP TRIGGER bookings_reservation_tally_deleted ON bookings_reservation;
DROP TRIGGER bookings_reservation_tally_updated ON bookings_reservation;
DROP TRIGGER bookings_reservation_tally_inserted ON bookings_reservation;
DROP FUNCTION bookings_tally_refund();
DROP FUNCTION bookings_tally_reservation();
DROP FUNCTION bookings_refunded_by(text, text, numeric, text);
DROP FUNCTION bookings_sales_of(uuid, text, timestamptz, text, boolean, numeric, jsonb);
DROP FUNCTION bookings_breakdown_lines(jsonb, text);
DROP FUNCTION bookings_reservation_seats(uuid, jsonb);
"""


def create_functions(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTIONS)


def drop_functions(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_FUNCTIONS)


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0031_payment_refunds_index"),
        ("cinemas", "0010_hall_price_templates"),
    ]

    operations = [
        migrations.CreateModel(
            name="ShowSales",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("backend", models.IntegerField(verbose_name="backend")),
                ("website", models.IntegerField(default=0, verbose_name="website seats")),
                ("partners", models.IntegerField(default=0, verbose_name="partners' seats")),
                ("box_office", models.IntegerField(default=0, verbose_name="box office seats")),
                ("house", models.IntegerField(default=0, verbose_name="house seats")),
                (
                    "gross_online",
                    models.DecimalField(decimal_places=2, default=0, max_digits=16, verbose_name="gross online"),
                ),
                (
                    "gross_box_office",
                    models.DecimalField(
                        decimal_places=2, default=0, max_digits=16, verbose_name="gross at the box office"
                    ),
                ),
                ("fees", models.DecimalField(decimal_places=2, default=0, max_digits=16, verbose_name="fees")),
                ("taxes", models.DecimalField(decimal_places=2, default=0, max_digits=16, verbose_name="taxes")),
                (
                    "discounts",
                    models.DecimalField(decimal_places=2, default=0, max_digits=16, verbose_name="discounts"),
                ),
                ("refunds", models.DecimalField(decimal_places=2, default=0, max_digits=16, verbose_name="refunds")),
                (
                    "show",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="cinemas.show",
                        verbose_name="show",
                    ),
                ),
            ],
            options={
                "verbose_name": "show sales tally",
                "verbose_name_plural": "show sales tallies",
                "constraints": [
                    models.UniqueConstraint(fields=("show", "backend"), name="bookings_showsales_one_per_session")
                ],
            },
        ),
        migrations.RunPython(create_functions, drop_functions, elidable=False),
    ]
