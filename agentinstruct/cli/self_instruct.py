"""``agentinstruct self-instruct SPLIT``: have a model write new tasks, verify each in the split's environment.

The split's builder does the work (``Builder.self_instruct``); the accepted tasks land in a task file that
``agentinstruct build SPLIT --tasks FILE`` reads. Re-running with the same ``--out`` resumes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from agentinstruct.builders import BUILDERS, builder_class
from agentinstruct.builders.base import NoSelfInstruct


def _run(args: argparse.Namespace) -> int:
    from agentinstruct.collection.agentargs import add_model_options, run_with_agent

    cls = builder_class(args.split)
    if not cls.has_self_instruct():
        raise NoSelfInstruct(f"the {args.split} split has no self-instruct task source")
    p = argparse.ArgumentParser(prog=f"agentinstruct self-instruct {args.split}")
    p.add_argument("--n", type=int, required=True, help="how many accepted tasks the file should hold")
    p.add_argument("--out", type=Path, required=True, metavar="FILE", help="task file to write (resumed if it exists)")
    p.add_argument("--seed", type=int, default=0, help="where the cycle of topics and task types starts (default 0)")
    p.add_argument("--concurrency", type=int, default=4, metavar="N", help="requests at once (default 4)")
    add_model_options(p, required=True)
    cls.add_arguments(p)
    opts = p.parse_args(args.options)
    if opts.n < 1:
        raise ValueError(f"--n must be >= 1, got {opts.n}")
    builder = cls.from_args(opts)
    tasks, report = run_with_agent(opts, lambda agent: builder.self_instruct(
        agent, opts.n, opts.out, seed=opts.seed, concurrency=opts.concurrency))
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
