"""The ``agentinstruct`` command line: one parser, subcommands registered by the modules in COMMANDS."""

from __future__ import annotations

import argparse
import importlib
import sys

from agentinstruct import __version__
from agentinstruct.validation import InvalidRecords

# Each module defines register(subparsers); add a module here to add its commands.
COMMANDS: tuple[str, ...] = (
    "agentinstruct.commands.data",
    "agentinstruct.commands.demo",
    "agentinstruct.commands.build",
    "agentinstruct.commands.mix",
    "agentinstruct.commands.publish",
    "agentinstruct.commands.filtering",
    "agentinstruct.commands.self_instruct",
)


def build_parser() -> argparse.ArgumentParser:
    """The full CLI parser.

    Example:
        >>> build_parser().parse_args(["validate", "x.jsonl"]).paths
        [PosixPath('x.jsonl')]
    """
    parser = argparse.ArgumentParser(prog="agentinstruct", description=__doc__)
    parser.add_argument("--version", action="version", version=f"agentinstruct {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; user errors print one clear message (no traceback) and exit non-zero."""
    args = build_parser().parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
