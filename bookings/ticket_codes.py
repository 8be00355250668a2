"""Booking codes and signed tickets that a scanner at the door can check without reaching this site.

A ticket is the text a QR code carries:

    T1.<base64url(JSON payload)>.<base64url(Ed25519 signature)>

base64url is unpadded. The signature covers the ASCII bytes of everything before the last dot
(``T1.<payload>``), so the version prefix is signed too. The payload is compact JSON with the fields
``v`` (1), ``rid`` (reservation id), ``code`` (booking code), ``show`` (show id), ``seats`` (labels such
as "F12"), ``starts`` (show start, ISO 8601 UTC, "2026-05-01T18:30:00Z") and ``iat`` (issued at, Unix
seconds). Anyone with the site's 32-byte public key can check a ticket with any Ed25519 library; only the
site, holding the private key, can make one.

A signature proves a ticket was issued, not that it is still good: whether it was cancelled or already
used is the booking service's record, which a scanner syncs when it can. This module touches no database;
finding a ticket and checking it in at the door is bookings.services.tickets.
"""

import base64
import binascii
import functools
import io
import json
import re
import secrets
from datetime import UTC, datetime

import segno
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from django.utils.encoding import force_bytes

TOKEN_PREFIX = "T1"
PAYLOAD_VERSION = 1
PAYLOAD_FIELDS = frozenset({"v", "rid", "code", "show", "seats", "starts", "iat"})

# Crockford's base32: digits and capitals without I, L, O and U, so nothing reads as another symbol.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 8
# What people type for the letters Crockford leaves out.
_CODE_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})
_CODE_SEPARATORS = re.compile(r"[\s\-]+")
_CODE_PATTERN = re.compile(f"[{CODE_ALPHABET}]+")

# A real ticket is a few hundred characters; refusing anything far longer up front keeps a hostile
# scan from costing more than a regular one.
MAX_TOKEN_LENGTH = 4096
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
SEED_LENGTH = 32
SIGNATURE_LENGTH = 64
# Changing this label changes every derived key, which voids every ticket issued under the old one.
_DERIVATION_INFO = b"ticketing ticket signing key v1"

QR_ERROR_LEVEL = "m"
# Pixels per module: a ticket (300-400 characters) becomes a symbol of about 310-360 px, which fills a
# phone screen without zooming. The SVG also carries a viewBox, so a page may scale it down.
QR_SCALE = 4
QR_LABEL = "Ticket QR code"


class InvalidTicket(Exception):
    """The text is not a ticket this key issued: forged, malformed, tampered with or signed by another key."""


# --- Booking codes ------------------------------------------------------------------------------------


def generate_booking_code(length: int = CODE_LENGTH) -> str:
    """A random code in Crockford base32, 8 characters (40 bits) such as "K7M2Q9XD" unless `length` says more
    (a gift card's 16: 80 bits, too many to guess).

    Codes are not checked against existing rows here: the caller stores the code under a unique
    constraint and draws again on a collision, which at 2**40 codes is rare.
    """
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))


def normalize_booking_code(text: str, length: int = CODE_LENGTH) -> str:
    """The canonical code of `length` characters (a booking's 8 unless said) for what someone typed, or
    InvalidTicket if it can't be one.

    Ignores case, whitespace and hyphens ("k7m2-q9xd"), and reads O as 0 and I or L as 1, as Crockford
    base32 does. U is not part of the alphabet and is refused.
    """
    if not isinstance(text, str):
        raise InvalidTicket("a booking code must be text")
    compact = _CODE_SEPARATORS.sub("", text)
    # Before upper(): non-ASCII letters could otherwise become ASCII ones ("ß" -> "SS", "ı" -> "I").
    if not compact.isascii():
        raise InvalidTicket("a booking code has only the letters A-Z and digits")
    code = compact.upper().translate(_CODE_LOOKALIKES)
    if len(code) != length or not _CODE_PATTERN.fullmatch(code):
        raise InvalidTicket(f"a code is {length} letters and digits (no U)")
    return code


