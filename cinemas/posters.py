"""Movie posters as files: checked and resized with Pillow, stored under MEDIA_ROOT by their content's hash, and
a placeholder drawn from the title for a movie that has none, so every page always has a poster to show.

No database writes here (cinemas.services.upload_poster records a poster on its movie). Every file name carries
the hash of its bytes, so a file never changes once written: cinemas.views.poster_file serves it with a year's
cache (`immutable`), and a new poster is a new name, which the catalog's next answer carries.
"""

import colorsys
import hashlib
import re
from io import BytesIO

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils.translation import gettext
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

# The widths the pages use: the card in listings and search results, and the movie's own page. Posters are 2:3.
POSTER_SIZES = {"card": 240, "detail": 480}
ASPECT = 3 / 2  # height per width

# What an upload may be. The byte limit is checked before Pillow reads anything, the pixel limit from the
# header before it decodes (a small file can claim a huge image: a decompression bomb).
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000
MIN_WIDTH, MIN_HEIGHT = POSTER_SIZES["detail"] // 2, round(POSTER_SIZES["detail"] // 2 * ASPECT)
ACCEPTED_FORMATS = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP"}
WEBP_QUALITY = 82

POSTER_DIRECTORY = "posters"
PLACEHOLDER_DIRECTORY = f"{POSTER_DIRECTORY}/placeholder"
# Bumped when the placeholder's drawing changes, so the new drawing gets new names (old ones are cached a year).
PLACEHOLDER_STYLE = "1"
# The names poster_file serves: an uploaded rendition, or a placeholder (movie id / title's key - width).
SERVED_NAME = re.compile(
    rf"{POSTER_DIRECTORY}/(?:\d{{2,4}}-[0-9a-f]{{20}}\.webp|placeholder/\d{{1,18}}/[0-9a-f]{{12}}-\d{{2,4}}\.webp)"
)
PLACEHOLDER_NAME = re.compile(rf"{PLACEHOLDER_DIRECTORY}/(\d{{1,18}})/([0-9a-f]{{12}})-(\d{{2,4}})\.webp")


def poster_height(width):
    return round(width * ASPECT)


# --- Uploads ---------------------------------------------------------------------------------------------------


