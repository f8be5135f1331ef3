"""The Kubernetes manifests (deploy/k8s/) validate offline against the API schemas that
`kubernetes-validate` bundles, strictly (an unknown or misspelt field fails), for the oldest
Kubernetes we support and the newest the package knows, and they fit together: every Service
selects pods, every pod reads the shared config, the GPU workers ask for a GPU on a GPU node, the
web tier scales and is probed, the ingress reaches it."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
NAMESPACE = "chorus"


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def all_resources() -> list[dict]:
    return [doc for path in manifest_files() for doc in documents(path)]


def find(kind: str, name: str) -> dict:
    for resource in all_resources():
        if resource["kind"] == kind and resource["metadata"]["name"] == name:
            return resource
    raise AssertionError(f"no {kind} {name} in deploy/k8s")


def pod_templates() -> list[tuple[str, dict]]:
    """(workload name, pod template) of every Deployment, StatefulSet and Job."""
    return [
        (r["metadata"]["name"], r["spec"]["template"])
        for r in all_resources()
        if r["kind"] in ("Deployment", "StatefulSet", "Job")
    ]


def chorus_containers() -> list[tuple[str, dict]]:
    """Containers running our image (not Redis' or PostgreSQL's)."""
    return [
        (name, container)
        for name, template in pod_templates()
        for container in template["spec"]["containers"]
        if "/chorus/" in container["image"]
    ]


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(K8S)))
@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_validates_strictly(path, version):
    docs = documents(path)
    assert docs, f"{path} holds no resource"
    for resource in docs:
        # Raises ValidationError, or SchemaNotFoundError for a kind the API does not have.
        kubernetes_validate.validate(resource, version, strict=True)


def test_the_validator_rejects_a_misspelt_field():
    """The check above is worth something: a typo in a pod spec fails it."""
    deployment = find("Deployment", "web")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 3}}

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[0], strict=True)


def test_every_resource_lives_in_the_chorus_namespace():
    for resource in all_resources():
        if resource["kind"] == "Namespace":
            assert resource["metadata"]["name"] == NAMESPACE
        else:
            assert resource["metadata"].get("namespace") == NAMESPACE, resource["metadata"]


def test_kustomization_lists_every_manifest_but_the_migration_job():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])

    assert kustomization["namespace"] == NAMESPACE
    assert all((K8S / name).is_file() for name in listed)
    top_level = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == top_level


def test_every_service_selects_the_pods_of_a_workload():
    labels = [template["metadata"]["labels"] for _, template in pod_templates()]
    for service in (r for r in all_resources() if r["kind"] == "Service"):
        selector = service["spec"]["selector"]
        assert any(selector.items() <= pod.items() for pod in labels), service["metadata"]


def test_workload_selectors_match_their_own_pods():
    for resource in all_resources():
        if resource["kind"] in ("Deployment", "StatefulSet"):
            selector = resource["spec"]["selector"]["matchLabels"]
            pod = resource["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= pod.items(), resource["metadata"]["name"]


def test_our_containers_read_the_config_and_secrets_and_ask_for_resources():
    assert chorus_containers(), "no container runs the Chorus image"
    for name, container in chorus_containers():
        sources = {next(iter(source.values()))["name"] for source in container.get("envFrom", [])}
        assert sources == {"chorus-config", "chorus-secrets"}, name
        assert {"cpu", "memory"} <= container["resources"]["requests"].keys(), name
        assert "memory" in container["resources"]["limits"], name


def test_long_running_containers_have_a_liveness_probe():
    for name, container in chorus_containers():
        if name != "migrate":
            assert "livenessProbe" in container, name


def test_gpu_workers_request_a_gpu_on_a_gpu_node():
    template = find("Deployment", "worker-gpu")["spec"]["template"]
    (worker,) = template["spec"]["containers"]

    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert template["spec"]["nodeSelector"], "GPU workers need a node selector"
    assert "chorus-gpu" in worker["image"]
    # One process per GPU, one task at a time, on queue gpu (webapp/celery.py, docs/rooms.md).
    assert {"--queues=gpu", "--concurrency=1", "--prefetch-multiplier=1"} <= set(worker["args"])


def test_the_cpu_workers_take_the_default_queue_without_a_gpu():
    (worker,) = find("Deployment", "worker-cpu")["spec"]["template"]["spec"]["containers"]

    assert "--queues=default" in worker["args"]
    assert "nvidia.com/gpu" not in worker["resources"].get("limits", {})


def test_the_web_tier_is_probed_on_healthz_and_readyz():
    (web,) = find("Deployment", "web")["spec"]["template"]["spec"]["containers"]

    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # Probes call the pod by its address: Django must accept it as a host.
    env = {item["name"]: item for item in web["env"]}
    assert "$(POD_IP)" in env["DJANGO_ALLOWED_HOSTS"]["value"]
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"


def test_the_web_tier_autoscales_on_cpu():
    hpa = find("HorizontalPodAutoscaler", "web")

    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "web",
    }
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    # Utilization is relative to the request: without one the HPA cannot compute it.
    (web,) = find("Deployment", "web")["spec"]["template"]["spec"]["containers"]
    assert "cpu" in web["resources"]["requests"]


def test_the_ingress_sends_everything_to_web_and_keeps_websockets_open():
    ingress = find("Ingress", "chorus")
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]

    assert path["path"] == "/"
    assert path["backend"]["service"]["name"] == "web"
    assert (
        int(ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-read-timeout"])
        >= 600
    )
    assert ingress["spec"]["tls"], "websockets and sessions need HTTPS"


def test_exactly_one_beat():
    beat = find("Deployment", "beat")

    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"


def test_processes_that_write_room_audio_share_the_media_volume():
    # GPU workers write chunks under MEDIA_ROOT; web serves them; the conductor records them.
    claim = find("PersistentVolumeClaim", "chorus-media")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for name in ("web", "conductor", "worker-gpu"):
        spec = find("Deployment", name)["spec"]["template"]["spec"]
        claims = {
            v["persistentVolumeClaim"]["claimName"]
            for v in spec["volumes"]
            if "persistentVolumeClaim" in v
        }
        mounts = {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
        assert "chorus-media" in claims and "/data/media" in mounts, name
    assert find("ConfigMap", "chorus-config")["data"]["CHORUS_MEDIA_ROOT"] == "/data/media"


def test_secrets_example_names_what_the_manifests_read():
    example = (K8S / "secrets.env.example").read_text()
    keys = {
        line.split("=", 1)[0]
        for line in example.splitlines()
        if "=" in line and not line.startswith("#")
    }

    assert {"DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "CHORUS_METRICS_TOKEN"} <= keys
    assert "POSTGRES_PASSWORD" in keys  # postgres.yaml reads it from chorus-secrets
