"""``watchfloor evaluate``: detector quality on the simulator's labelled scenario.

The simulator (``watchfloor/simulation/``) labels every event with the threat it
belongs to, if any (``sim.threat``/``sim.campaign``), and the benign look-alike pattern
it follows (``sim.lookalike``). This module runs such a scenario through the detectors and
compares what they found with the labels. Detectors never see the labels: the scoring
(:mod:`watchfloor.evaluation.scoring`) is the only code that reads them.

Two ways to run it:

* **broker mode** (the default): a fresh namespace of topics (``eval-<seed>-<hex>.`` in
  front of every topic name of ``topics.yaml``) is created on the broker, a real worker
  process is started on it with a fresh app id, the scenario is published as fast as the
  broker takes it, and once the worker has consumed every event the namespace's internal
  detections topic is read back and scored. This measures what production would do,
  partitioning and batching included.
* **offline mode** (``--offline``): the same events go through the in-process core
  (:class:`~watchfloor.streams.runtime.Runtime`'s
  :class:`~watchfloor.streams.pipeline.EventProcessor`) in seconds; used for tuning and
  for the regression test of detector quality.

The definitions of the figures and the targets are in :mod:`watchfloor.evaluation.scoring`;
the two runs in :mod:`watchfloor.evaluation.runner`. This module keeps the public names of
both where the CLI and the tests import them.
"""

from watchfloor.evaluation.runner import (
    DEFAULT_DAYS,
    DEFAULT_EVENTS,
    DEFAULT_SEED,
    configured_detectors,
    evaluate_broker,
    evaluate_offline,
    namespaced_topics,
    partition_of,
    run_offline,
    scenario,
)
from watchfloor.evaluation.scoring import (
    TARGET_FALSE_PER_10K,
    TARGET_PRECISION,
    TARGET_RECALL,
    EvaluationResult,
    Label,
    LabelledEvent,
    Row,
    detections_of_alerts,
    score_run,
    sim_label,
)

__all__ = [
    "DEFAULT_DAYS",
    "DEFAULT_EVENTS",
    "DEFAULT_SEED",
    "TARGET_FALSE_PER_10K",
    "TARGET_PRECISION",
    "TARGET_RECALL",
    "EvaluationResult",
    "Label",
    "LabelledEvent",
    "Row",
    "configured_detectors",
    "detections_of_alerts",
    "evaluate_broker",
    "evaluate_offline",
    "namespaced_topics",
    "partition_of",
    "run_offline",
    "scenario",
    "score_run",
    "sim_label",
]
