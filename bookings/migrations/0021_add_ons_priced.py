"""Food and drink priced in the one breakdown (issue 18, point 2), and gift cards kept within what a hold costs.

bookings_price_breakdown is 0016's rule with one more kind of line: the hold's food and drink ("add_ons" in its
terms: [{"id", "name", "quantity", "unit_price"}], written by bookings_price_add_ons from the hold's
ReservationAddOn rows), each line quantity x unit price rounded to the currency's decimals, taxed with the tickets
and the fee (never discounted by a promo code: codes take off tickets). The breakdown gains "add_ons": [{"id",
"name", "quantity", "amount"}]; its other lines are as they were. A change of seats or of promo codes prices
again on the stored terms, add-ons included.

Since the hold's terms list its food and drink, the trigger that gives their stock back (0018) fires only for a
reservation that has some, as the promo codes' does (0017): the sweep and every cancelled hold pay nothing for it.

A hold whose amount falls below what its gift cards paid (a promo code applied after a gift card, an item taken
off) gives the excess back to the cards at once (a trigger), so a card never pays more than the hold costs.
"""

import re
from importlib import import_module

from django.db import migrations

FUNCTIONS = r"""
-- THE price rule (0016's, with food and drink: see the module's docstring).
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
    v_add_ons jsonb;
    v_food numeric;
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
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'id', item -> 'id', 'name', item ->> 'name', 'quantity', (item ->> 'quantity')::int,
               'amount', round((item ->> 'unit_price')::numeric * (item ->> 'quantity')::int, v_exponent)::text)
               ORDER BY place), '[]'),
           coalesce(sum(round((item ->> 'unit_price')::numeric * (item ->> 'quantity')::int, v_exponent)), 0)
      INTO v_add_ons, v_food
      FROM jsonb_array_elements(coalesce(p_terms -> 'add_ons', '[]')) WITH ORDINALITY listed (item, place);
    v_taxed := v_left + v_fee + v_food;
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
        'add_ons', v_add_ons,
        'total', round(v_taxed + CASE WHEN v_included THEN 0 ELSE v_tax END, v_exponent)::text,
        'currency', p_terms ->> 'currency',
        'terms', p_terms);
END $$;


-- A stored breakdown priced again on `p_terms` (its own, with something changed): its seats at the prices they
-- were held for. What every change of a hold's price but a change of seats goes through: promo codes
-- (bookings_price_again, 0017's, now in its terms) and food and drink (below).
CREATE OR REPLACE FUNCTION bookings_price_on_terms(p_breakdown jsonb, p_terms jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT bookings_price_breakdown(
        (SELECT coalesce(jsonb_agg(jsonb_build_array(listed.seat -> 'id', NULL, NULL, listed.seat ->> 'type',
                                                     listed.seat ->> 'price') ORDER BY listed.place), '[]')
           FROM jsonb_array_elements(p_breakdown -> 'seats') WITH ORDINALITY listed (seat, place)),
        p_terms)
$$;

CREATE OR REPLACE FUNCTION bookings_price_again(p_breakdown jsonb, p_discounts jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT bookings_price_on_terms(p_breakdown, jsonb_set(p_breakdown -> 'terms', '{discounts}', p_discounts))
$$;

-- Price a buyer's hold again with its food and drink as they are now (its ReservationAddOn rows), on the terms it
-- was priced on, and store the breakdown and its total as the amount. The caller holds the reservation's lock
-- (bookings.services.add_ons.choose_add_ons). Returns the new breakdown.
CREATE OR REPLACE FUNCTION bookings_price_add_ons(p_reservation uuid) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_breakdown jsonb := (SELECT hold.price_breakdown FROM bookings_reservation hold WHERE hold.id = p_reservation);
    v_add_ons jsonb := (
        SELECT coalesce(jsonb_agg(jsonb_build_object('id', line.menu_item_id, 'name', item.name,
                                                     'quantity', line.quantity, 'unit_price', line.unit_price::text)
                                  ORDER BY item.name, line.menu_item_id), '[]')
          FROM bookings_reservationaddon line JOIN cinemas_menuitem item ON item.id = line.menu_item_id
         WHERE line.reservation_id = p_reservation);
BEGIN
    v_breakdown := bookings_price_on_terms(v_breakdown, jsonb_set(v_breakdown -> 'terms', '{add_ons}', v_add_ons));
    UPDATE bookings_reservation hold SET price_breakdown = v_breakdown, amount = (v_breakdown ->> 'total')::numeric
     WHERE hold.id = p_reservation;
    RETURN v_breakdown;
END $$;

-- A live hold that now costs less than its gift cards paid gives them back the difference.
CREATE OR REPLACE FUNCTION bookings_keep_gift_cards_within_amount() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bookings_return_gift_cards(NEW.id, NEW.gift_cards_paid - NEW.amount, now());
    RETURN NULL;
END $$;
DROP TRIGGER bookings_reservation_gives_back_add_ons ON bookings_reservation;
CREATE TRIGGER bookings_reservation_gives_back_add_ons
    AFTER UPDATE OF status ON bookings_reservation
    FOR EACH ROW
    WHEN (OLD.status IN ('Reserved', 'Booked') AND NEW.status IN ('Expired', 'Cancelled')
          AND jsonb_array_length(coalesce(NEW.price_breakdown #> '{terms,add_ons}', '[]')) > 0)
    EXECUTE FUNCTION bookings_give_back_add_ons();

CREATE TRIGGER bookings_reservation_keeps_gift_cards_within_amount
    AFTER UPDATE OF amount ON bookings_reservation
    FOR EACH ROW
    WHEN (NEW.status = 'Reserved' AND NEW.amount < NEW.gift_cards_paid)
    EXECUTE FUNCTION bookings_keep_gift_cards_within_amount();
"""

DROP_FUNCTIONS = """
DROP TRIGGER bookings_reservation_keeps_gift_cards_within_amount ON bookings_reservation;
DROP FUNCTION bookings_keep_gift_cards_within_amount();
DROP FUNCTION bookings_price_add_ons(uuid);
DROP TRIGGER bookings_reservation_gives_back_add_ons ON bookings_reservation;
CREATE TRIGGER bookings_reservation_gives_back_add_ons
    AFTER UPDATE OF status ON bookings_reservation
    FOR EACH ROW
    WHEN (OLD.status IN ('Reserved', 'Booked') AND NEW.status IN ('Expired', 'Cancelled'))
    EXECUTE FUNCTION bookings_give_back_add_ons();
"""


def create_functions(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTIONS)


def drop_functions(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_FUNCTIONS)
        # 0016's rule, without food and drink, and 0017's bookings_price_again, on its own.
        schema_editor.execute(import_module("bookings.migrations.0016_price_breakdown").FUNCTIONS)
        promo_codes = import_module("bookings.migrations.0017_promo_codes").FUNCTIONS
        schema_editor.execute(
            re.search(r"CREATE OR REPLACE FUNCTION bookings_price_again\(.*?\$\$;", promo_codes, re.S).group()
        )
        schema_editor.execute("DROP FUNCTION bookings_price_on_terms(jsonb, jsonb)")


class Migration(migrations.Migration):
    dependencies = [("bookings", "0020_hold_extension")]

    operations = [migrations.RunPython(create_functions, drop_functions, elidable=False)]
