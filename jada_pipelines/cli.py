"""`jada`: re-consent to Google, manage agent tasks, print the health audit.

Each domain registers its own subcommands; handlers import heavy libraries only when they run.
"""

from __future__ import annotations

import argparse
import sys

from jada_pipelines.agents import cli as agents_cli
from jada_pipelines.emulators import cli as emulators_cli
from jada_pipelines.google_api import cli as google_cli
from jada_pipelines.health import cli as health_cli
from jada_pipelines.settings import ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jada", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (google_cli, agents_cli, health_cli, emulators_cli):
        module.register(subparsers)
    _remember_leaves(parser)
    return parser


def _remember_leaves(parser: argparse.ArgumentParser) -> None:
    """Each parser records itself in the namespace it fills; the deepest one chosen writes last, so an
    unknown option is reported with the usage of the command it was typed under (`jada task add`), not
    with the top-level usage."""
    parser.set_defaults(_parser=parser)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in set(action.choices.values()):
                _remember_leaves(child)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:
        args._parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def _load_dotenv() -> None:
    # Like `dagster dev`, read ./.env so `jada` sees the same settings as the runs; the shell's own
    # variables win, as they do for Dagster.
    from dotenv import load_dotenv

    load_dotenv(".env", override=False)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    _load_dotenv()
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"jada: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
