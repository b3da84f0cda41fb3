"""The Grafana dashboard and the deployment manifests cannot drift from the code.

* Every PromQL expression of every dashboard panel runs on a real Prometheus (Debian
  package) scraping a real worker, and every metric it names exists in the worker's
  ``/metrics`` — renaming a metric, or a label value the dashboard filters on, fails here.
* The dashboard JSON is a well-formed Grafana model (unique ids, grid positions, the
  ``${datasource}`` variable everywhere).
* ``deploy/compose`` and ``deploy/kubernetes`` cannot be run here (no Docker engine, no
  cluster), so they are checked structurally: every ``WATCHFLOOR_*`` variable they set is
  a real ``Settings`` field, secrets come from Secrets, ports and selectors agree, and the
  topics ConfigMap is the repository's ``topics.yaml``.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from tests.conftest import ROOT
from tests.integration.conftest import Worker
from tests.kafka_helpers import produce, run
from watchfloor.settings import _FILE_FIELDS, Settings

DASHBOARDS = ROOT / "deploy/grafana/dashboards"
OVERVIEW = DASHBOARDS / "watchfloor-overview.json"
PROVISIONING = ROOT / "deploy/grafana/provisioning"
COMPOSE = ROOT / "deploy/compose"
KUBERNETES = ROOT / "deploy/kubernetes"
RULES = ROOT / "deploy/prometheus/rules.yml"

# Metric names: watchfloor's own, and recording-rule names (watchfloor:…).
METRIC_RE = re.compile(r"\b(watchfloor_[a-z0-9_]+|watchfloor:[a-z0-9_:]+)\b")
# What the brief for managers asks the overview to show (base metric names).
REQUIRED_METRICS = {
    "watchfloor_alert_latency_seconds_bucket",
    "watchfloor_response_latency_seconds_bucket",
    "watchfloor_alerts_total",
    "watchfloor_events_total",
    "watchfloor_events_invalid_total",
    "watchfloor_detections_total",
    "watchfloor_detector_errors_total",
    "watchfloor_feedback_total",
    "watchfloor_incidents_total",
    "watchfloor_detections_suppressed_total",
    "watchfloor_consumer_lag",
    "watchfloor_batch_seconds_bucket",
    "watchfloor_checkpoint_seconds_bucket",
    "watchfloor_assigned_partitions",
}


# -- helpers ---------------------------------------------------------------------------
def load_dashboard(path: Path = OVERVIEW) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def all_panels(dash: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for p in dash.get("panels", []):
        yield p
        yield from p.get("panels", [])


def exprs(dash: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title / refId, PromQL) of every target of every panel."""
    out = []
    for p in all_panels(dash):
        for t in p.get("targets", []):
            if t.get("expr"):
                out.append((f"{p.get('title')!r}/{t.get('refId')}", t["expr"]))
    return out


def variable_queries(dash: dict[str, Any]) -> list[str]:
    out = []
    for v in dash["templating"]["list"]:
        if v.get("type") == "query":
            q = v["query"]
            out.append(q["query"] if isinstance(q, dict) else q)
    return out


def label_values_as_promql(query: str) -> tuple[str, str]:
    """``label_values(metric, label)`` → (``group by (label) (metric)``, label)."""
    m = re.fullmatch(r"\s*label_values\(\s*(.+?)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*", query)
    assert m, f"variable query {query!r} is not label_values(metric, label)"
    return f"group by ({m[2]}) ({m[1]})", m[2]


def substitute(expr: str, agency: str) -> str:
    """Grafana's interpolation, as a Prometheus would receive it."""
    for name, value in (
        ("__rate_interval", "1m"),
        ("__interval", "15s"),
        ("__range", "5m"),
        ("agency", agency),
    ):
        expr = expr.replace("${" + name + "}", value).replace("$" + name, value)
    assert "$" not in expr, f"uninterpolated variable left in {expr!r}"
    return expr


def settings_env_names() -> set[str]:
    names = set()
    for f in dataclasses.fields(Settings):
        names.add(f"WATCHFLOOR_{f.name.upper()}")
        if f.name in _FILE_FIELDS:
            names.add(f"WATCHFLOOR_{f.name.upper()}_FILE")
    return names


def yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def k8s_objects() -> list[tuple[Path, dict[str, Any]]]:
    return [(p, d) for p in sorted(KUBERNETES.glob("*.yaml")) for d in yaml_docs(p)]


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    return spec.get("containers", []) + spec.get("initContainers", [])


