"""`/api/v1/volumes/{id}/files/...`: the file data plane over HTTP.

* `PUT  files/{path}`: raw body streamed into the file (any Content-Type); optional
  `X-File-Mode` (octal) and `X-File-Mtime` (Unix seconds or ISO 8601). 201 when created,
  200 when replaced, body `{path, size, sha256}`.
* `GET  files/{path}`: the file's bytes with Content-Length, `X-File-Mode`, `X-File-Mtime`;
  a directory path answers with its listing instead.
* `GET  files/?path=dir`: the directory's entries, paginated like every list.
* `DELETE files/{path}[?recursive=true]`: a file, a symlink, or a directory. 204.

Paths are NFC and refuse control, format and line-separator characters (400 `invalid_path`,
rules in `volumes.validation.clean_file_path`). Reading needs the `read` role; writing and deleting need `admin` (the issue gives volumes to
admin; see docs/volumes.md). The body is never parsed by DRF: the view reads the underlying
Django request in 1 MiB chunks so a large upload never sits in memory.
"""

from __future__ import annotations

import mimetypes
import re
from email.utils import formatdate

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.roles import Role
from accounts.scopes import VolumeScopeSupport, scope_of
from storage_platform.openapi import error_responses, paginated
from storage_platform.pagination import StandardPagination
from volumes import dataplane, services
from volumes.errors import InvalidHeader, InvalidPath, LengthRequired, PathConflict
from volumes.serializers import FileEntrySerializer, FileWriteResultSerializer

VOLUME_PARAMETER = OpenApiParameter("id", OpenApiTypes.STR, OpenApiParameter.PATH, description="Volume UUID or name.")
PATH_PARAMETER = OpenApiParameter("file_path", OpenApiTypes.STR, OpenApiParameter.PATH,
                                  description="Path inside the volume, '/'-separated.")
DIRECTORY_LISTING = paginated(FileEntrySerializer, "DirectoryListing")
PAGE_PARAMETERS = [OpenApiParameter("page", OpenApiTypes.INT, description="A page number within the paginated result set."),
                   OpenApiParameter("page_size", OpenApiTypes.INT, description="Number of results to return per page.")]
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("", "0", "false", "no", "off")


class RawBodyParser(BaseParser):
    """Declares that PUT takes any raw body (for the schema and the browsable API's form).

    The view never asks DRF for `request.data`, so this parser never reads the body; if
    something did, it would hand back the stream rather than load it.
    """

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        return stream


class DownloadContentNegotiation(DefaultContentNegotiation):
    """A download is bytes whatever the client accepts; only error bodies are rendered, as
    JSON when the client's Accept header (e.g. `application/octet-stream`) names no renderer."""

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            renderer = JSONRenderer()
            return renderer, renderer.media_type


def parse_flag(value: str | None, name: str) -> bool:
    lowered = (value or "").strip().lower()
    if lowered in TRUE_WORDS:
        return True
    if lowered in FALSE_WORDS:
        return False
    raise InvalidHeader(f"{name} must be true or false.", detail={"parameter": name}, code="invalid_parameter")


def upload_stream(request):
    """(stream, content_length) of a PUT body; content_length None means read to EOF."""
    meta = request.META
    raw_length = meta.get("CONTENT_LENGTH")
    if raw_length not in (None, ""):
        # fullmatch, not isdigit(): isdigit() accepts digits such as '²' that int() refuses.
        if not re.fullmatch(r"[0-9]{1,19}", raw_length.strip()):
            raise InvalidHeader("Content-Length must be a number of bytes.", detail={"header": "Content-Length"})
        return request._request, int(raw_length)
    if "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower():
        # Django reads no body without a Content-Length; a WSGI server that de-chunks and
        # marks the input as terminated (gunicorn) lets us stream it to EOF ourselves.
        if meta.get("wsgi.input_terminated"):
            return meta["wsgi.input"], None
        raise LengthRequired("This server needs a Content-Length for uploads; chunked bodies are not supported here.")
    return request._request, 0


def file_response(opened: dataplane.OpenedFile) -> FileResponse:
    content_type = mimetypes.guess_type(opened.name)[0] or "application/octet-stream"
    response = FileResponse(opened.file, as_attachment=True, filename=opened.name, content_type=content_type)
    response["Content-Length"] = str(opened.size)
    response["X-File-Mode"] = f"{opened.mode:04o}"
    seconds, nanoseconds = divmod(opened.mtime_ns, 1_000_000_000)
    response["X-File-Mtime"] = f"{seconds}.{nanoseconds:09d}"
    response["Last-Modified"] = formatdate(seconds, usegmt=True)
    return response


