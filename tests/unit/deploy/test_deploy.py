"""The Dockerfile, deploy/compose and deploy/k8s: valid by their schemas, consistent with the code.

Docker does not run here, so what can be checked is checked: the compose file against the Compose
Specification's JSON Schema (vendored in schemas/), the Kubernetes manifests built by kustomize and
validated strictly against the Kubernetes OpenAPI schemas of ``kubernetes-validate``; and every
command line, environment variable, port, probe and mounted file against the code and the repo.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from jsonschema import Draft201909Validator
from pydantic_settings import BaseSettings

import services
from citybase.cli import app as cli_app
from citybase.platform import SERVICE_FACTORIES
from services.common.settings import Settings
from tests.support.deploy import DEPLOY, K8S, REPO, build, by_kind

COMPOSE = DEPLOY / "compose" / "docker-compose.yml"
COMPOSE_SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"
SERVICES = sorted(SERVICE_FACTORIES)
PORT = Settings.model_fields["port"].default


def settings_variables() -> set[str]:
    """Every CITYBASE_* variable a settings class of citybase reads (found, not listed)."""
    classes: set[type[BaseSettings]] = {Settings}
    for module in pkgutil.iter_modules(services.__path__):
        try:
            settings = importlib.import_module(f"services.{module.name}.settings")
        except ModuleNotFoundError:
            continue
        classes.update(
            value
            for value in vars(settings).values()
            if isinstance(value, type) and issubclass(value, BaseSettings) and value is not BaseSettings
        )
    variables = set()
    for settings_class in classes:
        prefix = settings_class.model_config.get("env_prefix", "")
        variables.update(f"{prefix}{name}".upper() for name in settings_class.model_fields)
    return variables


def check_command_line(args: list[str]) -> None:
    """Parse ``citybase <args>`` as the CLI would, without running it: unknown service or option fails."""
    group = typer.main.get_command(cli_app)
    name, *rest = args
    command = group.get_command(group.context_class(group), name)  # type: ignore[attr-defined]
    assert command is not None, f"citybase has no command {name!r}"
    command.make_context(name, list(rest))


def test_the_settings_variables_are_found() -> None:
    variables = settings_variables()
    assert {"CITYBASE_DATABASE_URL", "CITYBASE_BUS_URL", "CITYBASE_INGEST_MAX_BODY_BYTES"} <= variables


def test_a_command_naming_no_service_is_caught() -> None:
    check_command_line(["serve", "ingest"])
    with pytest.raises(typer.BadParameter, match="billing"):
        check_command_line(["serve", "billing"])
    with pytest.raises(Exception, match="No such option"):
        check_command_line(["migrate", "--everything"])
    with pytest.raises(AssertionError, match="no command"):
        check_command_line(["deploy"])


# --- Dockerfile ---------------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(maxsplit=1)[0].upper(), line.split(maxsplit=1)[1]) for line in lines]


def test_one_image_on_python_slim_whose_command_is_citybase() -> None:
    instructions = dockerfile()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    entrypoint = [json.loads(args) for kind, args in instructions if kind == "ENTRYPOINT"]
    assert entrypoint == [["citybase"]]
    (cmd,) = [json.loads(args) for kind, args in instructions if kind == "CMD"]
    check_command_line(cmd)
    assert [args for kind, args in instructions if kind == "EXPOSE"] == [str(PORT)]
    assert any(kind == "USER" and args != "root" for kind, args in instructions)


def test_the_image_gets_what_it_copies_and_nothing_it_ignores() -> None:
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for kind, args in dockerfile():
        if kind != "COPY" or args.startswith("--from"):
            continue
        *sources, _ = args.split()
        for source in sources:
            assert (REPO / source).exists(), source
            assert source not in ignored and source.rstrip("/") not in ignored, (
                f"{source} is in .dockerignore"
            )
    assert {".git", ".venv", "tests"} <= ignored


def test_the_image_defaults_are_real_settings() -> None:
    variables = settings_variables()
    for kind, args in dockerfile():
        if kind == "ENV":
            for name in re.findall(r"(CITYBASE_[A-Z0-9_]+)=", args):
                assert name in variables, name


# --- compose --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def citybase_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose["services"].items()
        if str(service.get("image", "")).startswith("citybase:")
    }


def test_compose_is_valid_by_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    Draft201909Validator.check_schema(schema)
    errors = sorted(Draft201909Validator(schema).iter_errors(compose), key=lambda error: list(error.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, error.path))}: {error.message}" for error in errors)


def test_the_compose_schema_catches_a_mistake(compose: dict[str, Any]) -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    broken = json.loads(json.dumps(compose))
    broken["services"]["ingest"]["healthcheck"]["intervall"] = "5s"
    assert not Draft201909Validator(schema).is_valid(broken)


def test_compose_runs_kafka_in_kraft_mode_from_the_official_image_at_the_local_version(
    compose: dict[str, Any],
) -> None:
    kafka = compose["services"]["kafka"]
    local = re.search(
        r'KAFKA_VERSION="\$\{KAFKA_VERSION:-([0-9.]+)\}"', (DEPLOY / "local" / "kafka.sh").read_text()
    )
    assert local is not None
    assert kafka["image"] == f"apache/kafka:{local.group(1)}"
    environment = kafka["environment"]
    assert set(environment["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in name for name in environment)
    assert "PLAINTEXT://kafka:9092" in environment["KAFKA_ADVERTISED_LISTENERS"]
    assert {"postgres", "prometheus", "grafana", "migrate"} <= set(compose["services"])
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", environment["CLUSTER_ID"]), (
        "a KRaft cluster id is a base64 UUID"
    )
    for name, service in compose["services"].items():
        image, _, tag = service["image"].partition(":")
        assert tag and tag != "latest", f"{name}: pin {image} to a version"


def test_compose_serves_each_service_from_the_one_image(compose: dict[str, Any]) -> None:
    ours = citybase_services(compose)
    assert set(ours) == {*SERVICES, "migrate"}
    assert len({service["image"] for service in ours.values()}) == 1
    for name, service in ours.items():
        check_command_line(service["command"])
        expected = ["migrate"] if name == "migrate" else ["serve", name]
        assert service["command"] == expected
    assert ours["migrate"]["build"]["dockerfile"] == "Dockerfile"
    assert (
        COMPOSE.parent / ours["migrate"]["build"]["context"] / "Dockerfile"
    ).resolve() == REPO / "Dockerfile"


def test_compose_environment_is_real_settings_pointing_at_the_compose_infrastructure(
    compose: dict[str, Any],
) -> None:
    variables = settings_variables()
    for name, service in citybase_services(compose).items():
        environment = service["environment"]
        unknown = set(environment) - variables
        assert not unknown, f"{name}: not a citybase setting: {sorted(unknown)}"
        assert environment["CITYBASE_BUS_URL"] == "kafka://kafka:9092"
        assert "@postgres:5432/" in environment["CITYBASE_DATABASE_URL"]
        assert environment["CITYBASE_MIGRATE_ON_START"] == "false"
        assert int(environment["CITYBASE_PORT"]) == PORT
        assert environment["CITYBASE_HOST"] == "0.0.0.0"
        Settings(**{key.removeprefix("CITYBASE_").lower(): value for key, value in environment.items()})


REQUIRED = re.compile(r"\$\{([A-Z_]+):\?[^}]+\}")
"""Compose's required interpolation: ``${NAME:?message}`` stops ``docker compose`` when NAME is unset."""


