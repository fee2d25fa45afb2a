"""Request body parsers of the API: DRF's, with limits a hostile body cannot get past.

Size and field-count limits are Django's (`DATA_UPLOAD_MAX_MEMORY_SIZE`,
`DATA_UPLOAD_MAX_NUMBER_FIELDS`), rendered as 413/400 by `storage_platform.errors`;
`BodyLimitUploadHandler` extends the size limit to multipart file parts. JSON adds one more
limit: nesting depth. Python's decoder recurses once per level, so about a thousand
levels raise RecursionError (a 500 before this parser); and a document that decodes at a
few hundred levels would still break the first recursive code that touches it (validation,
rendering, a JSONField). No API document nests deeper than a handful of levels, so anything
deeper than `MAX_JSON_DEPTH` is refused as a 400 right here.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadhandler import FileUploadHandler
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



class BodyLimitUploadHandler(FileUploadHandler):
    """First of `FILE_UPLOAD_HANDLERS`: refuses a multipart body over the body limit whole.

    Django limits multipart *fields* to `DATA_UPLOAD_MAX_MEMORY_SIZE` but spools file parts
    to disk without limit. No endpoint takes multipart files (file data is a raw PUT to the
    volumes data plane, which never parses its body and so never reaches this handler), so
    a larger multipart body is refused before it is read: 413 from DRF views and from
    Django's own forms (the admin) alike.
    """

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            raise RequestDataTooBig("Request body exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE.")

    def receive_data_chunk(self, raw_data, start):
        return raw_data

    def file_complete(self, file_size):
        return None
