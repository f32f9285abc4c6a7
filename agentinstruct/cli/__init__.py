"""The ``agentinstruct`` command line: one parser, subcommands registered by the modules in COMMANDS."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from collections.abc import Callable
from typing import Any

from agentinstruct import __version__

# Each module defines register(subparsers); add a module here to add its commands. A module imports the heavy
# libraries (openai, datasets, torch) in its handlers, not at its top, so that `agentinstruct --help` starts at once;
# options whose choices or defaults live in a heavy module are added on first use (CommandParser).
COMMANDS: tuple[str, ...] = (
    "agentinstruct.cli.data",
    "agentinstruct.cli.demo",
    "agentinstruct.cli.build",
    "agentinstruct.cli.evaluate",
    "agentinstruct.cli.mix",
    "agentinstruct.cli.pairs",
    "agentinstruct.cli.publish",
    "agentinstruct.cli.filtering",
    "agentinstruct.cli.self_instruct",
    "agentinstruct.cli.serve",
    "agentinstruct.cli.record",
)


class CommandParser(argparse.ArgumentParser):
    """A subcommand's parser; ``sub.add_parser(name, arguments=add)`` defers ``add(parser)`` until the subcommand
    is parsed (its own ``--help`` included), so registering it imports nothing.

    Example:
        >>> sub = argparse.ArgumentParser().add_subparsers(parser_class=CommandParser)
        >>> sub.add_parser("hi", arguments=lambda p: p.add_argument("--n", type=int)).parse_args(["--n", "2"]).n
        2
    """

    def __init__(self, *args: Any, arguments: Callable[[argparse.ArgumentParser], None] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._arguments = arguments

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> tuple[argparse.Namespace, list[str]]:
        """Add the deferred arguments (once), then parse."""
        if self._arguments is not None:
            add, self._arguments = self._arguments, None
            add(self)
        return super().parse_known_args(args, namespace)


def build_parser() -> argparse.ArgumentParser:
    """The full CLI parser.

    Example:
        >>> build_parser().parse_args(["validate", "x.jsonl"]).paths
        [PosixPath('x.jsonl')]
    """
    parser = argparse.ArgumentParser(prog="agentinstruct", description=__doc__)
    parser.add_argument("--version", action="version", version=f"agentinstruct {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=CommandParser)
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def _terminated(signum: int, frame: object) -> None:
    """``kill PID`` unwinds the command as Ctrl-C does, so a model server it started is stopped too: servers run
    in sessions of their own (their workers go with them), so a plain SIGTERM left them running, holding their
    memory and cores."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Run one command; user errors print one clear message (no traceback) and exit non-zero."""
    args = build_parser().parse_args(argv)
    from agentinstruct.records.validation import InvalidRecords  # after parsing: --help never needs it

    signal.signal(signal.SIGTERM, _terminated)
    try:
        return args.func(args)
    except InvalidRecords as exc:
        print(exc.report.render(limit=50), file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError, PermissionError) as exc:
        print(f"agentinstruct {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130