class FilesViewBase(APIView):
    read_role = Role.READ
    write_role = Role.ADMIN
    volume_scope = VolumeScopeSupport.ENFORCED
    parser_classes = [RawBodyParser]
    content_negotiation_class = DownloadContentNegotiation
    pagination_class = StandardPagination

    def listing(self, request, volume, raw_path: str):
        entries = dataplane.list_directory(volume, raw_path)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(entries, request, view=self)
        return paginator.get_paginated_response(FileEntrySerializer(page, many=True).data)


class VolumeDirectoryView(FilesViewBase):
    """`files/?path=dir`: list a directory (the volume's root without `path`)."""

    @extend_schema(
        operation_id="volumes_files_list",
        parameters=[VOLUME_PARAMETER,
                    OpenApiParameter("path", OpenApiTypes.STR, description="Directory to list; the root if omitted."),
                    *PAGE_PARAMETERS],
        responses={200: DIRECTORY_LISTING, **error_responses(409)},
    )
    def get(self, request, id):
        volume = services.find_volume(id, scope=scope_of(request))
        return self.listing(request, volume, request.query_params.get("path", ""))


class VolumeFileView(FilesViewBase):
    """`files/{path}`: download, upload, delete one file (or list/delete a directory)."""

    @extend_schema(
        operation_id="volumes_files_download",
        parameters=[VOLUME_PARAMETER, PATH_PARAMETER, *PAGE_PARAMETERS],
        responses={(200, "*/*"): OpenApiTypes.BINARY,
                   (200, "application/json"): DIRECTORY_LISTING,
                   **error_responses(400, 409)},
        description="Download a file (`Content-Type` guessed from its name, `X-File-Mode`, `X-File-Mtime`); "
                    "a directory path answers with its listing, paginated (`page`, `page_size`).",
    )
    def get(self, request, id, file_path: str):
        volume = services.find_volume(id, scope=scope_of(request))
        try:
            return file_response(dataplane.open_file(volume, file_path))
        except PathConflict:
            if dataplane.is_directory(volume, file_path):
                return self.listing(request, volume, file_path)
            raise

    @extend_schema(
        operation_id="volumes_files_upload",
        parameters=[VOLUME_PARAMETER, PATH_PARAMETER,
                    OpenApiParameter("X-File-Mode", OpenApiTypes.STR, OpenApiParameter.HEADER,
                                     description="Octal permission bits, e.g. 0644."),
                    OpenApiParameter("X-File-Mtime", OpenApiTypes.STR, OpenApiParameter.HEADER,
                                     description="Modification time: Unix seconds or ISO 8601.")],
        request={"application/octet-stream": OpenApiTypes.BINARY},
        responses={201: FileWriteResultSerializer, 200: FileWriteResultSerializer,
                   400: OpenApiResponse(description="invalid_path: escapes the volume, or a name with control, "
                                                    "format or line-separator characters or a dot look-alike"),
                   413: OpenApiResponse(description="payload_too_large: the declared length does not fit the "
                                                    "free quota; quota_exceeded: the body outgrew it"),
                   507: OpenApiResponse(description="pool_full: the storage pool itself is full"),
                   **error_responses(409, 411)},
    )
    def put(self, request, id, file_path: str):
        volume = services.find_volume(id, scope=scope_of(request))
        if file_path.endswith("/"):
            raise InvalidPath("A file path must not end with '/'.", detail={"path": file_path})
        mode = dataplane.parse_mode(request.META.get("HTTP_X_FILE_MODE"))
        mtime_ns = dataplane.parse_mtime(request.META.get("HTTP_X_FILE_MTIME"))
        stream, content_length = upload_stream(request)
        result = dataplane.write_file(volume, file_path, stream, content_length=content_length,
                                      mode=mode, mtime_ns=mtime_ns)
        body = {"path": result.path, "size": result.size, "sha256": result.sha256}
        return Response(body, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)

    @extend_schema(
        operation_id="volumes_files_delete",
        parameters=[VOLUME_PARAMETER, PATH_PARAMETER,
                    OpenApiParameter("recursive", OpenApiTypes.BOOL,
                                     description="Delete a directory with its contents.")],
        responses={204: None, **error_responses(409)},
    )
    def delete(self, request, id, file_path: str):
        volume = services.find_volume(id, scope=scope_of(request))
        recursive = parse_flag(request.query_params.get("recursive"), "recursive")
        dataplane.delete_path(volume, file_path, recursive=recursive)
        return Response(status=status.HTTP_204_NO_CONTENT)
