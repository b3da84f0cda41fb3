"""Issue 9 item 8: what an operator's terminal shows is what was sent, never obeyed.

The probe cleared the screen and drew a fake CRITICAL line through an entity id that
`watchfloor tail` printed raw."""

from __future__ import annotations

import json

from watchfloor.core.sanitize import escape, escape_json
from watchfloor.ops.audit_cli import format_delivery
from watchfloor.ops.cli import format_alert

ATTACK = "10.0.0.1\x1b[2J\x1b[H\x1b[31m[CRITICAL] 2026-11-24 wf-fake v1\x1b[0m\r"
BIDI = "invoice\u202efdp.exe"


def _alert(entity_id: str, reason: str) -> dict:
    return {
        "alert_id": "wf-1",
        "version": 1,
        "severity": "low",
        "score": 0.5,
        "updated_at": "2026-11-24T21:04:05.000Z",
        "domains": ["network"],
        "entities": [{"type": "ip", "id": entity_id}],
        "detections": [{"detector": "port_scan", "reason": reason}],
    }


def _terminal_safe(text: str) -> bool:
    return all(ch.isprintable() or ch == "\n" for ch in text)


def test_tail_escapes_control_sequences_in_ids_and_reasons() -> None:
    line = format_alert(_alert(ATTACK, "scan of " + BIDI))
    assert _terminal_safe(line)
    assert "\\x1b[2J" in line and "\\x0d" in line and "\\u202e" in line
    assert line.startswith("[LOW     ]")  # the only severity the operator sees
    assert line.count("\n") == 1  # no injected line


def test_tail_json_stays_json_and_terminal_safe() -> None:
    raw = json.dumps(_alert(ATTACK, BIDI), ensure_ascii=False)
    shown = escape_json(raw)
    assert _terminal_safe(shown)
    assert json.loads(shown) == json.loads(raw)


def test_audit_lines_are_escaped() -> None:
    line = escape(
        format_delivery(
            {"time": "t", "alert_id": ATTACK, "version": 1, "agency": "cert",
             "agreement": BIDI, "kind": "alert", "shared": [], "pseudonymised": [],
             "redacted": []}
        )
    )
    assert _terminal_safe(line) and "\\x1b" in line


def test_printable_text_is_unchanged() -> None:
    assert escape("Zoë Ørsted 東京 10.0.0.1") == "Zoë Ørsted 東京 10.0.0.1"
    assert escape("a\\x1b") == "a\\\\x1b"  # a spelled-out escape cannot pass for a real one
