"""bench/profile_split.py charges each py-spy sample to the layer whose code was running."""

from bench.profile_split import OTHER, layer_of, split

SERVE = "run (uvicorn/server.py:67);handle (ticketing/asgi/handler.py:60)"


def test_a_sample_is_charged_to_the_innermost_known_layer():
    assert layer_of(
        f"{SERVE};hold_seats (bookings/services/holds.py:376);execute (django/db/models/sql/compiler.py:1)"
    ) == ("ORM: building queries, reading rows")
    assert layer_of(f"{SERVE};hold_seats (bookings/services/holds.py:376)") == "our Python (apps)"
    assert layer_of(f"{SERVE};execute (psycopg/cursor.py:97)") == "SQL round trips (psycopg, pool)"


def test_stdlib_frames_count_for_the_layer_that_called_them():
    assert layer_of(f"{SERVE};render (rest_framework/renderers.py:99);dumps (json/__init__.py:231)") == (
        "serialization (DRF serializers, JSON)"
    )
    assert layer_of(f"{SERVE};check (ticketing/numbers.py:9);match (re/__init__.py:167)") == "our Python (apps)"
    assert layer_of("_bootstrap (threading.py:1012);run (threading.py:992)") == OTHER


def test_counts_are_summed_per_layer_from_collapsed_stacks():
    lines = [f"{SERVE};hold_seats (bookings/services/holds.py:376) 3", f"{SERVE};execute (psycopg/cursor.py:97) 2", ""]

    assert split(lines) == {"our Python (apps)": 3, "SQL round trips (psycopg, pool)": 2}