# -- the dashboard's structure (no broker) ---------------------------------------------
def test_dashboard_is_a_grafana_model_bound_to_the_datasource_variable() -> None:
    dash = load_dashboard()
    assert 36 <= dash["schemaVersion"] <= 41
    assert dash["uid"] and dash["title"]
    assert "__inputs" not in dash, "provisioned dashboards must not need an import step"

    variables = {v["name"]: v for v in dash["templating"]["list"]}
    ds = variables["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    agency = variables["agency"]
    assert agency["type"] == "query"
    assert agency["datasource"]["uid"] == "${datasource}"
    assert variable_queries(dash) == ["label_values(watchfloor_alerts_total, agency)"]

    ids: list[int] = []
    cells: dict[tuple[int, int], str] = {}
    for p in all_panels(dash):
        title = p.get("title")
        assert isinstance(p.get("id"), int), title
        ids.append(p["id"])
        grid = p.get("gridPos")
        assert grid and all(isinstance(grid.get(k), int) for k in "hwxy"), title
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= 24, title
        for x in range(grid["x"], grid["x"] + grid["w"]):  # no two panels overlap
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{title!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = title
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, title
        assert p.get("targets"), f"{title!r} has no query"
        ref_ids = [t["refId"] for t in p["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), title
        for t in p["targets"]:
            assert t.get("datasource", {}).get("uid") == "${datasource}", title
            assert t.get("expr", "").strip(), title
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {sorted(ids)}"

    named = {m for _, e in exprs(dash) for m in METRIC_RE.findall(e)}
    missing = REQUIRED_METRICS - named
    assert not missing, f"the overview no longer shows {sorted(missing)}"
    for _, e in exprs(dash):
        if "watchfloor_alert" in e or "watchfloor_response" in e:
            assert re.search(r'agency=~"\$(agency|\{agency\})"', e), (
                f"agency-labelled query ignores the $agency variable: {e}"
            )


def test_grafana_provisioning_loads_the_dashboards() -> None:
    (ds_file,) = (PROVISIONING / "datasources").glob("*.yaml")
    datasources = yaml.safe_load(ds_file.read_text())["datasources"]
    assert [d["type"] for d in datasources] == ["prometheus"]
    assert datasources[0]["isDefault"] is True
    (db_file,) = (PROVISIONING / "dashboards").glob("*.yaml")
    (provider,) = yaml.safe_load(db_file.read_text())["providers"]
    assert provider["type"] == "file"
    # compose mounts deploy/grafana/dashboards exactly where the provider looks
    grafana = yaml.safe_load((COMPOSE / "compose.yaml").read_text())["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"])
    assert mounts.get("../grafana/dashboards") == provider["options"]["path"]
    assert (
        mounts.get("../grafana/provisioning/dashboards") == "/etc/grafana/provisioning/dashboards"
    )
    assert (
        mounts.get("../grafana/provisioning/datasources") == "/etc/grafana/provisioning/datasources"
    )
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/{OVERVIEW.name}"


def test_every_alert_rule_has_a_runbook_entry() -> None:
    alerts = [
        r["alert"]
        for g in yaml.safe_load(RULES.read_text())["groups"]
        for r in g["rules"]
        if "alert" in r
    ]
    ops = (ROOT / "docs/operations.md").read_text(encoding="utf-8")
    missing = [a for a in alerts if f"### {a}\n" not in ops]
    assert alerts and not missing, f"docs/operations.md has no '### <alert>' section for {missing}"


# -- deployment manifests (no broker, no Docker, no cluster) -----------------------------
def _compose_env_names() -> dict[str, set[str]]:
    """WATCHFLOOR_* names per place they are set in deploy/compose."""
    found: dict[str, set[str]] = {}
    spec = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    for name, svc in spec["services"].items():
        env = svc.get("environment") or {}
        keys = env.keys() if isinstance(env, dict) else [e.split("=", 1)[0] for e in env]
        found[f"compose.yaml:{name}"] = {k for k in keys if k.startswith("WATCHFLOOR_")}
    dockerfile = (COMPOSE / "Dockerfile").read_text()
    found["Dockerfile"] = set(re.findall(r"\b(WATCHFLOOR_[A-Z0-9_]+)=", dockerfile))
    return found


def _k8s_env_names() -> dict[str, set[str]]:
    objs = k8s_objects()
    configmaps = {d["metadata"]["name"]: d for _, d in objs if d["kind"] == "ConfigMap"}
    found: dict[str, set[str]] = {}
    for path, obj in objs:
        if obj["kind"] == "ConfigMap":
            keys = {k for k in obj.get("data", {}) if k.startswith("WATCHFLOOR_")}
            found[f"{path.name}:{obj['metadata']['name']}"] = keys
        for c in containers(obj):
            names = {e["name"] for e in c.get("env", []) if e["name"].startswith("WATCHFLOOR_")}
            for src in c.get("envFrom", []):
                ref = src.get("configMapRef")
                if ref:
                    assert ref["name"] in configmaps, f"{path.name}: no ConfigMap {ref['name']}"
                    names |= set(configmaps[ref["name"]]["data"])
            found[f"{path.name}:{obj['metadata']['name']}/{c['name']}"] = names
    return found


def test_deploy_env_names_are_settings_fields() -> None:
    valid = settings_env_names()
    places = {**_compose_env_names(), **_k8s_env_names()}
    assert any(places.values()), "no WATCHFLOOR_* variables found in deploy/"
    for place, names in places.items():
        unknown = names - valid
        assert not unknown, (
            f"{place} sets {sorted(unknown)}, which watchfloor.settings.Settings does not "
            f"read (valid: {sorted(valid)})"
        )


def test_kubernetes_worker_manifests_agree() -> None:
    objs = k8s_objects()
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for _, d in objs:
        by_kind.setdefault(d["kind"], []).append(d)
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    for res in kustomization["resources"]:
        assert (KUBERNETES / res).is_file(), res

    (deploy,) = by_kind["Deployment"]
    labels = deploy["spec"]["template"]["metadata"]["labels"]
    selector = deploy["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    config = next(c for c in by_kind["ConfigMap"] if c["metadata"]["name"] == "watchfloor-config")
    port = int(config["data"]["WATCHFLOOR_METRICS_PORT"])
    (worker,) = deploy["spec"]["template"]["spec"]["containers"]
    assert {"name": "metrics", "containerPort": port} in worker["ports"]
    annotations = deploy["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == port

    # Secrets never sit in the ConfigMap; they come from a Secret (as a value or a file).
    secrets = {"WATCHFLOOR_PSEUDONYM_KEY", "WATCHFLOOR_SASL_PASSWORD"}
    assert not config["data"].keys() & secrets, "secret values in a ConfigMap"
    secret_fields = {*secrets, "WATCHFLOOR_SASL_USERNAME"}
    env = {e["name"]: e for e in worker["env"]}
    mounts = {m["name"]: m["mountPath"] for m in worker["volumeMounts"]}
    volumes = {v["name"]: v for v in deploy["spec"]["template"]["spec"]["volumes"]}
    for field in secret_fields:
        if field in env:
            assert "secretKeyRef" in env[field]["valueFrom"], field
            continue
        path = env[f"{field}_FILE"]["value"]
        vol = next(n for n, m in mounts.items() if path.startswith(m + "/"))
        assert "secret" in volumes[vol], f"{field}_FILE={path} is not on a Secret volume"
    # The topology file the worker reads is the mounted topics ConfigMap.
    topics_path = Path(config["data"]["WATCHFLOOR_TOPICS_FILE"])
    cm_name = volumes[next(n for n, m in mounts.items() if Path(m) == topics_path.parent)]
    topics_cm = next(
        c for c in by_kind["ConfigMap"] if c["metadata"]["name"] == cm_name["configMap"]["name"]
    )
    assert yaml.safe_load(topics_cm["data"][topics_path.name]) == yaml.safe_load(
        (ROOT / "topics.yaml").read_text()
    ), (
        "deploy/kubernetes/topics-configmap.yaml differs from topics.yaml; regenerate it "
        "(the command is at the top of that file)"
    )

    for kind in ("Service", "PodDisruptionBudget", "PodMonitor"):
        (obj,) = by_kind[kind]
        sel = obj["spec"]["selector"]
        sel = sel.get("matchLabels", sel)
        assert sel.items() <= labels.items(), kind
    (svc,) = by_kind["Service"]
    assert svc["spec"]["ports"][0]["port"] == port
    assert by_kind["PodDisruptionBudget"][0]["spec"]["maxUnavailable"] == 1


def test_compose_stack_is_consistent() -> None:
    spec = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    services = spec["services"]
    assert re.fullmatch(r"apache/kafka:3\.9\.\d+", services["kafka"]["image"])
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    for name in ("topics", "worker"):
        build = services[name]["build"]
        assert (COMPOSE / build["context"] / build["dockerfile"]).resolve() == (
            COMPOSE / "Dockerfile"
        ).resolve()
    assert services["worker"]["environment"]["WATCHFLOOR_BROKER"] == "kafka://kafka:9092"
    # every bind mount points at a file or folder of this repository
    for name, svc in services.items():
        for vol in svc.get("volumes", []):
            src = vol.split(":", 1)[0]
            if src.startswith("."):
                assert (COMPOSE / src).exists(), f"{name}: {src} does not exist"
    prom = yaml.safe_load((COMPOSE / "prometheus.yml").read_text())
    (job,) = prom["scrape_configs"]
    assert job["job_name"] == "watchfloor"  # the rules' up{job="watchfloor"} applies
    assert job["dns_sd_configs"][0]["port"] == int(
        services["worker"]["environment"]["WATCHFLOOR_METRICS_PORT"]
    )


@pytest.mark.prometheus
def test_compose_prometheus_config_is_valid(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool comes with the prometheus package (deploy/prometheus/install.sh)"
    shutil.copy(COMPOSE / "prometheus.yml", tmp_path / "prometheus.yml")
    shutil.copy(RULES, tmp_path / "rules.yml")  # compose mounts it next to the config
    out = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


# -- every dashboard query on a real Prometheus scraping a real worker -------------------
def _get(port: int, path: str, **params: str) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}{path}?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:  # 400/422: a parse or execution error
        return json.loads(exc.read())


def _query(port: int, expr: str) -> dict[str, Any]:
    return _get(port, "/api/v1/query", query=expr, time=f"{time.time():.3f}")


def _worker_metric_names(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def _recorded_names() -> set[str]:
    return {
        r["record"]
        for g in yaml.safe_load(RULES.read_text())["groups"]
        for r in g["rules"]
        if "record" in r
    }


def _network_event(event_id: str) -> bytes:
    return orjson.dumps(
        {
            "event_id": event_id,
            "ts": int(time.time() * 1000),
            "src_ip": "10.9.9.1",
            "dst_ip": "10.9.9.2",
            "dst_port": 443,
            "protocol": "tcp",
            "bytes_out": 100,
            "bytes_in": 100,
            "duration_ms": 5,
        }
    )


@pytest.mark.broker
@pytest.mark.prometheus
def test_every_dashboard_query_runs_on_real_metrics(worker: Worker, prometheus: int) -> None:
    # Some traffic, one valid and one dead-lettered event, so counters move.
    run(
        produce(
            worker.bootstrap,
            "events.network",
            [(None, _network_event("dash-1")), (None, b"{not json")],
        )
    )
    dash = load_dashboard()
    queries = exprs(dash)
    assert len(queries) >= 20

    # The metric names the dashboard uses exist in the worker's own output.
    exposed = _worker_metric_names(worker.metrics())
    recorded = _recorded_names()
    named = {m for _, e in queries for m in METRIC_RE.findall(e)}
    named |= {m for q in variable_queries(dash) for m in METRIC_RE.findall(q)}
    for name in sorted(named):
        if ":" in name:
            assert name in recorded, f"dashboard uses {name}, which rules.yml does not record"
        else:
            assert name in exposed, (
                f"dashboard uses {name}, which the worker does not expose; it exposes "
                f"{sorted(n for n in exposed if n.startswith('watchfloor_'))}"
            )

    # The $agency variable's query yields the agencies of topics.yaml.
    (var_query,) = variable_queries(dash)
    promql, label = label_values_as_promql(var_query)
    body = _query(prometheus, promql)
    assert body["status"] == "success", body
    agencies = sorted(r["metric"][label] for r in body["data"]["result"])
    assert "cert" in agencies, agencies

    # Every expression parses and executes, for one agency and for "All" (allValue .*),
    # and — unless it filters on a comparison — returns series once two scrapes are in
    # the rate window (a label value the worker never uses would return nothing).
    agency_values = [agencies[0], "(" + "|".join(agencies) + ")", ".*"]
    deadline = time.monotonic() + 60
    while True:
        failures, empty = [], []
        for where, expr in queries:
            for value in agency_values:
                q = substitute(expr, value)
                body = _query(prometheus, q)
                if body.get("status") != "success" or body.get("warnings"):
                    failures.append(f"{where}: {q}\n  → {body}")
                elif not body["data"]["result"] and not re.search(r"[<>]=?\s*[0-9]", expr):
                    empty.append(f"{where}: {q}")
        assert not failures, "dashboard queries fail on Prometheus:\n" + "\n".join(failures)
        if not empty:
            break
        if time.monotonic() > deadline:
            pytest.fail("dashboard queries return no series:\n" + "\n".join(empty))
        time.sleep(2)
