from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CinemasConfig(AppConfig):
    name = "cinemas"
    verbose_name = _("Catalog")
