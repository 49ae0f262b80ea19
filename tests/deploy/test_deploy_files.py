"""The deployment files agree with the code: real commands and options, real settings, real stream and
metric names, and shutdown grace periods longer than the workers' drain."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from prometheus_client import CollectorRegistry

from llmrelay.cli.main import app
from llmrelay.shared import keys
from llmrelay.shared.catalog import PROVIDERS
from llmrelay.shared.metrics import QueueMetrics, WorkerMetrics
from llmrelay.shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "llmrelay.json"

#: Read by KEDA's TriggerAuthentication, not by llmrelay.
KEDA_ONLY_KEYS = {"REDIS_PASSWORD"}


# -- what the code defines ------------------------------------------------------------------------------


def setting_env_names() -> set[str]:
    names: set[str] = set()
    for field in Settings.model_fields.values():
        alias: Any = field.validation_alias
        names.update([alias] if isinstance(alias, str) else [str(c) for c in alias.choices])
    return names


def cli_commands() -> dict[str, set[str]]:
    """Subcommand → its option flags, from the typer app itself."""
    group: Any = typer.main.get_command(app)
    return {
        name: {
            opt for p in command.params if p.param_type_name == "option" for opt in p.opts + p.secondary_opts
        }
        for name, command in group.commands.items()
    }


def metric_names() -> set[str]:
    """Every series name the shared metrics produce, as Prometheus sees them."""
    registry = CollectorRegistry()
    WorkerMetrics.create(registry)
    QueueMetrics.create(registry)
    names: set[str] = set()
    for family in registry.collect():
        if family.type == "counter":
            names |= {f"{family.name}_total", f"{family.name}_created"}
        elif family.type == "histogram":
            names |= {f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count", "created")}
        else:
            names.add(family.name)
    return names


def assert_real_command(args: list[str], where: str) -> None:
    commands = cli_commands()
    assert args, f"{where}: no command"
    assert args[0] in commands, f"{where}: `llmrelay {args[0]}` is not a command"
    for token in args[1:]:
        if token.startswith("--"):
            flag = token.split("=", 1)[0]
            assert flag in commands[args[0]], f"{where}: `llmrelay {args[0]}` has no option {flag}"


def seconds(value: str | int) -> float:
    if isinstance(value, int):
        return float(value)
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)?", value.strip())
    assert match, value
    number, unit = float(match[1]), match[2] or "s"
    return number * {"ms": 0.001, "s": 1.0, "m": 60.0}[unit]


def test_metric_names_follow_prometheus_conventions() -> None:
    names = metric_names()
    assert "llmrelay_requests_total" in names
    assert "llmrelay_request_latency_seconds_bucket" in names
    assert "llmrelay_queue_lag" in names


# -- docker-compose.yml and Dockerfile --------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_has_redis_workers_api_and_an_optional_simulator(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"redis", "worker", "api", "simulator"} <= set(services)
    assert services["simulator"]["profiles"] == ["simulator"]
    assert services["worker"]["deploy"]["replicas"] >= 1
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no healthcheck"


def test_compose_runs_real_commands(compose: dict[str, Any]) -> None:
    for name in ("worker", "api", "simulator"):
        command = compose["services"][name]["command"]
        assert_real_command(command if isinstance(command, list) else shlex.split(command), f"compose {name}")
    assert compose["services"]["api"]["command"][:3] == ["api", "--host", "0.0.0.0"]


def test_compose_env_names_are_settings(compose: dict[str, Any]) -> None:
    known = setting_env_names()
    for name in ("worker", "api"):
        service = compose["services"][name]
        assert set(service["environment"]) <= known
        assert any(str(e.get("path", e)).endswith(".env") for e in service["env_file"])


def test_compose_waits_longer_than_the_worker_drain(compose: dict[str, Any]) -> None:
    grace = Settings.model_fields["shutdown_grace"].default
    worker = compose["services"]["worker"]
    assert seconds(worker["stop_grace_period"]) > grace
    assert worker.get("stop_signal", "SIGTERM") == "SIGTERM"


def test_compose_worker_healthcheck_reads_the_real_heartbeat_keys(compose: dict[str, Any]) -> None:
    check = " ".join(compose["services"]["worker"]["healthcheck"]["test"])
    assert f'"{keys.WORKERS_REGISTRY}"' in check
    assert f'"{keys.worker_heartbeat("")}"' in check


def _dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    steps = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            steps.append((instruction.upper(), rest.strip()))
    return steps


def test_dockerfile_builds_a_slim_non_root_llmrelay_image() -> None:
    steps = _dockerfile()
    froms = [args for op, args in steps if op == "FROM"]
    assert froms and all(f.split()[0] == "python:3.11-slim" for f in froms)
    final = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM") :]
    users = [args for op, args in final if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert any(op == "RUN" and "pip install" in args for op, args in final)
    entrypoint = json.loads(next(args for op, args in final if op == "ENTRYPOINT"))
    assert entrypoint == ["llmrelay"]
    assert_real_command(json.loads(next(args for op, args in final if op == "CMD")), "Dockerfile CMD")


def test_dockerfile_copies_every_package() -> None:
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    assert find["include"] == ["llmrelay*"]
    copied = {args.split()[0] for op, args in _dockerfile() if op == "COPY" and "--from" not in args}
    # The package's folders may be links (llmrelay/shared -> ../shared): the image needs where they lead.
    packages = [ROOT / "llmrelay", *(p for p in (ROOT / "llmrelay").iterdir() if (p / "__init__.py").is_file())]
    sources = {p.resolve().relative_to(ROOT).parts[0] for p in packages}
    assert sources == {"llmrelay", "shared", "producer", "worker"}
    for top in sources:
        assert top in copied, f"the Dockerfile does not copy {top}/"
    assert "pyproject.toml" in copied
    assert not copied & {"bench", "tests"}, "benchmarks and tests stay out of the production image"


def test_dockerfile_and_compose_use_one_image_name(compose: dict[str, Any]) -> None:
    assert compose["x-llmrelay"]["image"].split(":")[0] == "llmrelay"


# -- Kubernetes --------------------------------------------------------------------------------------------


def k8s_documents() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                yield path, doc


@pytest.fixture(scope="module")
def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path, doc in k8s_documents():
        for field in ("apiVersion", "kind", "metadata"):
            assert field in doc, f"{path.name}: a document without {field}"
        key = (doc["kind"], doc["metadata"]["name"])
        assert key not in found, f"{key} defined twice"
        found[key] = doc
    return found


def _containers(manifests: dict[tuple[str, str], dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for (kind, name), doc in manifests.items():
        if kind in ("Deployment", "StatefulSet"):
            for container in doc["spec"]["template"]["spec"]["containers"]:
                yield name, container


def test_every_manifest_lives_in_the_namespace(manifests: dict[tuple[str, str], dict[str, Any]]) -> None:
    for (kind, name), doc in manifests.items():
        if kind != "Namespace":
            assert doc["metadata"].get("namespace") == "llmrelay", f"{kind}/{name}"


def test_llmrelay_containers_run_real_commands(manifests: dict[tuple[str, str], dict[str, Any]]) -> None:
    images = set()
    for name, container in _containers(manifests):
        if name.startswith("llmrelay-"):
            assert_real_command(container["args"], f"{name}/{container['name']}")
            images.add(container["image"].split(":")[0])
    assert images == {"llmrelay"}
    assert (
        manifests[("Deployment", "llmrelay-worker")]["spec"]["template"]["spec"]["containers"][0]["args"][0]
        == "worker"
    )
    api_args = manifests[("Deployment", "llmrelay-api")]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert api_args[:3] == ["api", "--host", "0.0.0.0"]


def test_env_names_are_settings_and_secrets_exist(manifests: dict[tuple[str, str], dict[str, Any]]) -> None:
    known = setting_env_names()
    secret = manifests[("Secret", "llmrelay-secrets")]
    config = manifests[("ConfigMap", "llmrelay-config")]
    assert set(config["data"]) <= known
    assert set(secret["stringData"]) <= known | KEDA_ONLY_KEYS
    for provider_key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        assert provider_key in secret["stringData"]
    for name, container in _containers(manifests):
        if not name.startswith("llmrelay-"):
            continue
        for source in container.get("envFrom", []):
            assert ("ConfigMap", source["configMapRef"]["name"]) in manifests
        for env in container.get("env", []):
            assert env["name"] in known, f"{name}: {env['name']} is not a setting"
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref is not None:
                assert ("Secret", ref["name"]) in manifests
                assert ref["key"] in manifests[("Secret", ref["name"])]["stringData"]


def test_provider_keys_come_from_the_secret(manifests: dict[tuple[str, str], dict[str, Any]]) -> None:
    worker = manifests[("Deployment", "llmrelay-worker")]["spec"]["template"]["spec"]["containers"][0]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in worker["env"] if "valueFrom" in e}
    for provider_key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        assert refs[provider_key]["name"] == "llmrelay-secrets"


def test_workers_get_longer_than_their_drain(manifests: dict[tuple[str, str], dict[str, Any]]) -> None:
    config_grace = float(manifests[("ConfigMap", "llmrelay-config")]["data"]["LLMRELAY_SHUTDOWN_GRACE"])
    default_grace = Settings.model_fields["shutdown_grace"].default
    spec = manifests[("Deployment", "llmrelay-worker")]["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] > max(config_grace, default_grace)


def test_api_service_and_probes(manifests: dict[tuple[str, str], dict[str, Any]]) -> None:
    deployment = manifests[("Deployment", "llmrelay-api")]
    service = manifests[("Service", "llmrelay-api")]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    port = int(container["args"][container["args"].index("--port") + 1])
    assert container["ports"][0]["containerPort"] == port


def test_keda_scales_workers_on_every_work_stream(manifests: dict[tuple[str, str], dict[str, Any]]) -> None:
    scaled = manifests[("ScaledObject", "llmrelay-worker")]
    assert ("Deployment", scaled["spec"]["scaleTargetRef"]["name"]) in manifests
    triggers = scaled["spec"]["triggers"]
    assert all(t["type"] == "redis-streams" for t in triggers)
    expected = {keys.work_stream(p, lane) for p in PROVIDERS for lane in keys.LANES}
    by_stream: dict[str, set[str]] = {}
    for trigger in triggers:
        meta = trigger["metadata"]
        assert meta["consumerGroup"] == keys.GROUP
        kinds = {k for k in ("lagCount", "pendingEntriesCount", "streamLength") if k in meta}
        assert len(kinds) == 1, trigger
        by_stream.setdefault(meta["stream"], set()).update(kinds)
        auth = trigger["authenticationRef"]["name"]
        assert ("TriggerAuthentication", auth) in manifests
    assert set(by_stream) == expected
    for stream, kinds in by_stream.items():
        assert kinds == {"lagCount", "pendingEntriesCount"}, stream


def test_keda_reads_the_redis_password_from_the_secret(
    manifests: dict[tuple[str, str], dict[str, Any]],
) -> None:
    auth = manifests[("TriggerAuthentication", "llmrelay-redis")]
    for ref in auth["spec"]["secretTargetRef"]:
        assert ("Secret", ref["name"]) in manifests
        assert ref["key"] in manifests[("Secret", ref["name"])]["stringData"]


# -- Prometheus and Grafana -------------------------------------------------------------------------------

_METRIC = re.compile(r"\b(llmrelay_[a-z0-9_]+)\b")


def test_alert_rules_are_complete_and_name_real_metrics() -> None:
    rules = [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]
    names = metric_names()
    used: set[str] = set()
    for rule in rules:
        assert rule["alert"].startswith("LLMRelay")
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]
        found = set(_METRIC.findall(rule["expr"]))
        assert found, f"{rule['alert']} names no llmrelay metric"
        assert found <= names, f"{rule['alert']}: unknown {sorted(found - names)}"
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
        used |= found
    assert len({r["alert"] for r in rules}) == len(rules)
    for needed in (
        "llmrelay_queue_depth",
        "llmrelay_queue_lag",
        "llmrelay_queue_pending",
        "llmrelay_queue_oldest_age_seconds",
        "llmrelay_workers_alive",
        "llmrelay_requests_total",
        "llmrelay_request_latency_seconds_bucket",
        "llmrelay_rate_limit_waits_total",
    ):
        assert needed in used, f"no alert on {needed}"


def test_dashboard_panels_name_real_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    names = metric_names()
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    used: set[str] = set()
    for panel in dashboard["panels"]:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
        for target in panel.get("targets", []):
            found = set(_METRIC.findall(target["expr"]))
            assert found, f"panel {panel['title']!r} names no llmrelay metric"
            assert found <= names, f"panel {panel['title']!r}: unknown {sorted(found - names)}"
            used |= found
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            assert set(_METRIC.findall(variable["definition"])) <= names
    assert {"llmrelay_queue_lag", "llmrelay_workers_alive", "llmrelay_cost_usd_total"} <= used
