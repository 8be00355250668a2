"""Browsing at the design study's catalog scale under load (`python -m bench.browse`; see __main__.py): the
catalog and its hot shows (catalog, hot_shows), the visitors as Locust users (locustfile, tally), one Locust run
per level and its figures (locust_runs), and the checks at the end (final_checks).

Imports nothing: locustfile.py imports this package's Locust-side modules in Locust's own interpreter.
"""
