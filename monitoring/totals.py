"""Backup totals: what every finished backup adds to the counters and the duration histogram.

Two views of the same rule, kept side by side so they cannot drift apart:

* `backup_totals_aggregates()` computes the totals of all rows in SQL (one query, at scrape);
* `backup_contribution(backup)` is what one row adds, used when a row is deleted to move its
  share into `MetricCounter` (see `monitoring.counters`).

The rule: a backup in status `completed` counts as a success and adds its `stats` bytes and
`stats.duration_seconds` (when recorded) to the histogram; a `failed` backup counts as a
failure. Queued, running and cancelled backups add nothing. Forgotten backups (pruned from the
repository, row kept) still count: counters describe what happened, not what is kept.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from django.db import NotSupportedError, connections
from django.db.models import F, FloatField, Func

from backups.models import BackupStatus

# Seconds. Backups range from seconds (small incremental) to many hours (first full backup).
DURATION_BUCKETS: tuple[float, ...] = (10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800, 86400, math.inf)
BYTE_FIELDS = ("bytes_read", "bytes_new", "bytes_stored")

OPERATIONS = "backup_operations_total"
FAILURES = "backup_failures_total"
BYTES = {field: f"backup_{field}_total" for field in BYTE_FIELDS}
DURATION_BUCKET = "backup_duration_seconds_bucket"
DURATION_SUM = "backup_duration_seconds_sum"
DURATION_COUNT = "backup_duration_seconds_count"
# Finished jobs by kind and result; counted from Job rows (plus retired rows) in the collector.
JOB_FINISHED = "backup_job_finished_total"


def bucket_label(upper_bound: float) -> str:
    """The `le` label exactly as prometheus_client writes it (`+Inf`, `60.0`)."""
    return "+Inf" if math.isinf(upper_bound) else str(float(upper_bound))


class JsonNumber(Func):
    """`stats[key]` as a float, NULL when absent or not a number, with one JSON parse per row.

    Django's key transforms test the JSON type before extracting (three parses per value on
    SQLite), which tripled the cost of the totals query at 30,000 backups.
    """

    output_field = FloatField()

    def __init__(self, column: str, key: str):
        if not key.replace("_", "").isalnum():
            raise ValueError(f"unexpected stats key {key!r}")
        self.key = key
        super().__init__(F(column))

    def as_sqlite(self, compiler, connection, **extra_context):
        column, params = compiler.compile(self.source_expressions[0])
        return f"CAST(JSON_EXTRACT({column}, %s) AS REAL)", [*params, f'$."{self.key}"']

    def as_postgresql(self, compiler, connection, **extra_context):
        column, params = compiler.compile(self.source_expressions[0])
        sql = f"CASE WHEN jsonb_typeof({column} -> %s) = 'number' THEN ({column} ->> %s)::double precision END"
        return sql, [*params, self.key, *params, self.key]

    def as_sql(self, compiler, connection, **extra_context):
        # settings.DATABASE_URL accepts only SQLite and PostgreSQL.
        raise NotSupportedError(f"stats totals are not implemented for {connection.vendor}")


def _stat(field: str):
    return JsonNumber("stats", field)


def backup_totals_aggregates(backups_queryset) -> dict[str, float]:
    """All totals of `backups_queryset` in one SQL query; keys as in `backup_contribution`.

    Why hand-written outer SQL: the ORM form (one filtered aggregate per bucket) evaluates the
    JSON extraction and a filter per bucket for every row (230 ms at 30,000 backups). Here the
    inner query is the ORM's (portable), its per-row values are materialized once in a CTE
    (SQLite >= 3.35, PostgreSQL >= 12), each row gets one bucket index, and the outer query
    groups by (status, bucket): at most 2 x 14 rows, made cumulative in Python.
    """
    inner = backups_queryset.filter(status__in=(BackupStatus.COMPLETED, BackupStatus.FAILED)).order_by().values(
        "status", duration=_stat("duration_seconds"), **{field: _stat(field) for field in BYTE_FIELDS}
    )
    inner_sql, inner_params = inner.query.sql_with_params()
    connection = connections[backups_queryset.db]
    quote = connection.ops.quote_name
    duration = quote("duration")
    finite_bounds = [bound for bound in DURATION_BUCKETS if not math.isinf(bound)]
    bucket_case = (
        f"CASE WHEN {duration} IS NULL THEN -1 "
        + " ".join(f"WHEN {duration} <= {float(bound)!r} THEN {index}" for index, bound in enumerate(finite_bounds))
        + f" ELSE {len(finite_bounds)} END"
    )
    byte_sums = ", ".join(f"SUM({quote(field)})" for field in BYTE_FIELDS)
    sql = (
        f"WITH backup_rows AS MATERIALIZED ({inner_sql}) "
        f"SELECT {quote('status')}, {bucket_case}, COUNT(*), SUM({duration}), {byte_sums} "
        f"FROM backup_rows GROUP BY 1, 2"
    )
    result = {"success": 0.0, "failure": 0.0, "duration_sum": 0.0, "duration_count": 0.0}
    result.update({field: 0.0 for field in BYTE_FIELDS})
    per_bucket = [0.0] * (len(finite_bounds) + 1)
    with connection.cursor() as cursor:
        cursor.execute(sql, inner_params)
        for status, bucket, count, duration_sum, *byte_values in cursor.fetchall():
            if status == BackupStatus.FAILED:
                result["failure"] += count
                continue
            result["success"] += count
            for field, value in zip(BYTE_FIELDS, byte_values):
                result[field] += float(value or 0)
            if bucket >= 0:
                result["duration_count"] += count
                result["duration_sum"] += float(duration_sum or 0)
                per_bucket[bucket] += count
    cumulative = 0.0
    for index in range(len(finite_bounds)):
        cumulative += per_bucket[index]
        result[f"le_{index}"] = cumulative
    return result


def _number(stats: Mapping, field: str) -> float | None:
    value = stats.get(field) if isinstance(stats, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def backup_contribution(status: str, stats: Mapping | None) -> dict[str, float]:
    """What one backup row adds to the totals (same keys as `backup_totals_aggregates`)."""
    stats = stats or {}
    if status == BackupStatus.FAILED:
        return {"failure": 1.0}
    if status != BackupStatus.COMPLETED:
        return {}
    contribution = {"success": 1.0}
    for field in BYTE_FIELDS:
        contribution[field] = _number(stats, field) or 0.0
    duration = _number(stats, "duration_seconds")
    if duration is not None:
        contribution["duration_sum"] = duration
        contribution["duration_count"] = 1.0
        for index, upper_bound in enumerate(DURATION_BUCKETS):
            if not math.isinf(upper_bound) and duration <= upper_bound:
                contribution[f"le_{index}"] = 1.0
    return contribution


def totals_to_counters(totals: Mapping[str, float]) -> list[tuple[str, dict[str, str], float]]:
    """Translate totals into (metric name, labels, value) rows, as stored in MetricCounter."""
    rows: list[tuple[str, dict[str, str], float]] = [
        (OPERATIONS, {"result": "success"}, totals.get("success", 0.0)),
        (OPERATIONS, {"result": "failure"}, totals.get("failure", 0.0)),
        (FAILURES, {}, totals.get("failure", 0.0)),
        (DURATION_SUM, {}, totals.get("duration_sum", 0.0)),
        (DURATION_COUNT, {}, totals.get("duration_count", 0.0)),
    ]
    for field in BYTE_FIELDS:
        rows.append((BYTES[field], {}, totals.get(field, 0.0)))
    for index, upper_bound in enumerate(DURATION_BUCKETS):
        if math.isinf(upper_bound):
            # The +Inf bucket is every timed backup by definition.
            value = totals.get("duration_count", 0.0)
        else:
            value = totals.get(f"le_{index}", 0.0)
        rows.append((DURATION_BUCKET, {"le": bucket_label(upper_bound)}, value))
    return rows
