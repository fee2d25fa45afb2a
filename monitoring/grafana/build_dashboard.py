"""Generate dashboards/storage-platform.json (Grafana 10+) from the panel list below.

Run `python monitoring/grafana/build_dashboard.py` after editing; a test fails when the
committed JSON differs from what this script produces, and another runs every query against
a real Prometheus. Panels query through the `${datasource}` variable (type `datasource`), so
the dashboard carries no data source uid and loads in any Grafana with a Prometheus.

Queries aggregate `without (instance)` / `by (...)`: every API replica reports the same
catalog values (they come from the database), so summing over replicas would double them.
"""

from __future__ import annotations

import json
from pathlib import Path

OUTPUT = Path(__file__).resolve().parent / "dashboards" / "storage-platform.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
WIDTH = 24

# (title, type, width, height, unit, [(legend, expr, instant)], extra options)
PANELS: list[tuple] = [
    ("Overview", "row"),
    ("Volumes", "stat", 4, 4, "short", [("volumes", 'max without (instance) (storage_volume_count{job=~"$job"})', False)]),
    ("Volumes outside RPO", "stat", 4, 4, "short",
     [("violations", 'sum(max by (volume, volume_id) (backup_rpo_violation{job=~"$job"}))', False)],
     {"thresholds": [("green", None), ("red", 1)]}),
    ("Workers alive", "stat", 4, 4, "short", [("workers", 'max without (instance) (backup_workers_alive{job=~"$job"})', False)],
     {"thresholds": [("red", None), ("green", 1)]}),
    ("Backups completed", "stat", 4, 4, "short",
     [("completed", 'max without (instance) (backup_operations_total{job=~"$job", result="success"})', False)]),
    ("Backups failed", "stat", 4, 4, "short", [("failed", 'max without (instance) (backup_failures_total{job=~"$job"})', False)],
     {"thresholds": [("green", None), ("orange", 1)]}),
    ("Repository size", "stat", 4, 4, "bytes",
     [("size", 'max without (instance) (backup_repository_size_bytes{job=~"$job"})', False)]),
    ("RPO status per volume", "table", 12, 8, "short",
     [("", 'max by (volume, volume_id) (backup_rpo_violation{job=~"$job", volume=~"$volume"})', True)],
     {"value_text": {"0": "within RPO", "1": "VIOLATED"}}),
    ("Last successful backup per volume (age)", "table", 12, 8, "s",
     [("", 'time() - max by (volume, volume_id) (backup_last_success_timestamp{job=~"$job", volume=~"$volume"})', True)]),
    ("Backups", "row"),
    ("Backup rate by result", "timeseries", 8, 8, "ops",
     [("{{result}}", 'sum by (result) (max without (instance) (rate(backup_operations_total{job=~"$job"}[$__rate_interval])))', False)]),
    ("Backup failures", "timeseries", 8, 8, "short",
     [("failures", 'max without (instance) (increase(backup_failures_total{job=~"$job"}[$__rate_interval]))', False),
      ("volumes whose last backup failed", 'sum(max by (volume, volume_id) (backup_last_attempt_failed{job=~"$job", volume=~"$volume"}))', False)]),
    ("Backup duration", "timeseries", 8, 8, "s",
     [("p50", 'histogram_quantile(0.5, sum by (le) (max without (instance) (rate(backup_duration_seconds_bucket{job=~"$job"}[$__rate_interval]))))', False),
      ("p95", 'histogram_quantile(0.95, sum by (le) (max without (instance) (rate(backup_duration_seconds_bucket{job=~"$job"}[$__rate_interval]))))', False),
      ("mean (all time)", 'max without (instance) (backup_duration_seconds_sum{job=~"$job"}) / max without (instance) (backup_duration_seconds_count{job=~"$job"})', False)]),
    ("Bytes read, new and stored", "timeseries", 8, 8, "Bps",
     [("read", 'max without (instance) (rate(backup_bytes_read_total{job=~"$job"}[$__rate_interval]))', False),
      ("new", 'max without (instance) (rate(backup_bytes_new_total{job=~"$job"}[$__rate_interval]))', False),
      ("stored", 'max without (instance) (rate(backup_bytes_stored_total{job=~"$job"}[$__rate_interval]))', False)]),
    ("Dedup + compression ratio (read / stored)", "stat", 4, 8, "none",
     [("ratio", 'max without (instance) (backup_bytes_read_total{job=~"$job"}) / max without (instance) (backup_bytes_stored_total{job=~"$job"})', False)]),
    ("Bytes totals", "stat", 4, 8, "bytes",
     [("read", 'max without (instance) (backup_bytes_read_total{job=~"$job"})', False),
      ("stored", 'max without (instance) (backup_bytes_stored_total{job=~"$job"})', False)]),
    ("Repository size over time", "timeseries", 8, 8, "bytes",
     [("repository", 'max without (instance) (backup_repository_size_bytes{job=~"$job"})', False)]),
    ("Data not verified within the re-verify window", "timeseries", 8, 8, "bytes",
     [("{{state}}", 'max by (state) (backup_unverified_bytes{job=~"$job"})', False)]),
    ("Replication lag per target", "timeseries", 8, 8, "s",
     [("{{target}}", 'max by (target) (backup_replication_lag_seconds{job=~"$job"})', False)],
     {"thresholds": [("green", None), ("orange", 4 * 3600)]}),
    ("Jobs and workers", "row"),
    ("Queue depth", "timeseries", 8, 8, "short",
     [("{{kind}} {{state}}", 'max by (kind, state) (backup_jobs{job=~"$job"})', False)]),
    ("Oldest queued job", "timeseries", 8, 8, "s",
     [("{{kind}}", 'max by (kind) (backup_jobs_oldest_queued_age_seconds{job=~"$job"})', False)]),
    ("Restore, verify, prune, drill and replicate results (range)", "timeseries", 8, 8, "short",
     [("{{kind}} {{result}}", 'max by (kind, result) (increase(backup_job_finished_total{job=~"$job", kind=~"restore|verify|prune|drill|replicate"}[$__rate_interval]))', False)]),
    ("Last job result (1 ok, 0 failed)", "stat", 6, 6, "short",
     [("{{kind}}", 'max by (kind) (backup_job_last_result{job=~"$job"})', False)],
     {"thresholds": [("red", None), ("green", 1)]}),
    ("Last successful restore drill (age)", "stat", 6, 6, "s",
     [("any volume", 'time() - max without (instance, volume, volume_id) (backup_last_drill_timestamp{job=~"$job"})', False)],
     {"thresholds": [("green", None), ("orange", 8 * 86400), ("red", 14 * 86400)]}),
    ("Worker heartbeat age", "table", 6, 6, "s",
     [("", 'time() - max by (worker) (backup_worker_last_heartbeat_timestamp{job=~"$job"})', True)]),
    ("Platform readiness", "stat", 6, 6, "short",
     [("{{component}}", 'min by (component) (platform_ready{job=~"$job"})', False)],
     {"thresholds": [("red", None), ("green", 1)], "value_text": {"0": "DOWN", "1": "ready"}}),
    ("Volumes", "row"),
    ("Volume usage of quota", "gauge", 12, 8, "percentunit",
     [("{{volume}}", 'max by (volume) (volume_used_bytes{job=~"$job", volume=~"$volume"} / volume_quota_bytes{job=~"$job", volume=~"$volume"})', True)],
     {"thresholds": [("green", None), ("orange", 0.8), ("red", 0.9)], "max": 1}),
    ("API requests by status", "timeseries", 12, 8, "reqps",
     [("{{status}}", 'sum by (status) (rate(django_http_responses_total_by_status_total{job=~"$job"}[$__rate_interval]))', False)]),
]


