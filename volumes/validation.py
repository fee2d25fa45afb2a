"""Validation of volume fields, shared by the API, the admin and other apps' services.

`clean_volume_fields(data, partial=...)` checks a client's dict field by field and returns
clean values, or raises `VolumeValidationError` (400 `validation_error`) whose `detail`
maps each bad field to a list of messages, like DRF's validation errors. Types are strict
(a JSON number for `size_gb`, not `true` or `1.5`) because automation that sends the wrong
type should hear about it rather than get a guess.

`clean_file_path(raw)` applies the name rules of the file data plane (see `docs/volumes.md`):
no invisible or line-breaking characters, NFC, and no component that compatibility
normalisation would turn into `.`, `..` or a separator.
"""

from __future__ import annotations

import re
import unicodedata

from storage_platform.errors import BadRequest
from storage_platform.rpo import BOTH_GIVEN_MESSAGE, MAX_RPO_HOURS, MAX_RPO_MINUTES, MINUTES_PER_HOUR, same_rpo
from volumes.errors import InvalidPath
from volumes.models import DNS_LABEL_PATTERN, MAX_SIZE_GB

MAX_LABELS = 64
MAX_LABEL_VALUE_LENGTH = 255
# Kubernetes-style label keys: an optional DNS-subdomain prefix and '/', then a name of
# letters, digits, '-', '_' and '.', starting and ending with a letter or digit (1-63).
LABEL_KEY_PATTERN = re.compile(
    r"^(?:[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?\Z"
)
NAME_PATTERN = re.compile(DNS_LABEL_PATTERN)
# Fields a client may write, and fields it may send back unchanged from a GET (ignored), so
# that a read-modify-write round trip works while typos are still reported.
WRITABLE_FIELDS = ("name", "size_gb", "labels", "policy", "rpo_minutes", "rpo_hours", "pool", "node")
READ_ONLY_FIELDS = ("id", "status", "status_message", "path", "used_bytes", "quota_bytes", "created_at",
                    "updated_at", "policy_id", "last_backup")


# Unicode general categories refused in names, label values and file paths: controls (Cc:
# NUL, newline, DEL, the C1 range), format characters (Cf: bidi overrides such as U+202E,
# zero-width space/joiners, U+FEFF, soft hyphen, tag characters) and the line and paragraph
# separators (Zl, Zp). They are invisible or reorder text, so they make one name look like
# another in listings, logs and terminals, or break a log line in two. Lone surrogates (Cs,
# from a JSON "\ud800") are not text at all, and PostgreSQL refuses them in JSON.
REFUSED_CATEGORIES = {"Cc": "control character", "Cf": "format character", "Cs": "surrogate",
                      "Zl": "line separator", "Zp": "paragraph separator"}


def first_refused_character(text: str) -> tuple[int, str] | None:
    """(index, character) of the first character of a refused category, or None."""
    for index, character in enumerate(text):
        if unicodedata.category(character) in REFUSED_CATEGORIES:
            return index, character
    return None


def describe_character(character: str) -> str:
    """`U+202E RIGHT-TO-LEFT OVERRIDE`: how messages name a character without printing it."""
    name = unicodedata.name(character, "") or REFUSED_CATEGORIES.get(unicodedata.category(character), "character")
    return f"U+{ord(character):04X} {name}"


def escape_refused(text: str) -> str:
    """`text` with every refused character written as `\\uXXXX`, safe to echo and log."""
    return "".join(f"\\u{ord(character):04x}" if unicodedata.category(character) in REFUSED_CATEGORIES
                   else character for character in text)


def clean_file_path(raw_path) -> str:
    """A data-plane path in NFC, or `InvalidPath` (400 `invalid_path`).

    Refused: characters of `REFUSED_CATEGORIES`, and components whose NFKC form is `.` or `..`
    or contains `/` or `\\` (full-width `．．`, the one- and two-dot leaders `․`/`‥`, the
    full-width solidus `／`): NFC keeps them, but a tool that applies compatibility
    normalisation later would turn them into a traversal or a separator. Other full-width
    characters, a full-width dot inside a name included (`report．pdf`), are accepted.
    Syntax (absolute paths, `..`, backslashes, lengths) is `volumes.confinement`'s job.
    """
    if not isinstance(raw_path, str):
        raise InvalidPath("The path must be a string.")
    refused = first_refused_character(raw_path)
    if refused is not None:
        index, character = refused
        raise InvalidPath(
            f"The path contains {describe_character(character)} at position {index}; control, format and "
            "line-separator characters are not allowed in names.",
            detail={"path": escape_refused(raw_path)[:4096], "character": f"U+{ord(character):04X}",
                    "position": index})
    path = unicodedata.normalize("NFC", raw_path)
    for component in path.split("/"):
        if component.isascii():
            continue  # NFKC leaves ASCII alone; confinement judges '.', '..' and '\\'
        folded = unicodedata.normalize("NFKC", component)
        if folded in (".", "..") or "/" in folded or "\\" in folded:
            raise InvalidPath(
                f"The name {component[:255]!r} looks like {folded[:255]!r} (it becomes that under Unicode "
                "compatibility normalisation); dot-only names and separator look-alikes are not allowed.",
                detail={"path": path[:4096], "component": component[:255]})
    return path


class VolumeValidationError(BadRequest):
    """The volume's fields are not valid."""

    code = "validation_error"


