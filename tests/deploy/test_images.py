"""The container image's recipe (deploy/docker/): the stages compose and the manifests rely on,
the entrypoint that resets Prometheus' multiprocess directory, and the health check script."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "deploy" / "docker"
HEALTHCHECK = DOCKER / "healthcheck.py"


def dockerfile() -> str:
    return (DOCKER / "Dockerfile").read_text()


def test_one_image_has_a_cpu_and_a_cuda_variant_of_torch():
    stages = set(re.findall(r"^FROM \S+ AS (\S+)$", dockerfile(), flags=re.MULTILINE))

    assert {"frontend", "base", "torch-cpu", "torch-cuda", "app"} <= stages
    assert "FROM torch-${TORCH_VARIANT} AS app" in dockerfile()
    assert re.search(r"^ARG TORCH_VARIANT=cpu$", dockerfile(), flags=re.MULTILINE)


def test_the_image_pins_the_torch_of_pyproject():
    pin = re.search(r'"(torch==[^"]+)"', (ROOT / "pyproject.toml").read_text()).group(1)

    assert dockerfile().count(pin) == 2  # the CPU and the CUDA build


def test_the_image_runs_as_a_user_through_the_entrypoint():
    assert re.search(r"^USER chorus$", dockerfile(), flags=re.MULTILINE)
    assert 'ENTRYPOINT ["sh", "/app/deploy/docker/entrypoint.sh"]' in dockerfile()


def test_kubernetes_runs_the_images_with_args_so_the_entrypoint_stays():
    for path in (ROOT / "deploy" / "k8s").rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            template = (doc or {}).get("spec", {}).get("template")
            for container in template["spec"]["containers"] if template else []:
                if "/chorus/" in container["image"]:
                    assert "command" not in container, f"{path.name}: use args, not command"


def test_the_entrypoint_empties_the_metrics_directory_and_runs_the_command(tmp_path):
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    (metrics_dir / "counter_123.db").write_bytes(b"left by an earlier run")

    result = subprocess.run(
        [
            "sh",
            str(DOCKER / "entrypoint.sh"),
            "sh",
            "-c",
            'ls -A "$PROMETHEUS_MULTIPROC_DIR"; echo ran',
        ],
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
        capture_output=True,
        text=True,
        check=True,
    )

    assert result.stdout == "ran\n"
    assert metrics_dir.is_dir()


def healthcheck(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_health_check_fails_when_nothing_answers():
    result = healthcheck("http", "http://127.0.0.1:1/healthz")  # nothing listens on port 1

    assert result.returncode == 1
    assert "127.0.0.1:1" in result.stderr


def test_the_health_check_only_calls_local_urls():
    assert healthcheck("http", "http://example.com/").returncode == 1


def test_the_broker_check_fails_when_the_broker_is_down():
    result = healthcheck("broker", env={"CELERY_BROKER_URL": "redis://127.0.0.1:1/0"})

    assert result.returncode == 1
    assert result.stderr.startswith("broker:")


def test_the_health_check_explains_its_usage():
    assert healthcheck("nonsense").returncode == 2
