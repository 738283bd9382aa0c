"""deploy/k8s rendered offline (`kubectl kustomize`, each overlay) and every object
validated: core kinds against the Kubernetes schemas kubernetes-validate ships, KEDA's
and prometheus-operator's against their CRDs' own schemas (vendored, deploy/schemas);
then what a reviewer of the manifests checks (docs/decisions/0035)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from aiaas import queues

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SCHEMAS = ROOT / "deploy" / "schemas"
OVERLAYS = ("dev", "prod")
# The oldest Kubernetes the manifests are written for (autoscaling/v2, policy/v1 and
# Pod Security labels are all there), and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.27.0", "1.37.0")
CRD_FILES = {
    ("keda.sh", "ScaledObject"): "keda.sh_scaledobjects.yaml",
    ("keda.sh", "TriggerAuthentication"): "keda.sh_triggerauthentications.yaml",
    ("monitoring.coreos.com", "ServiceMonitor"): "monitoring.coreos.com_servicemonitors.yaml",
}
APP_COMPONENTS = {"web", "gateway", "beat", *(f"worker-{group}" for group in queues.worker_groups({}))}
Manifest = dict[str, Any]


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("kubectl is not installed (apt-get install kubernetes-client): deploy/k8s not rendered")
    return path


def render(overlay: str) -> list[Manifest]:
    result = subprocess.run(  # noqa: S603 - kubectl on our own directory
        [kubectl(), "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


@pytest.fixture(scope="module", params=OVERLAYS)
def manifests(request: pytest.FixtureRequest) -> list[Manifest]:
    return render(request.param)


def crd_schema(group: str, kind: str, version: str) -> dict[str, Any]:
    crd = yaml.safe_load((SCHEMAS / CRD_FILES[(group, kind)]).read_text())
    (served,) = [entry for entry in crd["spec"]["versions"] if entry["name"] == version]
    return dict(served["schema"]["openAPIV3Schema"])


def unknown_fields(value: Any, schema: dict[str, Any], path: str = "") -> Iterator[str]:
    """Fields the schema does not name: the API server would drop them without a word."""
    if isinstance(value, dict) and "properties" in schema:
        for key, item in value.items():
            if key in schema["properties"]:
                yield from unknown_fields(item, schema["properties"][key], f"{path}.{key}")
            elif (
                not schema.get("x-kubernetes-preserve-unknown-fields")
                and "additionalProperties" not in schema
            ):
                yield f"{path}.{key}"
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from unknown_fields(item, schema["items"], f"{path}[{index}]")


def validation_errors(manifest: Manifest) -> list[str]:
    group, _, version = manifest["apiVersion"].rpartition("/")
    name = f"{manifest['kind']}/{manifest['metadata']['name']}"
    if (group, manifest["kind"]) in CRD_FILES:
        schema = crd_schema(group, manifest["kind"], version)
        errors = [error.message for error in jsonschema.Draft7Validator(schema).iter_errors(manifest)]
        return [f"{name}: {error}" for error in [*errors, *unknown_fields(manifest, schema)]]
    found = []
    for kubernetes in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(manifest, kubernetes, strict=True)
        except kubernetes_validate.ValidationError as error:
            found.append(f"{name} ({kubernetes}): {error.message} at {list(error.path)}")
    return found


def of_kind(manifests: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {manifest["metadata"]["name"]: manifest for manifest in manifests if manifest["kind"] == kind}


def pod_specs(manifests: list[Manifest]) -> dict[str, Manifest]:
    return {
        f"{manifest['kind']}/{name}": manifest["spec"]["template"]["spec"]
        for manifest in manifests
        if manifest["kind"] in {"Deployment", "StatefulSet", "Job"}
        for name in [manifest["metadata"]["name"]]
    }


def test_every_object_of_every_overlay_is_valid(manifests: list[Manifest]) -> None:
    errors = [error for manifest in manifests for error in validation_errors(manifest)]

    assert errors == []
    assert {"ScaledObject", "ServiceMonitor", "Deployment", "NetworkPolicy"} <= {m["kind"] for m in manifests}


def test_the_validation_fails_a_wrong_object(manifests: list[Manifest]) -> None:
    deployment = dict(of_kind(manifests, "Deployment")["web"], spec={"replicas": "two"})
    scaled = of_kind(manifests, "ScaledObject")["worker-agents"]
    misspelt = dict(scaled, spec={**scaled["spec"], "maxReplicas": 3})

    assert validation_errors(deployment) != []
    assert validation_errors(misspelt) == ["ScaledObject/worker-agents: .spec.maxReplicas"]


def test_every_container_has_probes_limits_and_a_restricted_security_context(
    manifests: list[Manifest],
) -> None:
    for name, spec in pod_specs(manifests).items():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            where = f"{name} {container['name']}"
            assert set(container["resources"]["requests"]) == {"cpu", "memory"}, where
            assert set(container["resources"]["limits"]) == {"cpu", "memory"}, where
            assert container["securityContext"] == {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "runAsNonRoot": True,
                "capabilities": {"drop": ["ALL"]},
            }, where
        if not name.startswith("Job/"):
            for container in spec["containers"]:
                assert {"startupProbe", "livenessProbe"} <= set(container), name
                if any(port["name"] == "http" for port in container.get("ports", [])):
                    assert "readinessProbe" in container, name


def test_web_and_gateway_are_probed_on_livez_and_readyz(manifests: list[Manifest]) -> None:
    for name in ("web", "gateway"):
        (container,) = of_kind(manifests, "Deployment")[name]["spec"]["template"]["spec"]["containers"]

        assert container["startupProbe"]["httpGet"]["path"] == "/livez"
        assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_the_namespace_enforces_restricted_pod_security(manifests: list[Manifest]) -> None:
    labels = of_kind(manifests, "Namespace")["aiaas"]["metadata"]["labels"]

    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    namespaced = [manifest for manifest in manifests if manifest["kind"] != "Namespace"]
    assert {manifest["metadata"].get("namespace") for manifest in namespaced} == {"aiaas"}


def test_traffic_is_denied_unless_a_policy_allows_it(manifests: list[Manifest]) -> None:
    policies = of_kind(manifests, "NetworkPolicy")
    providers = policies["allow-app-to-providers"]["spec"]["egress"]

    assert policies["default-deny"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert [port["port"] for rule in providers for port in rule["ports"]] == [443, 465, 587]  # HTTPS, SMTP
    assert "169.254.0.0/16" in providers[0]["to"][0]["ipBlock"]["except"]  # the cloud's metadata service
    ingress_from = policies["allow-ingress-controller"]["spec"]["ingress"]
    assert ingress_from[0]["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "ingress-nginx"
    }


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels, and matchExpressions with In) selects `labels`."""
    expressions = selector.get("matchExpressions", [])
    assert {expression["operator"] for expression in expressions} <= {"In"}
    return selector.get("matchLabels", {}).items() <= labels.items() and all(
        labels.get(expression["key"]) in expression["values"] for expression in expressions
    )


