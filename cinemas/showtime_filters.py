"""The filters of a movie's showtimes page: language, format, time of day and price, read from its query string.

The page's listing (cinemas.search.movie_showtimes) is read from the shared cache whole, for the day; the filters
narrow it afterwards, for each request, so they need no place in the cache's key and a filtered page is never
cached. A value that can't be read (an unknown format or time of day, a price that is not a number from 0 to
MAX_PRICE, a language too long or with control characters) is left out, and the page says which filter was.
"""

import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from cinemas.models import ShowFormat

# Local hours [from, to) of each time of day in the cinema's own zone; night runs past midnight.
TIMES_OF_DAY = {
    "morning": (5, 12, _("Morning (5:00–12:00)")),
    "afternoon": (12, 17, _("Afternoon (12:00–17:00)")),
    "evening": (17, 21, _("Evening (17:00–21:00)")),
    "night": (21, 5, _("Night (21:00–5:00)")),
}
MAX_PRICE = Decimal(100_000)
MAX_LANGUAGE_LENGTH = 50

LABELS = {
    "language": pgettext_lazy("showtime filter", "Audio language"),
    "format": pgettext_lazy("showtime filter", "Format"),
    "time": pgettext_lazy("showtime filter", "Time of day"),
    "price": pgettext_lazy("showtime filter", "Price at most"),
}


@dataclass(frozen=True)
class ShowtimeFilters:
    language: str = ""
    format: str = ""
    time: str = ""
    price: Decimal | None = None
    ignored: tuple = ()  # the names of the parameters whose values could not be read

    @property
    def active(self):
        return bool(self.language or self.format or self.time or self.price is not None)

    def query(self):
        """The active filters as a query string (without the day), for links that keep them."""
        pairs = {"language": self.language, "format": self.format, "time": self.time}
        if self.price is not None:
            pairs["price"] = f"{self.price:f}"
        return urlencode({name: value for name, value in pairs.items() if value})

    @property
    def labels(self):
        """Each filter's label, for the form and for the notice of values left out."""
        return LABELS

    def ignored_labels(self):
        return [LABELS[name] for name in self.ignored]

    def keeps(self, show, zone):
        if self.language and show.spoken_language.casefold() != self.language.casefold():
            return False
        if self.format and show.format != self.format:
            return False
        if self.time:
            start, end, _label = TIMES_OF_DAY[self.time]
            hour = show.starts_at.astimezone(zone).hour
            if not (start <= hour < end if start < end else hour >= start or hour < end):
                return False
        return self.price is None or (show.lowest_price is not None and show.lowest_price <= self.price)

    def narrow(self, listing):
        """A new listing (the cached one is left as it was) with only the shows these filters keep, and no
        cinema left without shows."""
        if not self.active:
            return listing
        narrowed = []
        for entry in listing:
            zone = ZoneInfo(entry["cinema"].time_zone)
            shows = [show for show in entry["shows"] if self.keeps(show, zone)]
            if shows:
                narrowed.append({**entry, "shows": shows})
        return narrowed


def _language(text):
    text = text.strip()
    if len(text) > MAX_LANGUAGE_LENGTH or any(unicodedata.category(char).startswith("C") for char in text):
        return None
    return text


def _price(text):
    try:
        value = Decimal(text.strip().replace(",", "."))
    except InvalidOperation:
        return None
    if not value.is_finite() or not 0 <= value <= MAX_PRICE:
        return None
    return value.quantize(Decimal("0.01"))


def read_filters(query):
    """ShowtimeFilters from a page's query (a QueryDict: the last value of each name counts); empty is none."""
    values, ignored = {}, []
    readers = {
        "language": _language,
        "format": lambda text: text if text in ShowFormat.values else None,
        "time": lambda text: text if text in TIMES_OF_DAY else None,
        "price": _price,
    }
    for name, reader in readers.items():
        text = query.get(name, "")
        if text.strip() == "":
            continue
        value = reader(text)
        if value is None:
            ignored.append(name)
        else:
            values[name] = value
    return ShowtimeFilters(**values, ignored=tuple(ignored))