def strict_integer(value, field: str, *, minimum: int, maximum: int, errors: dict) -> int | None:
    """An integer from JSON (or a digit string from an HTML form); records an error otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        errors[field] = [f"Must be a whole number, not {type(value).__name__}."]
        return None
    if isinstance(value, str):
        if not re.fullmatch(r"[0-9]{1,12}", value.strip()):
            errors[field] = ["Must be a whole number."]
            return None
        value = int(value.strip())
    if value < minimum:
        errors[field] = [f"Must be at least {minimum}."]
        return None
    if value > maximum:
        errors[field] = [f"Must be at most {maximum}."]
        return None
    return value


def validate_name(value, errors: dict) -> str | None:
    if not isinstance(value, str):
        errors["name"] = ["Must be a string."]
        return None
    if not NAME_PATTERN.match(value):  # ASCII only, so no invisible or look-alike characters
        errors["name"] = ["Use 1-63 lower-case letters, digits or '-', starting and ending with a letter or digit."]
        return None
    return value


def validate_labels(value, errors: dict) -> dict | None:
    if not isinstance(value, dict):
        errors["labels"] = ["Must be an object mapping label keys to string values."]
        return None
    if len(value) > MAX_LABELS:
        errors["labels"] = [f"At most {MAX_LABELS} labels."]
        return None
    problems = []
    for key, label_value in value.items():
        if not LABEL_KEY_PATTERN.match(key) or len(key) > 253 + 1 + 63:
            problems.append(f"Key {key[:80]!r} is not a valid label key (letters, digits, '-', '_', '.', "
                            "optionally prefixed by a DNS name and '/').")
        elif not isinstance(label_value, str):
            problems.append(f"The value of {key!r} must be a string, not {type(label_value).__name__}.")
        elif len(label_value) > MAX_LABEL_VALUE_LENGTH:
            problems.append(f"The value of {key!r} must be at most {MAX_LABEL_VALUE_LENGTH} characters.")
        elif (refused := first_refused_character(label_value)) is not None:
            problems.append(f"The value of {key!r} contains {describe_character(refused[1])}; control, format and "
                            "line-separator characters are not allowed.")
    if problems:
        errors["labels"] = problems
        return None
    return dict(value)


def resolve_policy(value, errors: dict):
    """A Policy from its id or name; `None` stays None (no policy)."""
    from backups.models import Policy

    if value is None:
        return None
    if (isinstance(value, bool) or not isinstance(value, (int, str)) or value == ""
            or (isinstance(value, str) and (len(value) > 63 or not value.isprintable()))):
        errors["policy"] = ["Must be a policy id or name."]
        return None
    policy = None
    if isinstance(value, int) or value.isdigit():
        policy = Policy.objects.filter(pk=int(value)).first()
    if policy is None and isinstance(value, str):
        policy = Policy.objects.filter(name=value).first()
    if policy is None:
        errors["policy"] = [f"No policy has the id or name {str(value)[:80]!r}."]
    return policy


def validate_pool(value, errors: dict) -> str | None:
    from volumes.pools import configured_pools

    pools = configured_pools()
    if not isinstance(value, str) or value not in pools:
        errors["pool"] = [f"Unknown pool; known pools: {', '.join(sorted(pools))}."]
        return None
    return value


def validate_node(value, errors: dict) -> str | None:
    if value == "" or value is None:
        return ""
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        errors["node"] = ["Must be a node name (DNS label) or empty."]
        return None
    return value


def clean_volume_fields(data, *, partial: bool) -> dict:
    """Validated values for the fields present in `data`.

    On create (`partial=False`) `name` and `size_gb` are required. The RPO override comes as
    `rpo_minutes` or `rpo_hours` (whole hours), never both; either and `policy` may be null
    (null RPO: follow the policy; null policy: no policy). Returns only the keys present, with
    the RPO as `rpo_minutes` (int/None) and `policy` converted (Policy/None).
    """
    if not isinstance(data, dict):
        raise VolumeValidationError("The body must be a JSON object.",
                                    detail={"non_field_errors": ["Expected an object."]})
    errors: dict[str, list[str]] = {}
    unknown = sorted(key for key in data if key not in WRITABLE_FIELDS and key not in READ_ONLY_FIELDS)
    for key in unknown:
        errors[str(key)[:80]] = ["Unknown field."]
    if not partial:
        for required in ("name", "size_gb"):
            if required not in data:
                errors[required] = ["This field is required."]
    clean: dict = {}
    if "name" in data:
        clean["name"] = validate_name(data["name"], errors)
    if "size_gb" in data:
        clean["size_gb"] = strict_integer(data["size_gb"], "size_gb", minimum=1, maximum=MAX_SIZE_GB, errors=errors)
    if "labels" in data:
        clean["labels"] = validate_labels({} if data["labels"] is None else data["labels"], errors)
    if "rpo_minutes" in data and "rpo_hours" in data and not same_rpo(data["rpo_minutes"], data["rpo_hours"]):
        errors["rpo_minutes"] = [BOTH_GIVEN_MESSAGE]
    elif "rpo_minutes" in data:
        clean["rpo_minutes"] = None if data["rpo_minutes"] is None else strict_integer(
            data["rpo_minutes"], "rpo_minutes", minimum=1, maximum=MAX_RPO_MINUTES, errors=errors)
    elif "rpo_hours" in data:
        hours = None if data["rpo_hours"] is None else strict_integer(
            data["rpo_hours"], "rpo_hours", minimum=1, maximum=MAX_RPO_HOURS, errors=errors)
        clean["rpo_minutes"] = None if hours is None else hours * MINUTES_PER_HOUR
    if "policy" in data:
        clean["policy"] = resolve_policy(data["policy"], errors)
    if "pool" in data:
        clean["pool"] = validate_pool(data["pool"], errors)
    if "node" in data:
        clean["node"] = validate_node(data["node"], errors)
    if errors:
        first_field, first_messages = next(iter(errors.items()))
        raise VolumeValidationError(f"{first_field}: {first_messages[0]}", detail=errors)
    return clean