def test_every_pod_may_resolve_names_with_the_clusters_dns(manifests: list[Manifest]) -> None:
    """kube-dns carries the cluster's labels, not ours: commonLabels adds ours to every
    policy peer's matchLabels, which would select no DNS pod and leave every name unresolved."""
    (rule,) = of_kind(manifests, "NetworkPolicy")["allow-dns"]["spec"]["egress"]
    (peer,) = rule["to"]

    assert selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": "kube-system"})
    assert selects(peer["podSelector"], {"k8s-app": "kube-dns"})
    assert not selects(peer["podSelector"], {"k8s-app": "metrics-server"})


def test_beat_is_one_replica_that_nothing_scales(manifests: list[Manifest]) -> None:
    beat = of_kind(manifests, "Deployment")["beat"]
    targets = {
        m["spec"]["scaleTargetRef"]["name"] for m in manifests if "scaleTargetRef" in m.get("spec", {})
    }

    assert beat["spec"]["replicas"] == 1
    assert "beat" not in targets
    assert beat["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0  # the new one stands by first


def test_each_worker_group_is_scaled_by_keda_on_its_own_queues(manifests: list[Manifest]) -> None:
    scaled = of_kind(manifests, "ScaledObject")

    for group, names in queues.worker_groups({}).items():
        spec = scaled[f"worker-{group}"]["spec"]
        assert spec["scaleTargetRef"]["name"] == f"worker-{group}"
        assert [trigger["metadata"]["listName"] for trigger in spec["triggers"]] == list(names)
        assert {trigger["type"] for trigger in spec["triggers"]} == {"redis"}
    assert set(scaled) == {f"worker-{group}" for group in queues.worker_groups({})}


def test_web_and_gateway_scale_on_cpu_and_requests_per_second(manifests: list[Manifest]) -> None:
    autoscalers = of_kind(manifests, "HorizontalPodAutoscaler")

    assert set(autoscalers) == {"web", "gateway"}
    for name, autoscaler in autoscalers.items():
        metrics = autoscaler["spec"]["metrics"]
        assert autoscaler["spec"]["scaleTargetRef"]["name"] == name
        assert [metric["type"] for metric in metrics] == ["Resource", "Pods"]
        assert metrics[1]["pods"]["metric"]["name"] == "aiaas_http_requests_per_second"
    assert set(of_kind(manifests, "PodDisruptionBudget")) >= {"web", "gateway"}


def test_migrations_run_for_every_tenant_in_parallel_before_the_app_starts(manifests: list[Manifest]) -> None:
    job = of_kind(manifests, "Job")["migrate"]
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]

    assert args[:5] == ["python", "manage.py", "bootstrap", "--executor", "multiprocessing"]
    for name in APP_COMPONENTS:
        spec = of_kind(manifests, "Deployment")[name]["spec"]["template"]["spec"]
        assert [container["name"] for container in spec["initContainers"]] == ["wait-for-migrations"], name


