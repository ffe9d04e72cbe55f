"""The Kubernetes manifests render with kustomize and pass the Kubernetes and KEDA schemas."""

from __future__ import annotations

import bisect
import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kombu.transport.redis import PRIORITY_STEPS
from kombu.transport.redis import Channel as RedisChannel

from core.config import Settings
from core.queue import INTERACTIVE_PRIORITY, Queue

K8S = Path(__file__).resolve().parents[3] / "infra" / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())
KUBERNETES_VERSION = "1.33.0"
KEDA_SCHEMAS = json.loads((K8S / "schemas" / "keda.sh-v1alpha1.json").read_text())
# Variables read by something other than core.config.Settings.
NON_SETTINGS_ENV = {"REMAP_SIGTERM", "REDIS_PASSWORD", "PROMETHEUS_MULTIPROC_DIR", "FORWARDED_ALLOW_IPS"}


def render(overlay: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with its built-in kustomize) is needed to render infra/k8s"
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def validate(doc: dict[str, Any]) -> None:
    if doc["apiVersion"].startswith("keda.sh/"):
        schema = dict(KEDA_SCHEMAS[doc["kind"]], definitions=KEDA_SCHEMAS["definitions"])
        jsonschema.validate(doc, schema)
    else:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(request.param)


def test_overlays_exist() -> None:
    assert {"dev", "production"} <= set(OVERLAYS)


def test_every_manifest_passes_its_schema(rendered: list[dict[str, Any]]) -> None:
    kinds = {d["kind"] for d in rendered}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Job",
            "ConfigMap", "Secret", "ScaledObject", "TriggerAuthentication"} <= kinds
    for doc in rendered:
        validate(doc)


def test_schema_check_rejects_a_misspelled_field(rendered: list[dict[str, Any]]) -> None:
    deployment = copy.deepcopy(next(iter(by_kind(rendered, "Deployment").values())))
    deployment["spec"]["replicaz"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)
    scaled = copy.deepcopy(next(iter(by_kind(rendered, "ScaledObject").values())))
    scaled["spec"]["minReplicas"] = 0
    with pytest.raises(jsonschema.ValidationError):
        validate(scaled)


def test_gpu_workers_one_process_per_gpu_scaled_by_keda_from_zero(rendered: list[dict[str, Any]]) -> None:
    deployments = by_kind(rendered, "Deployment")
    gpu = deployments["deepfakestream-worker-gpu"]
    worker = container(gpu)
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert option(worker["command"], "--concurrency") == "1"
    assert Queue.ANALYZE.value in option(worker["command"], "--queues").split(",")

    scaled = by_kind(rendered, "ScaledObject")["deepfakestream-worker-gpu"]["spec"]
    assert scaled["scaleTargetRef"]["name"] == "deepfakestream-worker-gpu"
    assert scaled["minReplicaCount"] == 0
    lists = {t["metadata"]["listName"] for t in scaled["triggers"] if t["type"] == "redis"}
    # kombu's Redis transport keeps one list per priority step: interactive and batch work.
    expected = set()
    for queue in option(worker["command"], "--queues").split(","):
        for priority in (INTERACTIVE_PRIORITY, Settings.model_fields["batch_priority"].default):
            step = PRIORITY_STEPS[bisect.bisect(PRIORITY_STEPS, priority) - 1]
            expected.add(f"{queue}{RedisChannel.sep}{step}" if step else queue)
    assert lists == expected


def test_every_worker_pod_runs_one_process_with_its_metrics_port(rendered: list[dict[str, Any]]) -> None:
    # Pool process i serves WORKER_METRICS_PORT + i: one process per pod keeps one port to scrape.
    for deployment in by_kind(rendered, "Deployment").values():
        spec = container(deployment)
        if "worker" not in spec["command"]:
            continue
        assert option(spec["command"], "--concurrency") == "1", deployment["metadata"]["name"]
        env = {e["name"]: e.get("value") for e in spec.get("env", [])}
        ports = {p["containerPort"] for p in spec["ports"]}
        assert int(env["WORKER_METRICS_PORT"]) in ports, deployment["metadata"]["name"]


