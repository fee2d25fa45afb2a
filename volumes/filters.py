"""Filters of the volume list: `name`, `status`, `policy`, `label=key=value` (repeatable) and
`label_selector=key=value,key2=value2`. All are exact matches and combine with AND.

Label filters never splice a key into SQL. On PostgreSQL they are one containment test
(`labels @> {"key": "value", ...}`), which the GIN index on labels answers; label values are
always strings (volumes.validation), so containment is exact equality of each key. On SQLite
each term compares one JSON key through `KeyTextTransform` cast to text.
"""

from __future__ import annotations

from django.db import connections
from django.db.models import QuerySet, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from volumes.models import VolumeStatus
from volumes.validation import LABEL_KEY_PATTERN, VolumeValidationError

MAX_LABEL_FILTERS = 16


def parse_label_terms(query_params) -> list[tuple[str, str]]:
    raw_terms = list(query_params.getlist("label"))
    for selector in query_params.getlist("label_selector"):
        raw_terms.extend(term for term in selector.split(",") if term.strip())
    return _parse_terms(raw_terms)


def parse_label_selector(selector: str) -> list[tuple[str, str]]:
    """The (key, value) terms of one `key=value,key2=value2` selector (the list filter's
    syntax, also a token's scope); `VolumeValidationError` when malformed."""
    return _parse_terms([term for term in selector.split(",") if term.strip()])


def _parse_terms(raw_terms: list[str]) -> list[tuple[str, str]]:
    terms = []
    for raw in raw_terms:
        key, separator, value = raw.strip().partition("=")
        if not separator or not LABEL_KEY_PATTERN.match(key):
            raise VolumeValidationError(
                f"Label filter {raw[:80]!r} must look like key=value.",
                detail={"label": [f"Invalid term {raw[:80]!r}."]})
        terms.append((key, value))
    if len(terms) > MAX_LABEL_FILTERS:
        raise VolumeValidationError(f"At most {MAX_LABEL_FILTERS} label filters.",
                                    detail={"label": ["Too many terms."]})
    return terms


def filter_volumes(queryset: QuerySet, query_params) -> QuerySet:
    """Apply the list filters; a malformed filter raises `VolumeValidationError` (400)."""
    for parameter in ("name", "status", "policy", "label", "label_selector"):
        for value in query_params.getlist(parameter):
            if not value.isprintable():
                # PostgreSQL refuses NUL in a query: answer 400 here rather than 500 there.
                raise VolumeValidationError(f"{parameter} contains unprintable characters.",
                                            detail={parameter: ["Unprintable characters."]})
    name = query_params.get("name")
    if name:
        queryset = queryset.filter(name=name)
    status = query_params.get("status")
    if status:
        if status not in VolumeStatus.values:
            raise VolumeValidationError(
                f"status must be one of {', '.join(VolumeStatus.values)}.", detail={"status": ["Unknown status."]})
        queryset = queryset.filter(status=status)
    policy = query_params.get("policy")
    if policy:
        queryset = queryset.filter(policy__name=policy)
    return filter_by_labels(queryset, parse_label_terms(query_params))


def filter_by_labels(queryset: QuerySet, terms: list[tuple[str, str]], alias_prefix: str = "label_filter") -> QuerySet:
    """The volumes of `queryset` whose labels hold every (key, value) of `terms`.

    `alias_prefix` names the SQLite aliases, so two label filters (a token's scope and the
    list's own) can apply to one query without clashing."""
    if terms and connections[queryset.db].vendor == "postgresql":
        wanted = dict(terms)
        if len(set(terms)) != len(wanted):
            return queryset.none()  # one key asked to equal two different values
        return queryset.filter(labels__contains=wanted)
    for index, (key, value) in enumerate(terms):
        alias = f"{alias_prefix}_{index}"
        # Cast to text: a bare key transform would make Django compare against the value
        # parsed as JSON, which fails on SQLite for plain strings.
        text_value = Cast(KeyTextTransform(key, "labels"), TextField())
        queryset = queryset.alias(**{alias: text_value}).filter(**{alias: value})
    return queryset