# --- Keys ---------------------------------------------------------------------------------------------


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    """Strict unpadded base64url: raises ValueError for any other alphabet, padding or a non-canonical form.

    Canonical only, because lenient decoders accept several spellings of the same bytes, and one ticket
    should have exactly one text.
    """
    if not _BASE64URL.fullmatch(text):
        raise ValueError("not base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:
        raise ValueError("not base64url") from None
    if _b64encode(data) != text:
        raise ValueError("not canonical base64url")
    return data


def _private_key_from_seed(seed: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(seed)


def _derive_seed(secret_key: str | bytes) -> bytes:
    """A seed that follows from SECRET_KEY alone, so one site signs tickets with no extra setting.

    HKDF with its own label keeps the seed independent of every other use of SECRET_KEY; rotating
    SECRET_KEY rotates this key too and voids the tickets already issued.
    """
    hkdf = HKDF(algorithm=hashes.SHA256(), length=SEED_LENGTH, salt=None, info=_DERIVATION_INFO)
    return hkdf.derive(force_bytes(secret_key))


def _parse_configured_seed(configured: str) -> bytes:
    # The message never repeats the value: it is a private key, and errors end up in logs.
    problem = (
        "TICKETING_TICKET_SIGNING_KEY must be a base64url-encoded 32-byte Ed25519 private seed "
        "(make one with `python manage.py ticket_signing_key`)"
    )
    text = configured.strip().rstrip("=")
    try:
        seed = _b64decode(text)
    except ValueError:
        raise ImproperlyConfigured(f"{problem}; it is not base64url") from None
    if len(seed) != SEED_LENGTH:
        raise ImproperlyConfigured(f"{problem}; it decodes to {len(seed)} bytes")
    return seed


@functools.cache
def _load_private_key(configured: str, secret_key: str | bytes) -> Ed25519PrivateKey:
    """The key for these setting values; cached by value, so overridden settings (tests) take effect at once."""
    seed = _parse_configured_seed(configured) if configured.strip() else _derive_seed(secret_key)
    return _private_key_from_seed(seed)


def _site_private_key() -> Ed25519PrivateKey:
    """This site's signing key: TICKETING_TICKET_SIGNING_KEY, or one derived from SECRET_KEY when it is empty.

    Raises ImproperlyConfigured, naming TICKETING_TICKET_SIGNING_KEY, when the setting is set but malformed.
    """
    return _load_private_key(settings.TICKETING_TICKET_SIGNING_KEY, settings.SECRET_KEY)


def public_key_bytes() -> bytes:
    """This site's raw 32-byte Ed25519 public key: what a scanner needs to verify tickets offline."""
    return _site_private_key().public_key().public_bytes_raw()


def public_key_b64() -> str:
    """This site's public key as unpadded base64url (43 characters)."""
    return _b64encode(public_key_bytes())


# --- Tickets ------------------------------------------------------------------------------------------


def _iso_utc(moment: datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("starts_at must be an aware datetime")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def sign_ticket(*, reservation_id: str, booking_code: str, show_id: int, seats: list[str], starts_at: datetime) -> str:
    """The signed ticket text for a QR code, signed with this site's key (see the module docstring).

    ``booking_code`` must already be canonical (as generate/normalize return it) and ``starts_at`` aware;
    anything else is a programming error and raises ValueError rather than issuing a ticket that disagrees
    with the booking on record. Raises ImproperlyConfigured if the signing key setting is malformed.
    """
    if not isinstance(reservation_id, str) or not reservation_id:
        raise ValueError("reservation_id must be a non-empty string")
    if (
        not isinstance(booking_code, str)
        or len(booking_code) != CODE_LENGTH
        or not _CODE_PATTERN.fullmatch(booking_code)
    ):
        raise ValueError(f"booking_code must be a canonical booking code, got {booking_code!r}")
    if not isinstance(show_id, int) or isinstance(show_id, bool):
        raise ValueError("show_id must be an int")
    if not seats or not all(isinstance(label, str) and label for label in seats):
        raise ValueError("seats must be a non-empty list of seat labels")
    payload = {
        "v": PAYLOAD_VERSION,
        "rid": reservation_id,
        "code": booking_code,
        "show": show_id,
        "seats": list(seats),
        "starts": _iso_utc(starts_at),
        "iat": int(timezone.now().timestamp()),
    }
    # Compact separators: every byte saved is a smaller, easier-to-scan QR code.
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    signed_part = f"{TOKEN_PREFIX}.{_b64encode(body)}"
    signature = _site_private_key().sign(signed_part.encode("ascii"))
    return f"{signed_part}.{_b64encode(signature)}"


def verify_ticket(token: str, *, public_key: bytes | None = None) -> dict:
    """The payload of a ticket whose signature checks out, or InvalidTicket.

    With ``public_key`` (raw 32 bytes) this needs nothing but the key: no settings, SECRET_KEY or
    database, which is how a scanner runs. Without it, this site's own public key is used (and a
    malformed signing key setting raises ImproperlyConfigured). A ``public_key`` that is not 32 bytes
    is the caller's mistake and raises ValueError.

    Checks only that this key issued the ticket; whether it was cancelled, refunded or already used is
    the booking service's record.
    """
    if public_key is None:
        key = _site_private_key().public_key()
    else:
        if not isinstance(public_key, bytes) or len(public_key) != SEED_LENGTH:
            raise ValueError("public_key must be the raw 32-byte Ed25519 public key")
        key = Ed25519PublicKey.from_public_bytes(public_key)

    if not isinstance(token, str) or not token:
        raise InvalidTicket("empty ticket")
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidTicket("ticket too long")
    # Scanners in keyboard mode end a read with Enter; anything else odd is refused below.
    token = token.strip()
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        raise InvalidTicket("not a ticket of this format")
    try:
        body = _b64decode(parts[1])
        signature = _b64decode(parts[2])
    except ValueError:
        raise InvalidTicket("ticket is not base64url") from None
    if len(signature) != SIGNATURE_LENGTH:
        raise InvalidTicket("bad signature")
    # Signature first: nothing in the payload is looked at until we know we wrote it.
    try:
        key.verify(signature, f"{parts[0]}.{parts[1]}".encode("ascii"))
    except InvalidSignature:
        raise InvalidTicket("bad signature") from None
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise InvalidTicket("payload is not JSON") from None
    if not isinstance(payload, dict) or payload.get("v") != PAYLOAD_VERSION or set(payload) != PAYLOAD_FIELDS:
        raise InvalidTicket("unknown payload version or fields")
    return payload


# --- QR -----------------------------------------------------------------------------------------------


def qr_svg(token: str) -> str:
    """An inline SVG QR code of ``token`` for a phone screen: no XML declaration, role="img" with an aria-label.

    Error correction is at least M: segno raises the level when that fits in the same symbol size. The
    background is painted white, because a QR code on a dark page with a transparent background won't scan.
    """
    qr = segno.make(token, error=QR_ERROR_LEVEL, micro=False)
    size = qr.symbol_size(scale=QR_SCALE)[0]
    # omitsize gives a viewBox (so CSS can scale it); the pixel size goes back on as width/height.
    svg = qr.svg_inline(scale=QR_SCALE, light="white", dark="black", omitsize=True)
    return svg.replace(
        "<svg ",
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{QR_LABEL}" width="{size}" height="{size}" ',
        1,
    )


def qr_png(token: str) -> bytes:
    """The same QR code as a PNG, for mail (mail clients don't show inline SVG)."""
    buffer = io.BytesIO()
    segno.make(token, error=QR_ERROR_LEVEL, micro=False).save(buffer, kind="png", scale=QR_SCALE, light="white")
    return buffer.getvalue()