def test_api_processes_share_a_metrics_directory(rendered: list[dict[str, Any]]) -> None:
    api = container(by_kind(rendered, "Deployment")["deepfakestream-api"])
    directory = {e["name"]: e.get("value") for e in api["env"]}["PROMETHEUS_MULTIPROC_DIR"]
    assert directory in {m["mountPath"] for m in api["volumeMounts"]}


def test_api_trusts_forwarded_addresses_only_from_inside_the_cluster(rendered: list[dict[str, Any]]) -> None:
    import ipaddress

    api = container(by_kind(rendered, "Deployment")["deepfakestream-api"])
    trusted = {e["name"]: e.get("value") for e in api["env"]}["FORWARDED_ALLOW_IPS"].split(",")
    # "*" would make uvicorn take the left-most X-Forwarded-For entry, which the client writes.
    assert "*" not in trusted
    assert all(ipaddress.ip_network(entry).is_private for entry in trusted), trusted


def test_cpu_workers_take_every_other_queue(rendered: list[dict[str, Any]]) -> None:
    deployments = by_kind(rendered, "Deployment")
    consumed = set()
    for deployment in deployments.values():
        command = container(deployment)["command"]
        if "worker" in command:
            consumed |= set(option(command, "--queues").split(","))
    assert consumed >= {q.value for q in Queue}


def test_graceful_worker_shutdown_fits_the_grace_period(rendered: list[dict[str, Any]]) -> None:
    config = by_kind(rendered, "ConfigMap")["deepfakestream-config"]["data"]
    soft = int(config["WORKER_SOFT_SHUTDOWN_TIMEOUT_S"])
    for name in ("deepfakestream-worker-gpu", "deepfakestream-worker-cpu"):
        deployment = by_kind(rendered, "Deployment")[name]
        env = {e["name"]: e.get("value") for e in container(deployment).get("env", [])}
        assert env.get("REMAP_SIGTERM") == "SIGQUIT", name
        assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > soft + 5, name


def test_api_probes_hpa_and_disruption_budgets(rendered: list[dict[str, Any]]) -> None:
    api = by_kind(rendered, "Deployment")["deepfakestream-api"]
    probes = container(api)
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
    hpa = by_kind(rendered, "HorizontalPodAutoscaler")["deepfakestream-api"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "deepfakestream-api"
    assert 1 <= hpa["minReplicas"] < hpa["maxReplicas"]
    budgets = [
        pdb["spec"]["selector"]["matchLabels"] for pdb in by_kind(rendered, "PodDisruptionBudget").values()
    ]
    for name in ("deepfakestream-api", "deepfakestream-worker-gpu", "deepfakestream-worker-cpu"):
        assert {"app.kubernetes.io/name": name} in budgets


def test_single_scheduler_and_migration_job(rendered: list[dict[str, Any]]) -> None:
    scheduler = by_kind(rendered, "Deployment")["deepfakestream-scheduler"]
    assert scheduler["spec"]["replicas"] == 1
    assert scheduler["spec"]["strategy"]["type"] == "Recreate"
    beats = [d for d in by_kind(rendered, "Deployment").values() if "--beat" in container(d)["command"]]
    assert beats == [scheduler]
    job = by_kind(rendered, "Job")["deepfakestream-migrate"]
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["deepfakestream", "migrate"]


def test_environment_names_are_real_settings(rendered: list[dict[str, Any]]) -> None:
    known = {name.upper() for name in Settings.model_fields} | NON_SETTINGS_ENV
    names: set[str] = set(by_kind(rendered, "ConfigMap")["deepfakestream-config"]["data"])
    names |= set(by_kind(rendered, "Secret")["deepfakestream-secrets"]["stringData"])
    for deployment in by_kind(rendered, "Deployment").values():
        names |= {e["name"] for e in container(deployment).get("env", [])}
    assert names - known == set()
