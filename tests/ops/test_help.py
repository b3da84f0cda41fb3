"""Every option of every sub-command says what it does and what it defaults to."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from tests.ops.test_cli import cli
from watchfloor.ops.cli import build_parser

_NO_HELP_NEEDED = (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)


def _parsers(
    parser: argparse.ArgumentParser, path: str = "watchfloor"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


PARSERS = dict(_parsers(build_parser()))


def _name(action: argparse.Action) -> str:
    return "/".join(action.option_strings) or action.dest


@pytest.mark.parametrize("path", sorted(PARSERS))
def test_every_option_has_help_and_shows_its_default(path: str) -> None:
    parser = PARSERS[path]
    formatter = parser._get_formatter()
    missing_help, missing_default = [], []
    for action in parser._actions:
        if isinstance(action, _NO_HELP_NEEDED):
            continue
        if not action.help or action.help == argparse.SUPPRESS:
            missing_help.append(_name(action))
            continue
        shown = formatter._expand_help(action)  # the text --help prints for it
        default = action.default
        if default in (None, False, argparse.SUPPRESS):
            continue
        forms = {str(default), f"{default:g}" if isinstance(default, float) else str(default)}
        if not any(f in shown.replace(",", "") for f in forms):
            missing_default.append(f"{_name(action)} (default {action.default!r}): {shown!r}")
    assert not missing_help, f"{path}: options without help text: {missing_help}"
    assert not missing_default, f"{path}: defaults not shown: {missing_default}"


def test_the_help_a_person_reads_shows_the_default() -> None:
    r = cli("simulate", "--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())  # argparse wraps help to the terminal's width
    assert "--seed SEED simulator seed: the same seed gives the same stream (default: 1)" in text
    r = cli("kafka", "--help")
    text = " ".join(r.stdout.split())
    assert "--port PORT the broker's client port (default: 9092)" in text
