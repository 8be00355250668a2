from django.apps import AppConfig


class CinemasConfig(AppConfig):
    name = "cinemas"
    verbose_name = "Catalog"
