import time

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from cinemas import demo


class Command(BaseCommand):
    help = (
        "Load the demo catalog: cities, cinemas, halls with seat maps, movies and a week of shows, plus the "
        "superuser admin/admin, a manager and a box office clerk (manager/manager, boxoffice/boxoffice) and a "
        "demo API key (local use only). Safe to run again; a later run adds the new "
        "days' shows. --scale study loads the design study's size instead (5,000 cinemas, 10 million seats, "
        "70,000 shows: about 1.6 GB in a minute and a half; PostgreSQL only) for the benchmark. Point "
        "DATABASE_URL at a separate database for it, e.g. postgres://postgres@127.0.0.1:5432/ticketing_study."
    )

    def add_arguments(self, parser):
        parser.add_argument("--scale", choices=["demo", "study"], default="demo")
        study = parser.add_argument_group(
            "--scale study", "Smaller study catalogs, e.g. for tests (defaults: the study's)."
        )
        study.add_argument("--cities", type=int, default=500)
        study.add_argument("--cinemas-per-city", type=int, default=10)
        study.add_argument("--seats-per-hall", type=int, default=2000)
        study.add_argument("--days", type=int, default=7)
        study.add_argument("--movies", type=int, default=30)

    def handle(self, *args, scale, **options):
        if scale == "study":
            self.load_study(options)
        else:
            self.load_demo()
        demo.ensure_admin_user()
        demo.ensure_demo_staff()
        demo.ensure_demo_api_key()
        self.stdout.write(
            self.style.WARNING(
                f"WARNING: the superuser {demo.ADMIN_USERNAME}/{demo.ADMIN_PASSWORD} and the demo API key are "
                "public, for local demos only: never seed a site others can reach."
            )
        )
        self.stdout.write(f"Demo API key: {demo.DEMO_API_KEY}")
        self.stdout.write(f"Admin login: {demo.ADMIN_USERNAME} / {demo.ADMIN_PASSWORD} at /admin/")
        staff = ", ".join(f"{name} / {name}" for name in demo.DEMO_STAFF)
        self.stdout.write(f"Staff at {demo.DEMO_STAFF_CINEMA}: {staff} at /staff/box-office/")

    def load_demo(self):
        counts = demo.load_demo()
        self.stdout.write(
            f"Demo catalog: {counts['cities']} cities, {counts['cinemas']} cinemas, {counts['halls']} halls "
            f"({counts['smallest_hall']:,}–{counts['largest_hall']:,} seats), {counts['movies']} movies; "
            f"{counts['shows_added']:,} shows added, {counts['shows_upcoming']:,} upcoming."
        )
        if counts["shows_skipped"]:
            self.stdout.write(f"Showtimes skipped because another show is in the way: {counts['shows_skipped']}.")
        on_sale = demo.ensure_demo_on_sale()
        if on_sale is not None:
            self.stdout.write(
                f"On-sale with a waiting room: {on_sale.show or on_sale.movie}, sale opens at "
                f"{on_sale.opens_at:%H:%M} UTC: /on-sale/{on_sale.pk}/"
            )

    def load_study(self, options):
        if connection.vendor != "postgresql":
            raise CommandError("--scale study needs PostgreSQL (it copies seats in with COPY).")
        started = time.monotonic()
        counts = demo.load_study(
            cities=options["cities"],
            cinemas_per_city=options["cinemas_per_city"],
            seats_per_hall=options["seats_per_hall"],
            days=options["days"],
            movies=options["movies"],
        )
        if counts is None:
            self.stdout.write(f"The study catalog is already loaded (cities named '{demo.STUDY_CITY_PREFIX}…').")
        else:
            self.stdout.write(
                "Study catalog: "
                + ", ".join(f"{count:,} {name}" for name, count in counts.items())
                + f" in {time.monotonic() - started:.1f} s."
            )
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
            self.stdout.write(f"Database size: {cursor.fetchone()[0]}.")
