"""Write deploy/kubernetes/topics-configmap.yaml from the repository's topics.yaml.

    python deploy/kubernetes/render_topics_configmap.py
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEADER = """\
# topics.yaml as a ConfigMap, mounted at /etc/watchfloor/topics.yaml in the worker.
# A verbatim copy of the repository's topics.yaml: tests/integration/test_dashboards.py
# fails when they differ. Regenerate after editing topics.yaml (from the repo root):
#   python deploy/kubernetes/render_topics_configmap.py
apiVersion: v1
kind: ConfigMap
metadata:
  name: watchfloor-topics
  labels:
    app.kubernetes.io/name: watchfloor
data:
  topics.yaml: |
"""


def main() -> None:
    body = (ROOT / "topics.yaml").read_text()
    lines = "".join(f"    {line}".rstrip() + "\n" for line in body.splitlines())
    (ROOT / "deploy/kubernetes/topics-configmap.yaml").write_text(HEADER + lines)


if __name__ == "__main__":
    main()
