"""Escaping for human-facing output: terminals, logs read by people, error messages.

Values that reach an operator's screen (entity ids, reasons, agency names, file contents
quoted in errors) may come from a hostile sensor. Printed raw, an ANSI escape clears the
screen and draws a fake line; a bidi override (U+202E) makes ``exe.txt`` read as
``txt.exe``; a carriage return overwrites what was printed before it. :func:`escape` makes
every such character visible instead, as a Python-style escape, so what the operator
reads is exactly what was sent.
"""

from __future__ import annotations

from typing import Any


def _escape_char(ch: str) -> str:
    if ch == "\\":
        return "\\\\"
    if ch.isprintable():
        return ch
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escape(value: Any) -> str:
    """``value`` as text safe to print on a terminal: non-printable characters escaped.

    Printable text (any script, accents, emoji) is unchanged; controls, DEL, C1, ANSI
    escapes, bidi controls and separators become ``\\xNN``/``\\uNNNN``; a backslash is
    doubled so an escape cannot be faked.

    >>> escape("10.0.0.1")
    '10.0.0.1'
    >>> escape("Zoë Ørsted 東京")
    'Zoë Ørsted 東京'
    >>> print(escape("\\x1b[2J\\x1b[31mCRITICAL\\r"))
    \\x1b[2J\\x1b[31mCRITICAL\\x0d
    >>> print(escape("invoice\\u202etxt.exe"))
    invoice\\u202etxt.exe
    >>> print(escape("a\\\\x1b"))
    a\\\\x1b
    """
    text = value if type(value) is str else str(value)
    # Fast path: plain ASCII identifiers (nearly every value) need no per-character work.
    if text.isascii() and text.isprintable() and "\\" not in text:
        return text
    return "".join(_escape_char(ch) for ch in text)


def escape_line(value: Any, limit: int = 1000) -> str:
    """:func:`escape`, cut to ``limit`` characters with a marker saying how much was cut.

    >>> escape_line("x" * 12, limit=5)
    'xxxxx…(+7 more)'
    """
    text = escape(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…(+{len(text) - limit} more)"


def escape_json(text: str) -> str:
    """JSON text with every non-printable character written as a JSON ``\\u`` escape.

    Still the same JSON (a parser reads the same values), but safe on a terminal: JSON
    encoders escape C0 controls already, not DEL, C1 or bidi controls.

    >>> print(escape_json('{"id": "a\u202eb\x7f"}'))
    {"id": "a\\u202eb\\u007f"}
    """
    if text.isascii() and text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable() or ch == "\n":
            out.append(ch)
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:  # astral: a UTF-16 surrogate pair, as JSON spells it
            code = ord(ch) - 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
    return "".join(out)


__all__ = ["escape", "escape_json", "escape_line"]
