import hashlib
import secrets

from django.db import models
from django.utils.translation import gettext_lazy as _


def hash_api_key(raw_key):
    return hashlib.sha256(raw_key.encode()).hexdigest()


class ApiKey(models.Model):
    """A partner's key to the public API. Only its SHA-256 is stored; the key itself is shown once."""

    name = models.CharField(verbose_name=_("name"), max_length=100, unique=True)
    prefix = models.CharField(
        verbose_name=_("prefix"),
        max_length=12,
        editable=False,
        help_text=_("The key's first characters, to tell keys apart."),
    )
    key_hash = models.CharField(verbose_name=_("key hash"), max_length=64, unique=True, editable=False)
    rate_per_minute = models.PositiveIntegerField(
        verbose_name=_("rate per minute"), help_text=_("Requests allowed per minute; past it the API answers 429.")
    )
    held_seats_per_show = models.PositiveIntegerField(
        verbose_name=_("held seats per show"),
        null=True,
        blank=True,
        help_text=_(
            "Most seats this key's sessions may hold (not yet paid) in one show at once; past it the API "
            "answers 429. Empty: no cap."
        ),
    )
    is_revoked = models.BooleanField(verbose_name=_("is revoked"), default=False)
    created_at = models.DateTimeField(verbose_name=_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def generate_raw_key():
        return "tk_" + secrets.token_urlsafe(30)
