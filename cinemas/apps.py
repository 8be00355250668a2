from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CinemasConfig(AppConfig):
    name = "cinemas"
    verbose_name = _("Catalog")

    def ready(self):
        # What a replica may serve in a catalog read (ticketing.db_routers): the rows staff edit, whose changes
        # bump the catalog's generation. Not staff roles, on-sales or the menu.
        from cinemas.models import Cinema, City, Hall, HallPrice, Movie, MovieCertificate, Seat, Show, ShowPrice
        from cinemas.services import CATALOG_GENERATION
        from ticketing.db_routers import read_from_replica

        read_from_replica(
            City, Cinema, Hall, HallPrice, Seat, Movie, MovieCertificate, Show, ShowPrice, generation=CATALOG_GENERATION
        )

        # With the sales split by show id, the catalog is written here at home and copied to every shard, where
        # a show's sale reads its show, seats and prices (ticketing.shards).
        from ticketing.shards import replicated_to_every_shard

        replicated_to_every_shard(*self.get_models())