def read_upload(upload):
    """The uploaded image, decoded, or ValidationError saying what is wrong with it (never Pillow's own error).

    Checks, in order: the file's size, that Pillow recognises it as a JPEG, PNG or WebP, its pixel count from the
    header, its dimensions, and that it decodes whole (a truncated or corrupt file is refused here, not later).
    """
    if upload.size > MAX_UPLOAD_BYTES:
        raise ValidationError(
            gettext("The file is %(size)s MB; a poster may be at most %(most)s MB."),
            code="too_large",
            params={"size": f"{upload.size / 1024 / 1024:.1f}", "most": MAX_UPLOAD_BYTES // 1024 // 1024},
        )
    upload.seek(0)
    data = upload.read()
    try:
        # Pillow's own bomb check would only warn up to twice its limit: ours refuses from the header, first.
        with Image.open(BytesIO(data)) as probe:
            image_format, (width, height) = probe.format, probe.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise ValidationError(
            gettext("This file is not an image Pillow can read: upload a JPEG, PNG or WebP.")
        ) from None
    if image_format not in ACCEPTED_FORMATS:
        raise ValidationError(
            # Translators: %(format)s is an image format such as GIF or BMP.
            gettext("This is a %(format)s image; upload a JPEG, PNG or WebP."),
            code="format",
            params={"format": image_format},
        )
    if width * height > MAX_PIXELS:
        raise ValidationError(
            gettext("The image is %(width)s × %(height)s pixels; a poster may have at most %(most)s million."),
            code="too_many_pixels",
            params={"width": width, "height": height, "most": MAX_PIXELS // 1_000_000},
        )
    if width < MIN_WIDTH or height < MIN_HEIGHT:
        raise ValidationError(
            gettext(
                "The image is %(width)s × %(height)s pixels; a poster needs at least %(min_width)s × %(min_height)s."
            ),
            code="too_small",
            params={"width": width, "height": height, "min_width": MIN_WIDTH, "min_height": MIN_HEIGHT},
        )
    try:
        with Image.open(BytesIO(data)) as image:
            image.load()
            return ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise ValidationError(gettext("The image is damaged or cut short: upload the whole file again.")) from None


def render_poster(image):
    """`{size: WebP bytes}` for every size in POSTER_SIZES, cropped to 2:3 around the middle and resized."""
    renditions = {}
    for size, width in POSTER_SIZES.items():
        fitted = ImageOps.fit(image, (width, poster_height(width)), method=Image.Resampling.LANCZOS)
        renditions[size] = encode_webp(fitted)
    return renditions


def encode_webp(image):
    buffer = BytesIO()
    image.save(buffer, format="WEBP", quality=WEBP_QUALITY, method=4)
    return buffer.getvalue()


def store_rendition(data, *, width):
    """Write one rendition under its content's hash (once: the same bytes have the same name) and return its
    name in the storage."""
    name = f"{POSTER_DIRECTORY}/{width}-{hashlib.sha256(data).hexdigest()[:20]}.webp"
    if default_storage.exists(name):
        return name
    return default_storage.save(name, ContentFile(data))


# --- Placeholders ----------------------------------------------------------------------------------------------


def placeholder_key(title):
    return hashlib.sha256(f"{PLACEHOLDER_STYLE}:{title}".encode()).hexdigest()[:12]


def placeholder_name(movie_id, title, width):
    return f"{PLACEHOLDER_DIRECTORY}/{movie_id}/{placeholder_key(title)}-{width}.webp"


def title_colour(title):
    """A dark, saturated colour picked by the title's hash: the same title always gets the same one."""
    digest = hashlib.sha256(title.encode()).digest()
    hue = digest[0] / 255
    red, green, blue = colorsys.hls_to_rgb(hue, 0.32, 0.55)
    return round(red * 255), round(green * 255), round(blue * 255)


def wrap_words(draw, text, font, width):
    """`text` in lines no wider than `width` pixels (a word longer than that stands alone on its line)."""
    lines, line = [], ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if line and draw.textlength(candidate, font=font) > width:
            lines.append(line)
            line = word
        else:
            line = candidate
    return [*lines, line] if line else lines


def draw_poster(title, *, width, subtitle="", colour=None):
    """A poster `width` pixels wide drawn with Pillow: the title in white on a colour from its hash, fading to
    black at the foot, with a thin frame and an optional second line (the demo's posters give the genre)."""
    height = poster_height(width)
    top = colour or title_colour(title)
    image = Image.new("RGB", (width, height), top)
    draw = ImageDraw.Draw(image)
    for y in range(height // 2, height):  # the lower half fades to near black
        share = (y - height // 2) / (height // 2)
        draw.line([(0, y), (width, y)], fill=tuple(round(channel * (1 - 0.8 * share)) for channel in top))
    margin = width // 12
    draw.rectangle([margin // 2, margin // 2, width - margin // 2, height - margin // 2], outline=(255, 255, 255))
    font = ImageFont.load_default(size=max(12, width // 9))
    lines = wrap_words(draw, title, font, width - 2 * margin)[:5]
    line_height = round(font.size * 1.2)
    y = height // 3 - line_height * len(lines) // 2
    for line in lines:
        draw.text((width / 2, y), line, font=font, fill=(255, 255, 255), anchor="mt")
        y += line_height
    if subtitle:
        small = ImageFont.load_default(size=max(10, width // 20))
        draw.text((width / 2, height - 2 * margin), subtitle.upper(), font=small, fill=(230, 230, 230), anchor="mb")
    return image


def placeholder_poster(movie_id, title, width):
    """The name of the movie's placeholder at `width`, drawn and stored the first time it is asked for."""
    name = placeholder_name(movie_id, title, width)
    if not default_storage.exists(name):
        name = default_storage.save(name, ContentFile(encode_webp(draw_poster(title, width=width))))
    return name


# --- Where a page or the API finds a poster ----------------------------------------------------------------------


def poster_urls(movie):
    """`{"card": url, "detail": url}`, site-relative: the uploaded poster's files, or else the placeholder's."""
    if movie.poster and movie.poster_card:
        return {"card": movie.poster_card.url, "detail": movie.poster.url}
    return {
        size: default_storage.url(placeholder_name(movie.pk, movie.title, width))
        for size, width in POSTER_SIZES.items()
    }
