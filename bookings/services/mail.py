"""Mail to buyers: their tickets, word that a booking was cancelled (by the cinema, or by them) and refunded, and the
one-time link to an address's bookings (My bookings).

Every mail is an OutgoingMail row, written in the transaction that makes it owed, and sent after commit by a
task that retries a failed attempt with a doubling wait; after TICKETING_MAIL_MAX_ATTEMPTS it is marked
failed, where staff see it in the admin and can send it again. Beat queues again the mail whose task was
lost. Every header made from our data goes through header_text, and every link through site_link.

Subjects and bodies are translatable (locale/); a mail is written in mail_language(mail), whatever language
the worker or the request that happens to send it has active.
"""

import logging
import re
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.core.mail import EmailMessage
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import dateformat, timezone, translation
from django.utils.translation import gettext

from bookings import links, ticket_codes
from bookings.calendar import booking_calendar, calendar_file_name
from bookings.models import OutgoingMail, Payment, Reservation
from bookings.services.add_ons import pickup
from bookings.services.errors import BookingError
from bookings.services.holds import find_reservation
from bookings.services.prices import price_breakdown
from bookings.services.tickets import ticket_token
from ticketing import shards
from ticketing.outbox import claim_attempt, queue_again

logger = logging.getLogger(__name__)

# An attempt that never reports back (its worker died mid-send) counts as lost this long after it began: far
# past EMAIL_TIMEOUT's SMTP steps. Beat's sweep then queues the mail again.
ATTEMPT_LEASE = timedelta(minutes=10)
# How long a one-time link to an address's bookings opens (bookings.services.my_bookings makes them).
BOOKINGS_LINK_MINUTES = 30
# Control characters (CR and LF among them) and the Unicode line and paragraph separators.
_NOT_FOR_A_HEADER = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_QUEUED = OutgoingMail.Status.QUEUED
# The task that makes one attempt (bookings.tasks), queued by its name: the tasks call these services, so this
# module can't import them without the two importing each other.
SEND_MAIL_TASK = "bookings.send_mail"


class MailNotSent(Exception):
    """An attempt failed; the next one is due in `retry_in` seconds."""

    def __init__(self, retry_in):
        self.retry_in = retry_in
        super().__init__(f"next attempt in {retry_in} s")


def header_text(value):
    """Text fit for a mail header (a subject, a display name, a file name): no line breaks or control characters.

    Each run of them becomes a space, and runs of spaces one space. A movie title with a newline in a subject
    would otherwise make every mail of that movie unsendable.
    """
    return " ".join(_NOT_FOR_A_HEADER.sub(" ", str(value)).split())


def site_link(view_name, *args):
    """The absolute address of one of the site's pages, for mail: always TICKETING_SITE_URL, the site's public
    address (a task has no request to take a host from)."""
    return settings.TICKETING_SITE_URL + reverse(view_name, args=args)


# --- Owing a mail ----------------------------------------------------------------------------------------------


def queue_mail(*, reservation=None, kind, link=None, at=None):
    """Owe the reservation's buyer a mail of this kind, at the address it gave (or, for a one-time link to an
    address's bookings, owe `link`'s address its mail). Returns the OutgoingMail.

    Writes the row in the caller's transaction (so the mail is owed exactly when the change that owes it
    commits), in the buyer's language: the one its earlier mail was written in, else the language of the request
    that owes it (the buyer's page; the API answers in English). On commit: queues its task; if that fails (the
    broker is down), beat's sweep queues it later.
    """
    at = at or timezone.now()
    earlier = None
    if reservation is not None:
        earlier = reservation.mails.order_by("created_at").values_list("language", flat=True).first()
    language = earlier or translation.get_supported_language_variant(translation.get_language() or "en")
    mail = OutgoingMail.objects.create(
        reservation=reservation,
        link=link,
        kind=kind,
        address=reservation.email if reservation else link.address,
        language=language,
        created_at=at,
        next_attempt_at=at,
    )
    _send_after_commit(mail.pk)
    return mail