def _thresholds(steps):
    return {"mode": "absolute", "steps": [{"color": color, "value": value} for color, value in steps]}


def _panel(panel_id: int, spec: tuple, x: int, y: int) -> dict:
    title, kind, width, height, unit, queries = spec[:6]
    extra = spec[6] if len(spec) > 6 else {}
    targets = []
    for index, (legend, expr, instant) in enumerate(queries):
        target = {"datasource": DATASOURCE, "refId": chr(ord("A") + index), "expr": expr, "legendFormat": legend or "__auto",
                  "range": not instant, "instant": instant}
        if kind == "table":
            target["format"] = "table"
        targets.append(target)
    defaults: dict = {"unit": unit, "thresholds": _thresholds(extra.get("thresholds", [("green", None)]))}
    if "max" in extra:
        defaults["min"], defaults["max"] = 0, extra["max"]
    if "value_text" in extra:
        defaults["mappings"] = [{"type": "value", "options": {value: {"text": text} for value, text in extra["value_text"].items()}}]
    panel = {
        "id": panel_id, "type": kind, "title": title, "datasource": DATASOURCE,
        "gridPos": {"h": height, "w": width, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "targets": targets,
    }
    if kind == "timeseries":
        panel["options"] = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                            "tooltip": {"mode": "multi", "sort": "none"}}
    elif kind in ("stat", "gauge"):
        panel["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
    elif kind == "table":
        panel["options"] = {"showHeader": True, "cellHeight": "sm"}
        panel["transformations"] = [{"id": "organize", "options": {"excludeByName": {"Time": True, "__name__": True}}}]
    return panel


def build() -> dict:
    panels, x, y, row_height, next_id = [], 0, 0, 0, 1
    for spec in PANELS:
        if spec[1] == "row":
            y += row_height
            x, row_height = 0, 0
            panels.append({"id": next_id, "type": "row", "title": spec[0], "collapsed": False,
                           "gridPos": {"h": 1, "w": WIDTH, "x": 0, "y": y}, "panels": []})
            next_id += 1
            y += 1
            continue
        width, height = spec[2], spec[3]
        if x + width > WIDTH:
            x, y, row_height = 0, y + row_height, 0
        panels.append(_panel(next_id, spec, x, y))
        next_id += 1
        x += width
        row_height = max(row_height, height)
    return {
        "__inputs": [],
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
        ],
        "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
                                  "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts",
                                  "type": "dashboard"}]},
        "description": "Storage & Backup Platform: RPO, backups, bytes, queue, repository, workers.",
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [],
        "panels": panels,
        "refresh": "30s",
        "schemaVersion": 39,
        "tags": ["storage-platform", "backups"],
        "templating": {"list": [
            {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
             "current": {}, "hide": 0, "includeAll": False, "multi": False, "options": [], "refresh": 1, "regex": "",
             "skipUrlSync": False},
            {"name": "job", "label": "Job", "type": "query", "datasource": DATASOURCE,
             "definition": "label_values(storage_volume_count, job)",
             "query": {"query": "label_values(storage_volume_count, job)", "refId": "PrometheusVariableQueryEditor-VariableQuery"},
             "current": {}, "hide": 0, "includeAll": True, "allValue": ".*", "multi": True, "options": [], "refresh": 2,
             "regex": "", "skipUrlSync": False, "sort": 1},
            {"name": "volume", "label": "Volume", "type": "query", "datasource": DATASOURCE,
             "definition": 'label_values(backup_rpo_violation{job=~"$job"}, volume)',
             "query": {"query": 'label_values(backup_rpo_violation{job=~"$job"}, volume)', "refId": "PrometheusVariableQueryEditor-VariableQuery"},
             "current": {}, "hide": 0, "includeAll": True, "allValue": ".*", "multi": True, "options": [], "refresh": 2,
             "regex": "", "skipUrlSync": False, "sort": 1},
        ]},
        "time": {"from": "now-24h", "to": "now"},
        "timepicker": {},
        "timezone": "utc",
        "title": "Storage & Backup Platform",
        "uid": "storage-platform",
        "version": 1,
        "weekStart": "",
    }


def render() -> str:
    dashboard = build()
    return json.dumps(dashboard, indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":
    OUTPUT.write_text(render())
    print(f"wrote {OUTPUT}")
