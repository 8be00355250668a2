"""Whole numbers in request text.

str.isdigit() is True for "²", "٣" and other Unicode digits that int() refuses, so `int(v) if v.isdigit()`
turns a stray character into a 500 (schemathesis found `city=²`). Only ASCII digits count here.
"""


def is_whole_number(text):
    """True for a non-empty string of ASCII digits 0-9."""
    return isinstance(text, str) and text.isascii() and text.isdigit()
