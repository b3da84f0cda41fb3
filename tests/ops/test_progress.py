"""Progress lines: redrawn on a terminal, plain lines in a log file, silent with --quiet."""

from __future__ import annotations

import io

from watchfloor.ops.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_file_gets_plain_lines_without_control_characters() -> None:
    out = io.StringIO()
    p = Progress("sent", "events", stream=out, every=0.0)
    for done in (100, 200, 300):
        p(done, 300, done / 100)
    p.close()
    lines = out.getvalue().splitlines()
    assert lines == ["sent 100/300 events (100/s, 2 s left)",
                     "sent 200/300 events (100/s, 1 s left)",
                     "sent 300/300 events (100/s)"]  # fmt: skip
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


def test_a_log_file_gets_a_line_every_few_seconds_and_the_last_one() -> None:
    out = io.StringIO()
    p = Progress("sent", "events", stream=out, every=3600.0)
    for done in range(1, 1001):
        p(done, 1000, done / 100)
    assert out.getvalue().splitlines() == ["sent 1/1,000 events (100/s, 10 s left)",
                                           "sent 1,000/1,000 events (100/s)"]  # fmt: skip


def test_a_terminal_line_is_redrawn_in_place_and_ended() -> None:
    out = Terminal()
    p = Progress("scored", "events", stream=out)
    p(5, 0, 1.0)  # total unknown (a streamed capture)
    p.close()
    assert out.getvalue() == "\rscored 5 events (5/s)\x1b[K\n"


def test_quiet_prints_nothing() -> None:
    out = io.StringIO()
    p = Progress("sent", "events", stream=out, quiet=True, every=0.0)
    p(1, 2, 1.0)
    p.close()
    assert out.getvalue() == ""


def test_evaluate_quiet_prints_nothing_on_stderr(tmp_path) -> None:
    from tests.ops.test_cli import cli

    out = tmp_path / "e.json"
    r = cli("evaluate", "--offline", "--events", "10", "--quiet", "--output", str(out))
    assert r.returncode == 1  # no campaign in 10 events: no target met
    assert r.stderr == ""
    r = cli("evaluate", "--offline", "--events", "10", "--output", str(out))
    assert r.stderr.splitlines()[0] == "simulating 10 events (seed 7) …"
