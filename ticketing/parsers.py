"""The API's one parser: JSON, with the limits Django applies to forms applied to JSON bodies too.

DRF's JSONParser reads the whole body whatever its size (Django's DATA_UPLOAD_MAX_MEMORY_SIZE guards only
request.body and forms), and lets the decoder's RecursionError out of a body nested thousands of levels deep:
a 500 before authentication, for anyone.
"""

import io

from django.conf import settings
from django.utils.formats import number_format
from django.utils.translation import gettext
from rest_framework import parsers, status
from rest_framework.exceptions import APIException, ParseError


def too_large_message():
    """In the active language: English on the API (ticketing.middleware.SiteLocaleMiddleware), else the reader's."""
    size = number_format(settings.DATA_UPLOAD_MAX_MEMORY_SIZE, force_grouping=True)
    return gettext("The request body is larger than the %(size)s bytes this site accepts.") % {"size": size}


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"

    def __init__(self):
        super().__init__(too_large_message())


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(body) > limit:
            raise RequestTooLarge()
        try:
            return super().parse(io.BytesIO(body), media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply.") from None
