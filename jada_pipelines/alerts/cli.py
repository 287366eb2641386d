"""`jada` subcommands for this domain. Keep imports inside the handlers: every command loads this."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this domain's subcommands to the `jada` parser."""
