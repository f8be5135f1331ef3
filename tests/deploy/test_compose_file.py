"""The compose file (deploy/compose.yaml) parses and hangs together: every service has an image
or a build, every long-running one a health check, the GPU worker reserves a GPU, what a service
depends on exists, and the images it builds are targets the Dockerfile has. `docker compose
config` checks it too, where the compose plugin is installed (it is not on every machine)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
PROCESSES = {"web", "conductor", "worker-gpu", "worker-cpu", "beat", "flower"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def long_running(services: dict) -> dict:
    return {name: s for name, s in services.items() if s.get("restart", "no") != "no"}


def test_the_compose_file_has_every_process_and_its_servers(services):
    assert PROCESSES | {"postgres", "redis", "migrate"} <= services.keys()


def test_every_service_has_an_image_or_a_build(services):
    for name, service in services.items():
        assert service.get("image") or service.get("build"), name


def test_every_long_running_service_has_a_health_check(services):
    running = long_running(services)
    assert running.keys() >= PROCESSES
    for name, service in running.items():
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), name


def test_the_gpu_worker_reserves_a_gpu(services):
    worker = services["worker-gpu"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]

    assert any("gpu" in d["capabilities"] and d.get("driver") == "nvidia" for d in devices)
    assert worker["build"]["args"]["TORCH_VARIANT"] == "cuda"
    assert "--queues=gpu" in worker["command"] and "--concurrency=1" in worker["command"]


def test_queue_gpu_is_served_with_or_without_a_gpu(services):
    on_cpu = services["worker-gpu-on-cpu"]

    assert services["worker-gpu"]["profiles"] == ["gpu"]
    assert on_cpu["profiles"] == ["cpu-only"]
    assert "--queues=gpu" in on_cpu["command"]
    assert "deploy" not in on_cpu  # no GPU reservation


def test_dependencies_name_services_that_exist(services):
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert dependency != name


def test_the_app_waits_for_its_servers_and_migrations(services):
    for name in ("web", "conductor", "worker-cpu", "beat"):
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
        assert depends["migrate"]["condition"] == "service_completed_successfully", name


def test_named_volumes_are_declared(compose, services):
    declared = set(compose.get("volumes", {}))
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} mounts undeclared volume {source}"


def test_builds_name_the_dockerfile_and_its_variants(services):
    dockerfile = (DEPLOY / "docker" / "Dockerfile").read_text()
    stages = set(re.findall(r"^FROM \S+ AS (\S+)$", dockerfile, flags=re.MULTILINE))
    for name, service in services.items():
        build = service.get("build")
        if not build:
            continue
        assert (DEPLOY / build["context"] / build["dockerfile"]).is_file(), name
        assert f"torch-{build['args']['TORCH_VARIANT']}" in stages, name


def test_secrets_are_required_not_defaulted():
    text = COMPOSE.read_text()
    for secret in ("DJANGO_SECRET_KEY", "POSTGRES_PASSWORD", "FLOWER_BASIC_AUTH"):
        assert re.search(rf"\${{{secret}:\?", text), (
            f"{secret} must be required (${{{secret}:?...}})"
        )


def test_the_env_example_names_every_required_variable():
    required = set(re.findall(r"\$\{(\w+):\?", COMPOSE.read_text()))
    example = (DEPLOY / ".env.example").read_text()
    named = {line.split("=", 1)[0] for line in example.splitlines() if "=" in line}

    assert required <= named


def docker_compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(
    not docker_compose_available(), reason="the docker compose plugin is not installed"
)
def test_docker_compose_accepts_the_file():
    env = {
        **os.environ,
        "DJANGO_SECRET_KEY": "x" * 50,
        "POSTGRES_PASSWORD": "secret",
        "FLOWER_BASIC_AUTH": "admin:secret",
    }
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "--profile", "gpu", "config", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )

    assert result.returncode == 0, result.stderr
