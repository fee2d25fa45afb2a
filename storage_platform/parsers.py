"""Request body parsers of the API: DRF's, with limits a hostile body cannot get past.

Size and field-count limits are Django's (`DATA_UPLOAD_MAX_MEMORY_SIZE`,
`DATA_UPLOAD_MAX_NUMBER_FIELDS`), rendered as 413/400 by `storage_platform.errors`. Django
applies the size limit to multipart *fields* only and spools file parts to disk; no API
endpoint takes multipart files (file data is a raw PUT to the volumes data plane, which has
its own parser and streams), so a multipart body over the limit is refused whole, before it
is read. JSON adds one more limit: nesting depth. Python's decoder recurses once per level, so about a thousand
levels raise RecursionError (a 500 before this parser); and a document that decodes at a
few hundred levels would still break the first recursive code that touches it (validation,
rendering, a JSONField). No API document nests deeper than a handful of levels, so anything
deeper than `MAX_JSON_DEPTH` is refused as a 400 right here.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import exceptions
from rest_framework import parsers as drf_parsers

MAX_JSON_DEPTH = 32


class JsonTooDeep(exceptions.ParseError):
    default_detail = f"The JSON body is nested more than {MAX_JSON_DEPTH} levels deep."
    platform_code = "json_too_deep"


def json_depth_exceeds(document, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when `document` (decoded JSON) has containers nested deeper than `limit`.

    Iterative, so it cannot itself run out of stack.
    """
    pending = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


class JSONParser(drf_parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            document = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise JsonTooDeep() from None
        if json_depth_exceeds(document):
            raise JsonTooDeep()
        return document


class MultiPartParser(drf_parsers.MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        meta = request.META if request is not None else {}
        try:
            length = int(meta.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            raise RequestDataTooBig("Request body exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE.")
        return super().parse(stream, media_type, parser_context)
