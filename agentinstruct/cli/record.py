"""``agentinstruct record SPLIT``: tasks in a split's format recorded in a real browser from gold action lists.

The split does the recording (``Builder.record_tasks``; the mind2web builder's is in its ``record`` module): it
serves the site (or uses a URL), plays each gold task in headless Chromium and writes the tasks to ``--out``. The
command takes the split's build options too, like ``agentinstruct serve``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agentinstruct.builders import BUILDERS


def _run(args: argparse.Namespace) -> int:
    from agentinstruct.builders import builder_class

    cls = builder_class(args.split)
    p = argparse.ArgumentParser(prog=f"agentinstruct record {args.split}")
    p.add_argument("--site", required=True, help="a URL, or the name of a site the split ships (mind2web: shop, "
                   "flights, restaurant), served on 127.0.0.1 while recording")
    p.add_argument("--actions", type=Path, required=True, help="the gold action list (JSON) to play")
    p.add_argument("--out", type=Path, required=True, help="file to write the recorded tasks to (.gz: gzipped)")
    cls.add_arguments(p)
    opts = p.parse_args(args.options)
    builder = cls.from_args(opts)
    print(builder.record_tasks(opts.site, opts.actions, opts.out), file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``record`` to the CLI."""
    text = "record tasks in a split's format by playing gold actions in a real browser (mind2web)"
    p = sub.add_parser("record", help=text, description=f"{text}. Run 'agentinstruct record mind2web --help' for "
                       "the options.")
    p.add_argument("split", metavar="SPLIT", choices=list(BUILDERS), help="a registered split that records tasks "
                   "(mind2web)")
    p.add_argument("options", nargs=argparse.REMAINDER, help="options (see SPLIT --help)")
    p.set_defaults(func=_run)