def test_compose_ships_no_secret_and_demands_each_one(compose: dict[str, Any]) -> None:
    """No secret has a usable default: every password and secret is a required interpolation
    (from deploy/compose/.env, which git ignores), and feeds get their secret."""
    for name, service in compose["services"].items():
        environment = service.get("environment") or {}
        for variable, value in environment.items():
            if any(word in variable for word in ("PASSWORD", "SECRET")):
                assert REQUIRED.fullmatch(str(value)), f"{name}: {variable} has a value in the file"
        url = environment.get("CITYBASE_DATABASE_URL")
        if url is not None:
            password = url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
            assert REQUIRED.fullmatch(password), f"{name}: the database password is written in the file"
    feeds = compose["services"]["feeds"]["environment"]
    assert REQUIRED.fullmatch(feeds["CITYBASE_FEEDS_SECRET"]).group(1) == "CITYBASE_FEEDS_SECRET"  # type: ignore[union-attr]
    assert "deploy/compose/.env" in (REPO / ".gitignore").read_text(encoding="utf-8").splitlines()


def test_compose_services_wait_for_migrations_and_report_readiness(compose: dict[str, Any]) -> None:
    for name in SERVICES:
        service = compose["services"][name]
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert service["depends_on"]["kafka"]["condition"] == "service_healthy"
        assert any(f"127.0.0.1:{PORT}/readyz" in part for part in service["healthcheck"]["test"]), name
        published = [port.rsplit(":", 1)[1] for port in service["ports"]]
        assert published == [str(PORT)], name
    assert compose["services"]["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_prometheus_and_grafana_mount_the_repo_config(compose: dict[str, Any]) -> None:
    mounted: dict[str, str] = {}
    for name in ("prometheus", "grafana"):
        for volume in compose["services"][name]["volumes"]:
            source, target, *_ = volume.split(":")
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), f"{name}: {source} does not exist"
                mounted[target] = str((COMPOSE.parent / source).resolve())
    assert mounted["/etc/prometheus/prometheus.yml"] == str(DEPLOY / "prometheus" / "prometheus.yml")
    assert mounted["/etc/prometheus/rules"] == str(DEPLOY / "prometheus" / "rules")
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "citybase.yml").read_text()
    )
    assert mounted[provider["providers"][0]["options"]["path"]] == str(DEPLOY / "grafana" / "dashboards")
    assert mounted["/etc/grafana/provisioning"] == str(DEPLOY / "grafana" / "provisioning")
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {
        target
        for job in scrape["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    assert targets == {f"{name}:{PORT}" for name in SERVICES}
    assert set(compose["services"]["prometheus"]["depends_on"]) == set(SERVICES)


def test_the_compose_instructions_name_real_commands() -> None:
    for line in COMPOSE.read_text(encoding="utf-8").splitlines():
        match = re.search(r"run --rm --no-deps \w+ (.+)$", line)
        if match:
            check_command_line(match.group(1).split())


# --- Kubernetes -----------------------------------------------------------------------------------

KUSTOMIZATIONS = [K8S / "base", K8S / "overlays" / "production", K8S / "overlays" / "city"]


@pytest.fixture(scope="module", params=KUSTOMIZATIONS, ids=lambda path: path.name)
def manifests(request: pytest.FixtureRequest, kustomize: list[str]) -> list[dict[str, Any]]:
    return build(kustomize, request.param)


def test_every_manifest_is_valid_by_the_kubernetes_schemas(manifests: list[dict[str, Any]]) -> None:
    from kubernetes_validate import utils

    version = utils.latest_version()
    for document in manifests:
        try:
            utils.validate(document, version, strict=True)
        except utils.ValidationError as error:
            pytest.fail(
                f"{document['kind']}/{document['metadata']['name']}: {error.message} at {list(error.path)}"
            )


def test_the_validator_catches_a_mistake(kustomize: list[str]) -> None:
    from kubernetes_validate import utils

    deployment = by_kind(build(kustomize, K8S / "base"), "Deployment")["citybase-ingest"]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {
        "path": "/readyz"
    }
    with pytest.raises(utils.ValidationError):
        utils.validate(deployment, utils.latest_version(), strict=True)


def test_each_service_is_a_deployment_probed_on_readyz_and_healthz(manifests: list[dict[str, Any]]) -> None:
    deployments = by_kind(manifests, "Deployment")
    assert set(deployments) == {f"citybase-{name}" for name in SERVICES}
    for name in SERVICES:
        pod = deployments[f"citybase-{name}"]["spec"]["template"]
        (container,) = pod["spec"]["containers"]
        check_command_line(container["args"])
        assert container["args"] == ["serve", name]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        (port,) = container["ports"]
        assert port == {"name": "http", "containerPort": PORT}
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"], name
        assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(PORT)
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True


def test_services_select_their_pods_and_the_job_migrates(manifests: list[dict[str, Any]]) -> None:
    deployments = by_kind(manifests, "Deployment")
    services_ = by_kind(manifests, "Service")
    for name in SERVICES:
        service = services_[f"citybase-{name}"]
        labels = deployments[f"citybase-{name}"]["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        assert service["spec"]["ports"][0]["targetPort"] == "http"
    job = by_kind(manifests, "Job")["citybase-migrate"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    check_command_line(container["args"])
    assert container["args"] == ["migrate"]


def test_one_image_and_real_settings_everywhere(manifests: list[dict[str, Any]]) -> None:
    variables = settings_variables()
    configmaps = by_kind(manifests, "ConfigMap")
    for document in configmaps.values():
        assert set(document["data"]) <= variables, set(document["data"]) - variables
    config = configmaps["citybase"]["data"]
    assert int(config["CITYBASE_PORT"]) == PORT and config["CITYBASE_MIGRATE_ON_START"] == "false"
    images = set()
    for document in manifests:
        if document["kind"] in {"Deployment", "Job"}:
            (container,) = document["spec"]["template"]["spec"]["containers"]
            images.add(container["image"])
            for source in container["envFrom"]:
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in configmaps
                else:
                    assert source["secretRef"] == {"name": OPERATOR_SECRET}, (
                        "the operator's Secret, not optional"
                    )
            for variable in container.get("env", []):
                assert variable["name"] in variables, variable["name"]
    assert len(images) == 1 and images.pop().rsplit(":", 1)[1] == "0.1.0"


OPERATOR_SECRET = "citybase"
"""The Secret every pod reads: created by the operator (kustomization.yaml says how), never shipped."""


def test_no_secret_ships_and_feeds_demand_theirs(manifests: list[dict[str, Any]]) -> None:
    """No secret has a usable default: no Secret (not even a placeholder) is in the manifests, and
    feeds cannot start until the operator's Secret holds CITYBASE_FEEDS_SECRET."""
    assert by_kind(manifests, "Secret") == {}
    for document in by_kind(manifests, "ConfigMap").values():
        assert not [name for name in document["data"] if "SECRET" in name or "PASSWORD" in name]
        assert not [value for value in document["data"].values() if "://" in value and "@" in value]
    (feeds,) = by_kind(manifests, "Deployment")["citybase-feeds"]["spec"]["template"]["spec"]["containers"]
    demanded = {variable["name"]: variable["valueFrom"]["secretKeyRef"] for variable in feeds["env"]}
    assert demanded["CITYBASE_FEEDS_SECRET"] == {
        "name": OPERATOR_SECRET,
        "key": "CITYBASE_FEEDS_SECRET",
        "optional": False,
    }
    documented = (K8S / "base" / "kustomization.yaml").read_text(encoding="utf-8")
    command = re.search(r"create secret generic (\S+)(.*?)\n#\n", documented, re.DOTALL)
    assert command is not None and command.group(1) == OPERATOR_SECRET
    keys = set(re.findall(r"--from-literal=(CITYBASE_[A-Z_]+)=", command.group(2)))
    assert keys == {"CITYBASE_DATABASE_URL", "CITYBASE_FEEDS_SECRET"} and keys <= settings_variables()
    assert "openssl rand" in command.group(2)
    assert all(
        document["metadata"].get("namespace") == "citybase"
        for document in manifests
        if document["kind"] != "Namespace"
    )
