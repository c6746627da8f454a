"""Static checks of docker-compose.yml and the Dockerfile, which need no Docker.

The checks tie the files to the code: worker variables must be Settings fields, and
the addresses the workers get must be where the Kafka and Redis services listen.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from streams.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

KAFKA_SERVICE = "kafka"
REDIS_SERVICE = "redis"
CPU_WORKER = "worker"
GPU_WORKER = "worker-gpu"
WORKERS = (CPU_WORKER, GPU_WORKER)

LINE_CONTINUATION = "\\"

# Port that redis-server listens on unless its command line gives --port.
REDIS_DEFAULT_PORT = 6379


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    loaded: dict[str, dict[str, Any]] = compose["services"]
    return loaded


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    """Return a service's environment as a dict, from either compose syntax."""
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(entry.split("=", 1) for entry in environment)
    return {name: str(value) for name, value in environment.items()}


def container_ports(service: dict[str, Any]) -> list[int]:
    """Return the container side of each published port, from either compose syntax."""
    ports = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            ports.append(int(entry["target"]))
        else:
            ports.append(int(str(entry).rsplit(":", 1)[-1].split("/")[0]))
    return ports


def kafka_listeners(value: str) -> dict[str, tuple[str, int]]:
    """Map each listener name of a Kafka listeners setting to its (host, port)."""
    listeners = {}
    for entry in value.split(","):
        name, address = entry.strip().split("://", 1)
        host, port = address.rsplit(":", 1)
        listeners[name] = (host, int(port))
    return listeners


def redis_port(service: dict[str, Any]) -> int:
    command = service.get("command") or []
    if isinstance(command, str):
        command = shlex.split(command)
    if "--port" in command:
        return int(command[command.index("--port") + 1])
    return REDIS_DEFAULT_PORT


def dockerfile_instructions() -> list[tuple[str, str]]:
    """Return (INSTRUCTION, arguments) pairs with continuation lines joined."""
    instructions = []
    current = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue  # Docker drops comment lines, also inside a continued instruction.
        current = f"{current} {stripped.removesuffix(LINE_CONTINUATION)}".strip()
        if not stripped.endswith(LINE_CONTINUATION):
            keyword, _, arguments = current.partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
            current = ""
    return instructions


def exec_form(arguments: str) -> list[str]:
    """Return a CMD or ENTRYPOINT as an argument list, from exec or shell form."""
    if arguments.startswith("["):
        parsed: list[str] = json.loads(arguments)
        return parsed
    return shlex.split(arguments)


# Services


def test_compose_defines_services(services: dict[str, dict[str, Any]]) -> None:
    for name in (KAFKA_SERVICE, REDIS_SERVICE, *WORKERS):
        assert name in services, f"service {name!r} missing from {COMPOSE_FILE.name}"


def test_kafka_image_is_pinned_apache_kafka(services: dict[str, dict[str, Any]]) -> None:
    image = services[KAFKA_SERVICE]["image"]
    repository, _, tag = image.partition(":")
    assert repository == "apache/kafka", f"kafka image is {image!r}, expected apache/kafka"
    assert tag, f"kafka image {image!r} has no tag"
    assert tag[0].isdigit(), f"kafka image tag {tag!r} is not a pinned version"


def test_kafka_runs_single_node_kraft(services: dict[str, dict[str, Any]]) -> None:
    environment = environment_of(services[KAFKA_SERVICE])
    roles = set(environment.get("KAFKA_PROCESS_ROLES", "").split(","))
    assert roles == {"broker", "controller"}, f"KAFKA_PROCESS_ROLES is {roles}, expected broker and controller"
    node_id = environment.get("KAFKA_NODE_ID")
    voters = environment.get("KAFKA_CONTROLLER_QUORUM_VOTERS", "")
    assert voters.startswith(f"{node_id}@{KAFKA_SERVICE}:"), f"quorum voters {voters!r} are not this node"
    assert environment.get("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR") == "1", "a single node needs replication 1"


def test_redis_image_is_pinned_redis_8(services: dict[str, dict[str, Any]]) -> None:
    image = services[REDIS_SERVICE]["image"]
    repository, _, tag = image.partition(":")
    assert repository == "redis", f"redis image is {image!r}, expected redis"
    assert tag.startswith("8."), f"redis image tag {tag!r} is not a pinned Redis 8 version"


