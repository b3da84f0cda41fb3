"""Kafka clients: how every client of watchfloor is built and authenticates.

``security`` turns Settings into client security arguments; ``clients`` holds the client
helpers. The worker (``streams``), the operator commands (``ops``), the simulator and the
evaluation all get their clients here, so none can be built without the security
settings. May import ``watchfloor.settings`` and ``watchfloor.core`` only.
"""
