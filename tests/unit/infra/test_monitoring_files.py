"""The Prometheus, Grafana and compose files agree with the metrics the code exports: every metric
an alert or a dashboard panel reads exists, and the scrape targets match the configured ports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import REGISTRY

import core.metrics  # noqa: F401 - registers the metrics
from tests.utils.platform import REPO_ROOT

INFRA = REPO_ROOT / "infra"
_METRIC = re.compile(r"\b((?:deepfakestream|process)_[a-z_]+)\b")


def _exported() -> set[str]:
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        # Labelled metrics have no samples until first used: name their series by type.
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}.get(family.type, ())
        names.update(family.name + suffix for suffix in suffixes)
    # Families the API builds at scrape time (jobs by state, queues, workers, drift).
    source = (REPO_ROOT / "api" / "services" / "monitoring.py").read_text()
    names.update(re.findall(r'"(deepfakestream_[a-z_]+)"', source))
    return names


def _used(expression: str) -> set[str]:
    return set(_METRIC.findall(expression))


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_alerts_read_only_exported_metrics() -> None:
    exported = _exported()
    rules = [
        rule for group in _yaml(INFRA / "prometheus" / "alerts.yml")["groups"] for rule in group["rules"]
    ]
    assert len(rules) >= 5
    for rule in rules:
        used = _used(rule["expr"])
        assert used, rule["alert"]
        assert used <= exported, (rule["alert"], used - exported)
        assert rule["labels"]["severity"] in ("info", "warning", "critical")


def test_dashboard_panels_read_only_exported_metrics() -> None:
    dashboard = json.loads((INFRA / "grafana" / "dashboards" / "deepfakestream.json").read_text())
    datasource = _yaml(INFRA / "grafana" / "provisioning" / "datasources" / "prometheus.yml")["datasources"][
        0
    ]
    exported = _exported()
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert dashboard["uid"] == "deepfakestream" and len(panels) >= 15
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    covered: set[str] = set()
    for panel in panels:
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
        for target in panel["targets"]:
            used = _used(target["expr"])
            assert used and used <= exported, (panel["title"], used - exported)
            covered |= used
    # What the issue asks to see: request time, jobs by state, queue wait and depth, job time,
    # stage time, frames and faces per second, no_face, webhooks, drift.
    for name in (
        "deepfakestream_http_request_duration_seconds_bucket",
        "deepfakestream_jobs",
        "deepfakestream_queue_wait_seconds_bucket",
        "deepfakestream_queue_depth",
        "deepfakestream_job_duration_seconds_bucket",
        "deepfakestream_stage_duration_seconds_bucket",
        "deepfakestream_frames_analyzed_total",
        "deepfakestream_faces_detected_total",
        "deepfakestream_no_face_results_total",
        "deepfakestream_webhook_deliveries_total",
        "deepfakestream_drift_psi",
        "deepfakestream_drift_flagged",
        "deepfakestream_gpu_memory_bytes",
    ):
        assert name in covered, name


def test_prometheus_scrapes_the_ports_compose_configures() -> None:
    config = _yaml(INFRA / "prometheus" / "prometheus.yml")
    targets = {
        job["job_name"]: [t for group in job["static_configs"] for t in group["targets"]]
        for job in config["scrape_configs"]
    }
    compose = _yaml(REPO_ROOT / "docker-compose.yml")
    worker_port = compose["services"]["worker"]["environment"]["WORKER_METRICS_PORT"]
    assert targets["deepfakestream-worker"] == [f"worker:{worker_port}"]
    assert targets["deepfakestream-api"] == ["api:8000"]
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]


def test_compose_monitoring_profile_mounts_existing_files() -> None:
    compose = _yaml(REPO_ROOT / "docker-compose.yml")
    for name in ("prometheus", "grafana"):
        service = compose["services"][name]
        assert service["profiles"] == ["monitoring"], name
        for volume in service["volumes"]:
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (REPO_ROOT / source).exists(), source
    # Several uvicorn processes behind one port: their metrics are merged from a shared directory.
    api = compose["services"]["api"]
    assert "--workers" in api["command"]
    directory = api["environment"]["PROMETHEUS_MULTIPROC_DIR"]
    assert any(mount.startswith(directory) for mount in api["tmpfs"])
