"""The Grafana dashboard JSON loads in Grafana 10+: structure, data source variable, layout."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from monitoring.grafana import build_dashboard

GRAFANA = Path(build_dashboard.__file__).resolve().parent
DASHBOARD = GRAFANA / "dashboards" / "storage-platform.json"
PANEL_TYPES = {"row", "timeseries", "stat", "table", "gauge"}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def load() -> dict:
    return json.loads(DASHBOARD.read_text())


def data_panels(dashboard: dict) -> list[dict]:
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def test_committed_json_is_what_the_generator_builds():
    assert DASHBOARD.read_text() == build_dashboard.render(), "run python monitoring/grafana/build_dashboard.py"


def test_schema_version_and_panel_types_are_grafana_10():
    dashboard = load()
    assert dashboard["schemaVersion"] >= 38
    assert {panel["type"] for panel in dashboard["panels"]} <= PANEL_TYPES
    assert {"timeseries", "stat", "table", "gauge"} <= {panel["type"] for panel in dashboard["panels"]}
    assert dashboard["id"] is None  # Grafana assigns ids on import


def test_panel_ids_are_unique_and_every_panel_has_a_grid_position():
    panels = load()["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        grid = panel["gridPos"]
        assert set(grid) == {"h", "w", "x", "y"}, panel["title"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]


def test_panels_do_not_overlap():
    occupied = set()
    for panel in load()["panels"]:
        grid = panel["gridPos"]
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & occupied, panel["title"]
        occupied |= cells


def test_datasource_is_a_variable_used_by_every_panel_and_target():
    dashboard = load()
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in data_panels(dashboard):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["expr"].strip(), panel["title"]
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE


def test_no_hard_coded_datasource_uid_anywhere():
    text = DASHBOARD.read_text()
    uids = set(re.findall(r'"uid":\s*"([^"]*)"', text))
    assert uids <= {"${datasource}", "-- Grafana --", "storage-platform"}


def test_required_panels_are_present():
    titles = " | ".join(panel["title"].lower() for panel in load()["panels"])
    for needed in ("rpo status per volume", "last successful backup per volume", "backup rate", "failures",
                   "duration", "bytes", "ratio", "queue depth", "repository size", "worker", "backups completed",
                   "replication lag"):
        assert needed in titles, needed


def test_every_variable_used_in_queries_is_defined():
    dashboard = load()
    defined = {variable["name"] for variable in dashboard["templating"]["list"]}
    builtin = {"__rate_interval", "__interval", "__range"}
    for panel in data_panels(dashboard):
        for target in panel["targets"]:
            used = set(re.findall(r"\$\{?(\w+)", target["expr"]))
            assert used <= defined | builtin, (panel["title"], used - defined - builtin)


def test_provisioning_files_point_at_prometheus_and_the_dashboards():
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    [datasource] = datasources["datasources"]
    assert datasource["type"] == "prometheus" and datasource["url"].startswith("http")
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "storage-platform.yml").read_text())
    [provider] = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]