def _send_after_commit(mail_id):
    # robust: a broker that is down must not fail a request that has committed; the row is still queued.
    database = shards.current()  # the task sends it from the shard whose transaction owed it
    shards.on_commit(lambda: current_app.signature(SEND_MAIL_TASK, args=(mail_id, database)).delay(), robust=True)


@shards.in_its_reservations_database
def email_ticket(*, buyer, reservation_id, address):
    """Keep the address the buyer gave and mail it the ticket. Returns the reservation.

    Locks the reservation row. Raises BookingError("not_found") for another session's reservation. A
    reservation that is not booked is returned unchanged, with nothing sent. Writes the ticket's
    OutgoingMail in the same transaction; on commit, its task sends it (a slow mail server never holds up
    the buyer's page).
    """
    with shards.atomic(durable=True):
        reservation = find_reservation(buyer=buyer, reservation_id=reservation_id, lock=True)
        if reservation.status != Reservation.Status.BOOKED:
            return reservation
        reservation.email = address
        reservation.save(update_fields=["email"])
        queue_mail(reservation=reservation, kind=OutgoingMail.Kind.TICKET)
    return reservation


def resend_mail(*, mail_id, at=None):
    """Staff send a mail again (it failed, or the buyer lost it): queued afresh, with a full set of attempts.

    A conditional update, no lock. Raises BookingError("mail_queued") for a mail already queued (it goes out
    with its next attempt). On commit: queues its task.
    """
    at = at or timezone.now()
    with shards.atomic():
        if not queue_again(OutgoingMail, mail_id, at=at):
            raise BookingError("mail_queued")
        _send_after_commit(mail_id)


def requeue_overdue_mail(*, at=None, batch=500):
    """Queue again the mail whose attempt is TICKETING_MAIL_REQUEUE_SECONDS overdue. Returns how many.

    Its task was lost: the process died between commit and queueing it, the broker lost it, or the worker
    died during an attempt. Locks the batch's rows, skipping any another sweep has; moves each one's next
    attempt to now, so that the next sweeps leave it to the task queued here. On commit: queues their tasks.
    """
    at = at or timezone.now()
    overdue = timedelta(seconds=settings.TICKETING_MAIL_REQUEUE_SECONDS)
    with shards.atomic():
        ids = list(
            OutgoingMail.objects.filter(status=_QUEUED, next_attempt_at__lte=at - overdue)
            .order_by("next_attempt_at")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[:batch]
        )
        OutgoingMail.objects.filter(pk__in=ids).update(next_attempt_at=at)
        for mail_id in ids:
            _send_after_commit(mail_id)
    return len(ids)


# --- Sending ---------------------------------------------------------------------------------------------------


def send_outgoing_mail(*, mail_id, at=None):
    """Make one attempt at a queued mail. Returns its status after the attempt, or None if it made none.

    Claims the attempt with a conditional update and holds no lock while the mail server talks: a mail that
    is not queued, or whose attempt is not due (a retry waits, or another worker's attempt runs), is left
    alone, so a duplicate task sends nothing twice. A ticket of a booking cancelled meanwhile is skipped.
    Any failure is recorded on the row (staff see it); raises MailNotSent while attempts remain, the wait
    doubling from TICKETING_MAIL_RETRY_SECONDS, and marks the mail failed after TICKETING_MAIL_MAX_ATTEMPTS.
    """
    at = at or timezone.now()
    if not claim_attempt(OutgoingMail, mail_id, at=at, lease=ATTEMPT_LEASE):
        return None
    mail = OutgoingMail.objects.select_related("reservation__show__movie", "reservation__show__hall__cinema").get(
        pk=mail_id
    )
    try:
        message = compose_mail(mail)
        if message is not None:
            message.send()
    except Exception as error:  # whatever failed (the server, the network, the message), staff must see it
        return _attempt_failed(mail, error)
    status = OutgoingMail.Status.SENT if message is not None else OutgoingMail.Status.SKIPPED
    OutgoingMail.objects.filter(pk=mail.pk, status=_QUEUED).update(
        status=status, sent_at=timezone.now() if message is not None else None
    )
    return status


