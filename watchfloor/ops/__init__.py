"""Operations tooling: the ``watchfloor`` command line (``cli``), the local KRaft broker
launcher (``kafka_local``), ACLs and credentials (``acls``), the demo (``demo``) and the
audit commands (``audit_cli``). The top floor: it may import every other package, and
nothing imports it.
"""