def test_kafka_and_redis_have_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    for name in (KAFKA_SERVICE, REDIS_SERVICE):
        healthcheck = services[name].get("healthcheck", {})
        assert healthcheck.get("test"), f"service {name!r} has no healthcheck test"


def test_redis_healthcheck_requires_query_engine(services: dict[str, dict[str, Any]]) -> None:
    check = " ".join(services[REDIS_SERVICE]["healthcheck"]["test"])
    assert "search" in check or "FT._LIST" in check, f"redis healthcheck {check!r} ignores the query engine"


# Workers


@pytest.mark.parametrize("worker", WORKERS)
def test_worker_variables_are_settings_fields(services: dict[str, dict[str, Any]], worker: str) -> None:
    environment = environment_of(services[worker])
    for name in environment:
        if not name.startswith(ENV_PREFIX):
            continue
        field = name.removeprefix(ENV_PREFIX).lower()
        assert field in Settings.model_fields, f"{worker} sets {name}, but Settings has no field {field!r}"


@pytest.mark.parametrize("worker", WORKERS)
def test_worker_broker_is_kafka_advertised_listener(services: dict[str, dict[str, Any]], worker: str) -> None:
    broker = environment_of(services[worker])["EMBEDSTREAM_KAFKA_BROKER"]
    host, port = broker.rsplit(":", 1)
    kafka_environment = environment_of(services[KAFKA_SERVICE])
    advertised = kafka_listeners(kafka_environment["KAFKA_ADVERTISED_LISTENERS"])
    listening = kafka_listeners(kafka_environment["KAFKA_LISTENERS"])
    names = [name for name, address in advertised.items() if address == (host, int(port))]

    assert host == KAFKA_SERVICE, f"{worker} broker host {host!r} is not the {KAFKA_SERVICE!r} service"
    assert names, f"{worker} broker {broker!r} is none of the advertised listeners {advertised}"
    assert listening.get(names[0], ("", 0))[1] == int(port), (
        f"listener {names[0]} is advertised on port {port} but listens on {listening.get(names[0])}"
    )


@pytest.mark.parametrize("worker", WORKERS)
def test_worker_redis_url_is_redis_service(services: dict[str, dict[str, Any]], worker: str) -> None:
    url = urlsplit(environment_of(services[worker])["EMBEDSTREAM_REDIS_URL"])
    expected_port = redis_port(services[REDIS_SERVICE])
    assert url.scheme == "redis", f"{worker} Redis URL scheme is {url.scheme!r}"
    assert url.hostname == REDIS_SERVICE, f"{worker} Redis host {url.hostname!r} is not the {REDIS_SERVICE!r} service"
    assert (url.port or REDIS_DEFAULT_PORT) == expected_port, (
        f"{worker} Redis port {url.port} differs from the port Redis listens on, {expected_port}"
    )


@pytest.mark.parametrize("worker", WORKERS)
def test_worker_publishes_its_web_port(services: dict[str, dict[str, Any]], worker: str) -> None:
    environment = environment_of(services[worker])
    web_port = int(environment["EMBEDSTREAM_WEB_PORT"])
    assert environment.get("EMBEDSTREAM_WEB_HOST") == "0.0.0.0", f"{worker} web server is unreachable from the host"
    assert container_ports(services[worker]) == [web_port], (
        f"{worker} publishes container ports {container_ports(services[worker])}, "
        f"but EMBEDSTREAM_WEB_PORT is {web_port}"
    )


@pytest.mark.parametrize("worker", WORKERS)
def test_worker_waits_for_healthy_dependencies(services: dict[str, dict[str, Any]], worker: str) -> None:
    depends_on = services[worker].get("depends_on", {})
    for dependency in (KAFKA_SERVICE, REDIS_SERVICE):
        condition = depends_on.get(dependency, {}).get("condition")
        assert condition == "service_healthy", f"{worker} depends on {dependency} with condition {condition!r}"


