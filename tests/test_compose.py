"""Static checks of docker-compose.yml, the Dockerfile and the monitoring files, which need no Docker.

The checks tie the files to the code: worker variables must be Settings fields, the
addresses the workers get must be where the Kafka and Redis services listen,
Prometheus must scrape the workers' web ports, and the Grafana dashboard may query
only metrics and labels that WorkerMetrics declares.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from streams.metrics import WorkerMetrics
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


# Prometheus and Grafana

PROMETHEUS_SERVICE = "prometheus"
GRAFANA_SERVICE = "grafana"

# Port that Prometheus listens on unless --web.listen-address says otherwise.
PROMETHEUS_DEFAULT_PORT = 9090

# Labels that Prometheus attaches to every scraped series, besides the worker's own.
PROMETHEUS_TARGET_LABELS = frozenset({"instance", "job"})

METRIC_NAME = re.compile(r"\bembedstream_[A-Za-z0-9_]+")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
SELECTOR = re.compile(r"\{([^{}]*)\}")
LEGEND_LABEL = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")

# Sample names of each metric type, after the name that prometheus_client's collect() gives.
TYPE_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def bind_mounts(service: dict[str, Any]) -> list[tuple[Path, str]]:
    """Return (host path, container path) of each bind mount; named volumes are left out."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                mounts.append((ROOT / volume["source"], volume["target"]))
            continue
        source, target = str(volume).split(":")[:2]
        if source.startswith((".", "/")):
            mounts.append((ROOT / source, target))
    return mounts


def host_path(service: dict[str, Any], container_path: str) -> Path | None:
    """Return the host file or folder that a bind mount puts at ``container_path``."""
    for source, target in bind_mounts(service):
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            return source / container_path[len(target):].lstrip("/")
    return None


def command_option(service: dict[str, Any], option: str) -> str | None:
    """Return the value of ``--option=value`` in a service's command."""
    command = service.get("command") or []
    if isinstance(command, str):
        command = shlex.split(command)
    for argument in command:
        name, separator, value = str(argument).partition("=")
        if separator and name == option:
            return value
    return None


@pytest.fixture(scope="module")
def prometheus_config(services: dict[str, dict[str, Any]]) -> dict[str, Any]:
    prometheus = services[PROMETHEUS_SERVICE]
    config_path = command_option(prometheus, "--config.file")
    assert config_path, "the prometheus service sets no --config.file"
    source = host_path(prometheus, config_path)
    assert source is not None, f"no bind mount provides {config_path} to the prometheus service"
    assert source.is_file(), f"{source} (mounted at {config_path}) is missing"
    config: dict[str, Any] = yaml.safe_load(source.read_text())
    return config


def scrape_targets(config: dict[str, Any]) -> list[tuple[str, int, str, dict[str, str]]]:
    """Return (host, port, metrics path, target labels) of each static scrape target."""
    targets = []
    for job in config.get("scrape_configs", []):
        path = job.get("metrics_path", "/metrics")
        for group in job.get("static_configs", []):
            for target in group.get("targets", []):
                host, port = target.rsplit(":", 1)
                targets.append((host, int(port), path, group.get("labels", {})))
    return targets


