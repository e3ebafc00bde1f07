"""The README's command lines name commands and flags that exist (the README is the product page)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from xaisec.cli.main import COMMANDS, build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_commands() -> list[str]:
    """Every `xaisec ...` line of the README's code blocks, with backslash continuations joined."""
    text = README.read_text()
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
    lines: list[str] = []
    for block in blocks:
        joined = re.sub(r"\\\n\s*", " ", block)
        lines += [ln.split("#")[0].strip() for ln in joined.splitlines() if ln.strip().startswith("xaisec ")]
    inline = re.findall(r"`(xaisec [^`]+)`", text)
    return [ln for ln in lines + inline if ln]


def _subparser(parser: argparse.ArgumentParser, words: list[str]) -> tuple[argparse.ArgumentParser, list[str]]:
    """Walk sub-commands (``bench reproduce``) down to the parser that takes the flags."""
    while words:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or words[0] not in subs[0].choices:
            break
        parser, words = subs[0].choices[words[0]], words[1:]
    return parser, words


COMMAND_LINES = _readme_commands()


def test_the_readme_shows_commands():
    assert len(COMMAND_LINES) >= 5


@pytest.mark.parametrize("line", COMMAND_LINES)
def test_readme_command_exists(line):
    words = line.split()[1:]
    if not words or words[0].startswith("-"):
        return  # `xaisec --help`
    assert words[0] in COMMANDS, f"README names an unknown command: {line}"
    parser, rest = _subparser(build_parser(), words)
    known = {opt for a in parser._actions for opt in a.option_strings}
    for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", " ".join(rest)):
        assert flag in known, f"README uses {flag}, which `{' '.join(words[:2])}` does not take: {line}"
