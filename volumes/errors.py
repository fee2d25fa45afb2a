"""Errors of volumes and the file data plane; each pairs an HTTP status with a stable code.

Scripts and the Ansible collection match on `code`; the message is for a human.
"""

from __future__ import annotations

from storage_platform.errors import (
    BadRequest,
    Conflict,
    InsufficientStorage,
    NotFound,
    PayloadTooLarge,
    PlatformError,
)


class VolumeNotFound(NotFound):
    """The volume does not exist."""

    code = "volume_not_found"


class VolumeExists(Conflict):
    """A volume with this name already exists."""

    code = "volume_exists"


class VolumeBusy(Conflict):
    """The volume has an active backup or restore job."""

    code = "volume_busy"


class VolumeNotAvailable(Conflict):
    """The volume is not available for this operation in its current status."""

    code = "volume_not_available"


class QuotaBelowUsage(Conflict):
    """The new size is smaller than the data already stored in the volume."""

    code = "quota_below_usage"


class InvalidPath(BadRequest):
    """The path is not a valid path inside the volume."""

    code = "invalid_path"


class InvalidHeader(BadRequest):
    """A request header has an invalid value."""

    code = "invalid_header"


class FileNotFound(NotFound):
    """No file or directory exists at this path in the volume."""

    code = "file_not_found"


class PathConflict(Conflict):
    """The path exists with another type (a directory where a file is expected, or the reverse)."""

    code = "path_conflict"


class DirectoryNotEmpty(Conflict):
    """The directory is not empty; pass ?recursive=true to delete it with its contents."""

    code = "directory_not_empty"


class UploadTooLarge(PayloadTooLarge):
    """The upload is larger than the free space of the volume's quota."""

    code = "payload_too_large"


class QuotaExceeded(InsufficientStorage):
    """The volume's quota is exhausted; nothing was written."""

    code = "quota_exceeded"


class LengthRequired(PlatformError):
    """The upload needs a Content-Length header."""

    http_status = 411
    code = "length_required"


class PoolError(PlatformError):
    """The storage pool failed to carry out the operation."""

    http_status = 500
    code = "pool_error"
