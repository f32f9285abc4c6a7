"""``agentinstruct self-instruct SPLIT``: have a model write new tasks, verify each in the split's environment.

The split's builder does the work (``Builder.self_instruct``); the accepted tasks land in a task file that
``agentinstruct build SPLIT --tasks FILE`` reads. Re-running with the same ``--out`` resumes.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from contextlib import ExitStack
from pathlib import Path

from agentinstruct.agent import AgentRejected
from agentinstruct.builders import BUILDERS, builder_class
from agentinstruct.commands.build import _agent, _endpoint, _model_options
from agentinstruct.localmodel import LocalServerError


def _run(args: argparse.Namespace) -> int:
    cls = builder_class(args.split)
    if not hasattr(cls, "self_instruct"):
        raise ValueError(f"the {args.split} builder has no self-instruct task source")
    p = argparse.ArgumentParser(prog=f"agentinstruct self-instruct {args.split}")
    p.add_argument("--n", type=int, required=True, help="how many accepted tasks the file should hold")
    p.add_argument("--out", type=Path, required=True, metavar="FILE", help="task file to write (resumed if it exists)")
    p.add_argument("--seed", type=int, default=0, help="where the cycle of topics and task types starts (default 0)")
    p.add_argument("--concurrency", type=int, default=4, metavar="N", help="requests at once (default 4)")
    _model_options(p, required=True)
    cls.add_arguments(p)
    opts = p.parse_args(args.options)
    if opts.n < 1:
        raise ValueError(f"--n must be >= 1, got {opts.n}")
    builder = cls.from_args(opts)
    with ExitStack() as stack:
        model, base_url = _endpoint(opts, stack)

        async def go():
            async with _agent(opts, model, base_url) as agent:
                return await builder.self_instruct(agent, opts.n, opts.out, seed=opts.seed,
                                                   concurrency=opts.concurrency)

        try:
            tasks, report = asyncio.run(go())
        except (AgentRejected, LocalServerError) as exc:
            print(f"agentinstruct self-instruct: error: {exc}", file=sys.stderr)
            return 2
    print(f"{args.split}: {report}")
    print(f"wrote {opts.out}; collect with: agentinstruct build {args.split} --tasks {opts.out} ...")
    return 0 if len(tasks) >= opts.n else 1


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``self-instruct`` to the CLI."""
    text = "have a model write new tasks for a split and keep those its environment verifies (resumable)"
    p = sub.add_parser("self-instruct", help=text, description=f"{text}. Run 'agentinstruct self-instruct SPLIT "
                       "--help' for the options.")
    p.add_argument("split", metavar="SPLIT", help=f"registered: {', '.join(BUILDERS)}")
    p.add_argument("options", nargs=argparse.REMAINDER, help="options (see SPLIT --help)")
    p.set_defaults(func=_run)
