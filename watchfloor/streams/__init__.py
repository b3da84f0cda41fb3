"""Streams: the Faust worker on Kafka and nothing else — the app, its batch agents, the
runtime that holds per-partition state, the per-batch scoring core (``pipeline``),
checkpoints, metrics and topic creation. May import ``core``, ``config``, ``settings``,
``kafka``, ``detectors`` and ``alerts``; only ``ops`` and ``evaluation`` import it.
"""
