"""What the catalog pages show of a movie's content (`{% load catalog_content %}`): its poster and certificate.

`{% poster movie "card" %}`: the movie's poster as an `<img>` of the card (240 px) or detail (480 px) size, with
its width and height (2:3), the title as `alt`, and `loading="lazy"` on cards (cinemas.posters: the uploaded
files, else the placeholder drawn from the title).

`{{ movie|certificate_in:country }}`: the movie's rating in that country (a page shows the one of its cinema's
country), "" where it has none. The movie's certificates should be prefetched.
"""

from django import template
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from cinemas.posters import POSTER_SIZES, poster_height, poster_urls

register = template.Library()


@register.simple_tag
def poster(movie, size="card"):
    width = POSTER_SIZES[size]
    return format_html(
        '<img class="poster poster--{}" src="{}" width="{}" height="{}" alt="{}"{}>',
        size,
        poster_urls(movie)[size],
        width,
        poster_height(width),
        movie.title,
        mark_safe(' loading="lazy"') if size == "card" else "",
    )


@register.filter
def certificate_in(movie, country):
    return next((c.rating for c in movie.certificates.all() if c.country == country), "")
