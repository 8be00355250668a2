"""Fixtures of tests/bookings live in tests/conftest.py (the waiting-line tests share them)."""
