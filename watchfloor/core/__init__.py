"""The ground floor: the contracts every stage shares.

The event contract (``events``: domains, required fields, examples, entity and link
fields), decoding and validation (``decoding``: ``decode``, ``load_object``, ``parse_ts``,
``InvalidEvent``), the dead-letter record (``deadletter``), the alert field schema that
configuration validates agreements against (``alert_schema``) and the bounded per-entity
table every stateful stage uses (``entity_table``). It imports no other watchfloor package,
so every other package may import it.
"""