@pytest.mark.parametrize("worker", WORKERS)
def test_worker_mounts_volume_at_hf_home(services: dict[str, dict[str, Any]], worker: str) -> None:
    hf_home = environment_of(services[worker]).get("HF_HOME")
    targets = [
        volume["target"] if isinstance(volume, dict) else str(volume).split(":")[1]
        for volume in services[worker].get("volumes", [])
    ]
    assert hf_home, f"{worker} does not set HF_HOME"
    assert hf_home in targets, f"{worker} mounts no volume at HF_HOME={hf_home}; mounts {targets}"


@pytest.mark.parametrize("worker", WORKERS)
def test_worker_keeps_dockerfile_command(services: dict[str, dict[str, Any]], worker: str) -> None:
    assert "build" in services[worker], f"{worker} is not built from the Dockerfile"
    assert "command" not in services[worker], f"{worker} overrides the Dockerfile's CMD"
    assert "entrypoint" not in services[worker], f"{worker} overrides the Dockerfile's ENTRYPOINT"


def test_cpu_worker_runs_by_default(services: dict[str, dict[str, Any]]) -> None:
    assert not services[CPU_WORKER].get("profiles"), "the CPU worker must run without a profile"
    assert "deploy" not in services[CPU_WORKER], "the CPU worker must not reserve devices"


def test_gpu_worker_is_behind_gpu_profile(services: dict[str, dict[str, Any]]) -> None:
    assert services[GPU_WORKER].get("profiles") == ["gpu"], "the GPU worker must run only with --profile gpu"


def test_gpu_worker_reserves_nvidia_gpu(services: dict[str, dict[str, Any]]) -> None:
    devices = services[GPU_WORKER].get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
    nvidia = [device for device in devices if device.get("driver") == "nvidia"]
    assert nvidia, f"the GPU worker reserves no nvidia device: {devices}"
    assert "gpu" in nvidia[0].get("capabilities", []), f"the nvidia device lacks the gpu capability: {nvidia[0]}"


def test_gpu_worker_builds_with_cuda_torch(services: dict[str, dict[str, Any]]) -> None:
    args = services[GPU_WORKER]["build"].get("args", {})
    index = args.get("TORCH_INDEX_URL", "")
    declared = [arguments.split("=", 1)[0] for keyword, arguments in dockerfile_instructions() if keyword == "ARG"]
    assert "TORCH_INDEX_URL" in declared, "the Dockerfile declares no TORCH_INDEX_URL build argument"
    assert "/whl/cu" in index, f"the GPU worker's TORCH_INDEX_URL {index!r} is not a CUDA wheel index"


# Dockerfile


def test_dockerfile_runs_embedstream_worker() -> None:
    instructions = dockerfile_instructions()
    entrypoint = [exec_form(arguments) for keyword, arguments in instructions if keyword == "ENTRYPOINT"]
    command = [exec_form(arguments) for keyword, arguments in instructions if keyword == "CMD"]
    # The last ENTRYPOINT and CMD win, and Docker appends CMD to ENTRYPOINT.
    effective = []
    if entrypoint:
        effective += entrypoint[-1]
    if command:
        effective += command[-1]
    assert effective == ["embedstream", "worker"], f"the image runs {effective}, expected embedstream worker"


def test_dockerfile_builds_on_python_311_slim() -> None:
    bases = [arguments for keyword, arguments in dockerfile_instructions() if keyword == "FROM"]
    assert bases, "the Dockerfile has no FROM"
    assert bases[-1].split()[0] == "python:3.11-slim", f"the image builds on {bases[-1]!r}"


def test_dockerfile_runs_as_non_root_user() -> None:
    users = [arguments for keyword, arguments in dockerfile_instructions() if keyword == "USER"]
    assert users, "the Dockerfile never switches away from root"
    assert users[-1].split(":")[0] not in ("root", "0"), f"the image runs as {users[-1]!r}"


def test_dockerfile_installs_torch_from_index_then_package() -> None:
    runs = [arguments for keyword, arguments in dockerfile_instructions() if keyword == "RUN"]
    torch_step = next((index for index, run in enumerate(runs) if "TORCH_INDEX_URL" in run), None)
    package_step = next((index for index, run in enumerate(runs) if "pip install ." in run), None)
    assert torch_step is not None, "no RUN installs torch from TORCH_INDEX_URL"
    assert package_step is not None, "no RUN installs the package with pip install ."
    assert torch_step < package_step, "torch must be installed before the package, or pip picks another build"