def test_the_ingress_serves_every_tenant_host_with_websocket_timeouts(manifests: list[Manifest]) -> None:
    ingress = of_kind(manifests, "Ingress")["aiaas"]
    hosts = [rule["host"] for rule in ingress["spec"]["rules"]]
    annotations = ingress["metadata"]["annotations"]

    assert hosts[1] == "*." + hosts[0]
    for rule in ingress["spec"]["rules"]:
        backends = {path["path"]: path["backend"]["service"]["name"] for path in rule["http"]["paths"]}
        assert backends == {"/v1": "gateway", "/": "web"}
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 3600


def test_the_metrics_are_scraped_from_the_internal_port(manifests: list[Manifest]) -> None:
    (endpoint,) = of_kind(manifests, "ServiceMonitor")["aiaas"]["spec"]["endpoints"]
    services = of_kind(manifests, "Service")

    assert endpoint["port"] == "metrics"
    metrics_port = {"name": "metrics", "port": 9100, "targetPort": "metrics", "protocol": "TCP"}
    for name in ("web", "gateway", "worker-metrics"):
        assert metrics_port in services[name]["spec"]["ports"]
    for group in queues.worker_groups({}):
        labels = of_kind(manifests, "Deployment")[f"worker-{group}"]["spec"]["template"]["metadata"]["labels"]
        assert services["worker-metrics"]["spec"]["selector"].items() <= labels.items()


def test_production_pins_its_image_and_brings_its_own_secrets() -> None:
    manifests = render("prod")
    images = {
        container["image"]
        for spec in pod_specs(manifests).values()
        for container in [*spec.get("initContainers", []), *spec["containers"]]
    }

    assert images == {"registry.example.com/aiaas:1.0.0"}
    assert of_kind(manifests, "Secret") == {}
    assert of_kind(manifests, "NetworkPolicy")["allow-app-to-data"]["spec"]["egress"][0]["to"] != []
