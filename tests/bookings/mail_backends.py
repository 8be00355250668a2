"""Django's own mail backends, made to fail their first sends as a mail server that is down fails them."""

import os
import smtplib
from pathlib import Path

from django.core.mail.backends import filebased, locmem


def _refuse():
    raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")


class FlakyBackend(locmem.EmailBackend):
    """The test outbox (django.core.mail.outbox), refusing the next `failures` sends first."""

    failures = 0

    def send_messages(self, messages):
        if FlakyBackend.failures > 0:
            FlakyBackend.failures -= 1
            _refuse()
        return super().send_messages(messages)


class FlakyFileBackend(filebased.EmailBackend):
    """For a worker in a process of its own: writes each mail to a file in $TEST_MAIL_DIR, after refusing the
    first $TEST_MAIL_FAILURES sends (counted in that folder, so the count survives the worker's retries)."""

    def __init__(self, **kwargs):
        super().__init__(file_path=os.environ["TEST_MAIL_DIR"], **kwargs)

    def send_messages(self, messages):
        folder = Path(os.environ["TEST_MAIL_DIR"])
        refused = len(list(folder.glob("refused-*")))
        if refused < int(os.environ["TEST_MAIL_FAILURES"]):
            (folder / f"refused-{refused + 1}").touch()
            _refuse()
        return super().send_messages(messages)
