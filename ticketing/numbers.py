"""Whole numbers in request text.

str.isdigit() is True for "²", "٣" and other Unicode digits that int() refuses, so `int(v) if v.isdigit()`
turns a stray character into a 500 (schemathesis found `city=²`); and int() refuses a string of more than
4,300 digits (Python's guard against quadratic conversion), so a long enough number was a 500 too. Every
number read from request text goes through whole_number().
"""

# PostgreSQL's bigint, the widest integer column we have: a larger id names nothing.
BIGINT_MAX = 2**63 - 1


def is_whole_number(text):
    """True for a non-empty string of ASCII digits 0-9."""
    return isinstance(text, str) and text.isascii() and text.isdigit()


def whole_number(value, *, maximum=BIGINT_MAX):
    """The whole number 0..maximum in `value` (an int, or ASCII digits with spaces around), else None.

    A bool is no number here (True is an int to Python, not a month to anyone else).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= maximum else None
    if isinstance(value, str):
        text = value.strip()
        # Checked by length before int(): int() of thousands of digits raises (and costs time).
        if is_whole_number(text) and len(text) <= len(str(maximum)):
            number = int(text)
            return number if number <= maximum else None
    return None