def _attempt_failed(mail, error):
    failed_at = timezone.now()
    last_error = f"{type(error).__name__}: {error}"[:2000]
    if mail.attempts >= settings.TICKETING_MAIL_MAX_ATTEMPTS:
        OutgoingMail.objects.filter(pk=mail.pk, status=_QUEUED).update(
            status=OutgoingMail.Status.FAILED, last_error=last_error
        )
        logger.warning("Mail %s failed %s times; the last error: %s", mail.pk, mail.attempts, last_error)
        return OutgoingMail.Status.FAILED
    retry_in = settings.TICKETING_MAIL_RETRY_SECONDS * 2 ** (mail.attempts - 1)
    OutgoingMail.objects.filter(pk=mail.pk, status=_QUEUED).update(
        last_error=last_error, next_attempt_at=failed_at + timedelta(seconds=retry_in)
    )
    raise MailNotSent(retry_in)


def mail_language(mail):
    """The language `mail` is written in: the one it was owed in (queue_mail), whoever sends it and when — a
    worker, a retry, staff sending it again — so a mail's whole life agrees on one language."""
    return mail.language


def compose_mail(mail):
    """The EmailMessage of an OutgoingMail as things stand now, or None if it no longer applies."""
    with translation.override(mail_language(mail)):
        return _compose_mail(mail)


def ticket_link(reservation):
    """The signed link that opens the booking's ticket page on any device (bookings.links), for mail."""
    return site_link("ticket-link", reservation.pk, links.ticket_link_signature(reservation.pk))


def _compose_mail(mail):
    if mail.kind == OutgoingMail.Kind.BOOKINGS_LINK:
        return _message(
            subject=gettext("Your bookings: a link to sign in"),
            template="bookings/bookings_link_email.txt",
            context={
                "url": site_link("my-bookings-link", links.bookings_link_token(mail.link_id)),
                "minutes": BOOKINGS_LINK_MINUTES,
            },
            to=mail.address,
        )
    reservation = mail.reservation
    show = reservation.show
    cinema = show.hall.cinema
    context = {
        "reservation": reservation,
        "show": show,
        "cinema": cinema,
        "starts_at": show.local_starts_at,
        "booking_url": ticket_link(reservation),
        "directions_url": links.directions_url(cinema),
        "seats": reservation.seat_labels(),
    }
    # Translators: the show's start in a mail's subject (Django's date format characters), e.g. "Mon 07 Dec 19:30".
    starts = dateformat.format(show.local_starts_at, gettext("D d M H:i"))
    when = f"{show.movie.title}, {starts} ({reservation.booking_code})"
    if mail.kind == OutgoingMail.Kind.TICKET:
        if reservation.status != Reservation.Status.BOOKED:
            return None
        message = _message(
            subject=gettext("Your tickets: %(when)s") % {"when": when},
            template="bookings/ticket_email.txt",
            context={**context, "breakdown": price_breakdown(reservation), "pickup": pickup(reservation)},
            to=mail.address,
        )
        png = ticket_codes.qr_png(ticket_token(reservation))
        message.attach(header_text(f"ticket-{reservation.booking_code}.png"), png, "image/png")
        ics = booking_calendar(reservation, seats=context["seats"])
        message.attach(header_text(calendar_file_name(reservation)), ics, "text/calendar")
        return message
    refund = reservation.payments.filter(kind=Payment.Kind.REFUND).order_by("-created_at").first()
    if mail.kind == OutgoingMail.Kind.BUYER_CANCELLED:
        subject, template = gettext("Cancellation confirmed: %(when)s"), "bookings/buyer_cancelled_email.txt"
    elif refund:
        subject, template = gettext("Booking cancelled and refunded: %(when)s"), "bookings/cancelled_email.txt"
    else:
        subject, template = gettext("Booking cancelled: %(when)s"), "bookings/cancelled_email.txt"
    return _message(
        subject=subject % {"when": when},
        template=template,
        context={
            **context,
            "refund": refund,
            "refunded": refund is not None and refund.status == Payment.Status.SUCCEEDED,
        },
        to=mail.address,
    )


def _message(*, subject, template, context, to):
    """Every mail's one way out: a plain-text body from a template, and headers made fit by header_text."""
    return EmailMessage(subject=header_text(subject), body=render_to_string(template, context), to=[to])