def grafana_provisioning(services: dict[str, dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """Return the parsed provisioning files of ``kind`` (datasources or dashboards)."""
    folder = host_path(services[GRAFANA_SERVICE], f"/etc/grafana/provisioning/{kind}")
    assert folder is not None, f"no bind mount provides /etc/grafana/provisioning/{kind} to Grafana"
    files = sorted(folder.glob("*.y*ml"))
    assert files, f"{folder} has no provisioning file"
    return [yaml.safe_load(path.read_text()) for path in files]


@pytest.fixture(scope="module")
def dashboards(services: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    loaded = []
    for provisioning in grafana_provisioning(services, "dashboards"):
        for provider in provisioning.get("providers", []):
            folder = host_path(services[GRAFANA_SERVICE], provider["options"]["path"])
            assert folder is not None, f"dashboard path {provider['options']['path']} is not mounted into Grafana"
            loaded += [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]
    assert loaded, "Grafana provisions no dashboard"
    return loaded


def panel_targets(dashboards: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Return (panel title, panel, target) of every query in every dashboard, rows included."""
    found = []
    for dashboard in dashboards:
        panels = list(dashboard.get("panels", []))
        while panels:
            panel = panels.pop()
            panels += panel.get("panels", [])
            for target in panel.get("targets", []):
                found.append((panel.get("title", "?"), panel, target))
    return found


def worker_metric_labels() -> dict[str, frozenset[str]]:
    """Return each sample name the worker exposes, with its label names, from WorkerMetrics."""
    exposed: dict[str, frozenset[str]] = {}
    for metric in vars(WorkerMetrics()).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        # prometheus_client has no public accessor for a metric's label names.
        labels = frozenset(metric._labelnames)
        for family in metric.describe():
            for suffix in TYPE_SUFFIXES[family.type]:
                exposed[f"{family.name}{suffix}"] = labels | ({"le"} if suffix == "_bucket" else set())
    return exposed


def test_prometheus_scrapes_every_worker_on_its_web_port(
    services: dict[str, dict[str, Any]], prometheus_config: dict[str, Any]
) -> None:
    targets = scrape_targets(prometheus_config)
    scraped = {host for host, _, _, _ in targets}

    assert CPU_WORKER in scraped, f"Prometheus does not scrape the {CPU_WORKER!r} service: {targets}"
    assert scraped == set(WORKERS), f"Prometheus scrapes {sorted(scraped)}, expected the workers {list(WORKERS)}"
    for host, port, path, _ in targets:
        web_port = int(environment_of(services[host])["EMBEDSTREAM_WEB_PORT"])
        assert port == web_port, f"Prometheus scrapes {host}:{port}, but {host} serves on {web_port}"
        assert port in container_ports(services[host]), f"{host} does not publish the scraped port {port}"
        assert path == "/metrics", f"Prometheus scrapes {host} at {path}, but the worker serves /metrics"


def test_prometheus_config_passes_promtool(prometheus_config: dict[str, Any], tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        message = "promtool is missing; install it with apt-get install prometheus (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must run this test")
        pytest.skip(message)
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(prometheus_config))

    checked = subprocess.run(
        [promtool, "check", "config", str(config_file)], capture_output=True, text=True, timeout=30, check=False
    )

    assert checked.returncode == 0, f"promtool check config failed:\n{checked.stdout}{checked.stderr}"


@pytest.mark.parametrize("service", [PROMETHEUS_SERVICE, GRAFANA_SERVICE])
def test_monitoring_service_mounts_existing_files(services: dict[str, dict[str, Any]], service: str) -> None:
    mounts = bind_mounts(services[service])

    assert mounts, f"{service} mounts nothing from the repository"
    for source, target in mounts:
        assert source.exists(), f"{service} mounts {source.relative_to(ROOT)} at {target}, but it is missing"


def test_grafana_datasource_is_prometheus_service(services: dict[str, dict[str, Any]]) -> None:
    sources = [source for document in grafana_provisioning(services, "datasources")
               for source in document.get("datasources", [])]
    prometheus_sources = [source for source in sources if source.get("type") == "prometheus"]
    listen = command_option(services[PROMETHEUS_SERVICE], "--web.listen-address")
    expected_port = int(listen.rsplit(":", 1)[1]) if listen else PROMETHEUS_DEFAULT_PORT

    assert len(prometheus_sources) == 1, f"expected one Prometheus data source, found {prometheus_sources}"
    url = urlsplit(prometheus_sources[0]["url"])
    assert url.hostname == PROMETHEUS_SERVICE, f"the data source points at {url.hostname!r}, not the prometheus service"
    assert url.port == expected_port, f"the data source uses port {url.port}, Prometheus listens on {expected_port}"


def test_grafana_panels_use_provisioned_datasource(
    services: dict[str, dict[str, Any]], dashboards: list[dict[str, Any]]
) -> None:
    uids = {source.get("uid") for document in grafana_provisioning(services, "datasources")
            for source in document.get("datasources", [])}

    for title, panel, target in panel_targets(dashboards):
        for datasource in (panel.get("datasource"), target.get("datasource")):
            if isinstance(datasource, dict):
                uid = datasource.get("uid")
                assert uid in uids, f"panel {title!r} uses data source {uid!r}, not one of {sorted(uids)}"


def test_grafana_dashboard_metrics_exist_in_worker_metrics(dashboards: list[dict[str, Any]]) -> None:
    exposed = worker_metric_labels()
    queries = panel_targets(dashboards)

    assert queries, "the dashboards have no queries"
    for title, _, target in queries:
        names = METRIC_NAME.findall(target.get("expr", ""))
        assert names, f"panel {title!r} queries no embedstream metric: {target.get('expr')!r}"
        for name in names:
            assert name in exposed, f"panel {title!r} queries {name}, which WorkerMetrics does not expose"


def test_grafana_dashboard_shows_every_worker_metric(dashboards: list[dict[str, Any]]) -> None:
    queried = {name for _, _, target in panel_targets(dashboards) for name in METRIC_NAME.findall(target["expr"])}
    families = {
        family.name
        for metric in vars(WorkerMetrics()).values()
        if isinstance(metric, MetricWrapperBase)
        for family in metric.describe()
    }

    for family in sorted(families):
        assert any(name.startswith(family) for name in queried), f"no dashboard panel shows {family}"


def test_grafana_dashboard_labels_exist(
    dashboards: list[dict[str, Any]], prometheus_config: dict[str, Any]
) -> None:
    exposed = worker_metric_labels()
    target_labels = {name for _, _, _, labels in scrape_targets(prometheus_config) for name in labels}

    for title, _, target in panel_targets(dashboards):
        expr = target["expr"]
        allowed = PROMETHEUS_TARGET_LABELS | target_labels
        for name in METRIC_NAME.findall(expr):
            allowed |= exposed.get(name, frozenset())
        used = {label.strip() for group in GROUPING.findall(expr) for label in group.split(",") if label.strip()}
        used |= {label for selector in SELECTOR.findall(expr) for label in MATCHER.findall(selector)}
        used |= set(LEGEND_LABEL.findall(target.get("legendFormat", "")))
        unknown = used - allowed
        assert not unknown, f"panel {title!r} uses labels {sorted(unknown)} that its metrics lack"


def test_published_ports_bind_to_loopback(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for entry in service.get("ports", []):
            published = entry.get("host_ip") if isinstance(entry, dict) else str(entry).split(":")[0]
            assert published == "127.0.0.1", f"{name} publishes {entry} beyond the loopback interface"
