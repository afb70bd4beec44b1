"""MkDocs hook: the ``--help`` of ``numpy-rnn`` and of each of its commands, written into the
command-line reference (``api/cli.md``) at the line ``<!-- cli-reference -->``."""
from __future__ import annotations

import os
from unittest import mock

from numpy_rnn.cli import build_parser

PLACEHOLDER = "<!-- cli-reference -->"
PAGE = "api/cli.md"
WIDTH = "100"  # argparse wraps at $COLUMNS


def help_sections() -> str:
    with mock.patch.dict(os.environ, {"COLUMNS": WIDTH}):
        parser = build_parser()
        commands = next(action for action in parser._actions if action.choices and action.dest == "command")
        sections = [("numpy-rnn", parser.format_help())]
        sections += [(f"numpy-rnn {name}", sub.format_help()) for name, sub in commands.choices.items()]
    return "\n".join(f"## `{title}`\n\n```text\n{text.rstrip()}\n```\n" for title, text in sections)


def on_page_markdown(markdown: str, page, **kwargs) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if PLACEHOLDER not in markdown:
        raise ValueError(f"{PAGE}: expected the line {PLACEHOLDER!r}, where the commands' help goes")
    return markdown.replace(PLACEHOLDER, help_sections())
