"""``agentinstruct build SPLIT`` and ``agentinstruct eval SPLIT``: collect trajectories, or score a model.

Each split's builder adds its own options, so the options after SPLIT are
parsed in a second step by a parser made for that split's builder
(``agentinstruct build os --help`` lists them).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentinstruct.builders import BUILDERS, builder_class
from agentinstruct.builders.base import EMBEDDED, Builder
from agentinstruct.filters.base import FilterPipeline, FormatErrorFilter, LengthFilter, RewardFilter

# The engine (openai, datasets) is imported by the handlers, so that `agentinstruct --help` starts at once.
if TYPE_CHECKING:
    from agentinstruct.collection.agent import AgentClient
    from agentinstruct.collection.collect import Outcome
    from agentinstruct.collection.evaluate import Metric

PARTIAL = 3
"""Exit status when some episodes errored: the data written is partial; the same command resumes."""


def _run_options(p: argparse.ArgumentParser, cls: type[Builder]) -> None:
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="build file (YAML) with this command's options by name; flags given here override it")
    # A split that ships tasks builds them when no source is named; any other needs one (checked in _parse).
    default = EMBEDDED if cls.embedded_tasks else None
    p.add_argument("--tasks", metavar="SRC", default=default,
                   help="task source: a file, or a name the builder knows "
                   + (f"(default {EMBEDDED}: the tasks shipped with the package)" if default else "(required)"))
    p.add_argument("--concurrency", type=int, default=4, metavar="N", help="episodes at once (default 4)")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N tasks (after --seed's shuffle)")
    p.add_argument("--builder", metavar="MODULE:CLASS", help="use this Builder class instead of the registered one")


def _split_parser(command: str, split: str, cls: type[Builder], *, config: bool = False) -> argparse.ArgumentParser:
    from agentinstruct.collection.agentargs import add_model_options
    from agentinstruct.collection.executors import EXECUTORS
    from agentinstruct.collection.runner import POLICIES

    p = argparse.ArgumentParser(prog=f"agentinstruct {command} {split}")
    _run_options(p, cls)
    if command == "build":
        p.add_argument("--out", type=Path, metavar="DIR", help="dataset dir (journal in DIR/.journal; required)")
        p.add_argument("--policy", choices=POLICIES, default="model",
                       help="model: the agent acts; reference: the task's reference solution runs and the model "
                       "writes only the thoughts (default model)")
        p.add_argument("--seed", type=int, help="shuffle the tasks with this seed; also sent as the sampling seed")
        p.add_argument("--attempts", type=int, default=1, metavar="N",
                       help="episodes per task, each with its own sampling seed (rejection sampling; default 1)")
        p.add_argument("--name", metavar="NAME",
                       help="this build's name: builds with other names (task sources, policies, models) add to the "
                       "same split, each with its own journal (default main, or build-K for the K-th entry of a "
                       "build file's builds list)")
        p.add_argument("--executor", choices=EXECUTORS, default="local",
                       help="where episodes run: local (this process) or ray (the nodes of a Ray cluster, each with "
                       "its own environments; journal and data stay here; needs the ray extra) (default local)")
        p.add_argument("--ray-address", default="auto", metavar="ADDR",
                       help="the Ray cluster's head, HOST:PORT (default auto: the cluster this machine belongs to)")
        f = p.add_argument_group("filters (dropped trajectories stay in the `all` config with their reason)")
        f.add_argument("--reward-bar", type=float, help=f"keep reward >= this (default: the split's, {cls.reward_bar})")
        f.add_argument("--max-format-errors", type=int, metavar="N", help="drop trajectories with more format errors")
        f.add_argument("--max-chars", type=int, metavar="N", help="drop conversations longer than N characters")
        f.add_argument("--max-agent-turns", type=int, metavar="N", help="drop trajectories with more agent turns")
    else:
        p.add_argument("--out", type=Path, metavar="DIR", help="write DIR/eval-SPLIT.jsonl (and journal there)")
    # with a build file, a required option may come from the file: _parse checks it after parsing
    add_model_options(p, required=command == "eval" and not config)
    cls.add_arguments(p)
    return p


@dataclass
class Run:
    """One build (or evaluation) as the command line and the build file resolved it."""

    opts: argparse.Namespace
    builder: Builder
    config: dict[str, Any]
    """Every setting it runs with (``buildfile.resolved``): written to the journal header and beside the data."""


def _parse(command: str, args: argparse.Namespace) -> list[Run]:
    """The runs the options describe: one, or one per entry of the build file's ``builds`` list."""
    from agentinstruct.builders.options import option_values
    from agentinstruct.collection.buildfile import apply_build, load_build_file, resolved

    # The builder is known only once SPLIT (and --builder, maybe from the file) is: peek, then parse with its options.
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--builder")
    peek.add_argument("--config", type=Path)
    known = peek.parse_known_args(args.options)[0]
    builds = load_build_file(known.config, args.split) if known.config else [{}]
    runs = []
    for i, build in enumerate(builds):
        where = f"{known.config}" + (f": builds[{i}]" if len(builds) > 1 else "")
        cls = builder_class(args.split, known.builder or build.get("builder"))
        parser = _split_parser(command, args.split, cls, config=known.config is not None)
        apply_build(parser, build, where)
        opts = parser.parse_args(args.options)
        opts.split = args.split
        if command == "build" and opts.name is None:
            opts.name = "main" if len(builds) == 1 else f"build-{i}"
        if command == "build" and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", opts.name):
            parser.error(f"--name {opts.name!r}: use letters, digits, '_', '.' and '-' (it names a journal file)")
        for name in ("tasks", "out") if command == "build" else ("tasks", "model"):
            if getattr(opts, name) is None:
                parser.error(f"--{name} is required (on the command line or as '{name}:' in the build file)")
        builder = cls.from_args(opts)
        options = option_values(builder.options) if builder.options is not None else None
        runs.append(Run(opts, builder, resolved(parser, opts, args.split, options)))
    if command == "build":
        places = [(str(r.opts.out), r.opts.name) for r in runs]
        for out, name in sorted({p for p in places if places.count(p) > 1}):
            raise ValueError(f"{known.config}: several builds of split {args.split} in {out} are named {name!r}; "
                             "give each its own name (each build of a split keeps its own journal)")
    return runs


def _pipeline(opts: argparse.Namespace, builder: Builder) -> FilterPipeline:
    steps = [RewardFilter(builder.reward_bar if opts.reward_bar is None else opts.reward_bar)]
    if opts.max_format_errors is not None:
        steps.append(FormatErrorFilter(opts.max_format_errors))
    if opts.max_chars is not None or opts.max_agent_turns is not None:
        steps.append(LengthFilter(opts.max_chars, opts.max_agent_turns))
    return FilterPipeline(steps)


def _report_errors(outcome: Outcome) -> int:
    if not outcome.errors:
        return 0
    first = next(iter(outcome.errors.values()))
    print(f"{len(outcome.errors)} episodes errored (first: {first}); run the same command again to retry them",
          file=sys.stderr)
    return PARTIAL


def _report_skipped(outcome: Outcome, out: Path, shown: int = 10) -> None:
    from agentinstruct.collection.collect import SKIPPED_REPORT
    from agentinstruct.datasetdir.layout import REPORTS

    if not outcome.skipped:
        return
    print(f"skipped {len(outcome.skipped)} tasks with no reference solution (no trajectory is derived for them; "
          f"all listed in {out / REPORTS / f'{SKIPPED_REPORT}.json'}):")
    reasons = list(outcome.skipped.values())
    for reason in reasons[:shown]:
        print(f"  {reason}")
    if len(reasons) > shown:
        print(f"  ... and {len(reasons) - shown} more")


def _build(args: argparse.Namespace) -> int:
    from agentinstruct.collection.agentargs import run_with_agent
    from agentinstruct.collection.collect import build_split
    from agentinstruct.collection.executors import make_executor

    status = 0
    for run in _parse("build", args):
        opts, builder = run.opts, run.builder
        if opts.policy == "model" and not opts.model:
            raise ValueError("--policy model needs --model (or use --policy reference)")
        pipeline = _pipeline(opts, builder)
        tasks = builder.load_tasks(opts.tasks)
        outcome = run_with_agent(opts, lambda agent: build_split(
            builder, tasks, opts.out, pipeline=pipeline, policy=opts.policy, agent=agent,
            concurrency=opts.concurrency, seed=opts.seed, limit=opts.limit, attempts=opts.attempts, name=opts.name,
            source=str(opts.tasks), config=run.config, executor=make_executor(opts.executor, opts.ray_address)))
        scored = len(outcome.records)
        ran = len(outcome.per_episode) + len(outcome.skipped) - outcome.resumed + len(outcome.errors)
        print(f"{builder.split} ({opts.name}): {outcome.episodes} episodes ({outcome.resumed} from the journal, {ran} run in "
              f"{outcome.seconds:.1f}s): {scored} scored, {outcome.kept} kept, {outcome.failed} failed, "
              f"{len(outcome.errors)} errored, {len(outcome.skipped)} skipped")
        _report_skipped(outcome, opts.out)
        print("filters: " + pipeline.summary().replace("\n", "; "))
        if scored:
            print(f"wrote {opts.out}: default/{builder.split} {outcome.kept} rows, all/{builder.split} {scored} rows "
                  f"from build {opts.name}")
        status = max(status, _report_errors(outcome))
    return status


def _eval(args: argparse.Namespace) -> int:
    from agentinstruct.collection.agentargs import run_with_agent
    from agentinstruct.collection.evaluate import evaluate_split

    status = 0
    for run in _parse("eval", args):
        opts, builder = run.opts, run.builder
        tasks = builder.load_tasks(opts.tasks)

        async def go(agent: AgentClient) -> tuple[str, Metric, Outcome]:
            result, outcome = await evaluate_split(builder, tasks, agent, out=opts.out, concurrency=opts.concurrency,
                                                   limit=opts.limit, config=run.config)
            return agent.model, result, outcome  # --model local: the name the local server gave

        model, result, outcome = run_with_agent(opts, go)
        print(f"{builder.split} ({model}): {result}")
        if opts.out is not None:
            print(f"per-task results: {opts.out / f'eval-{builder.split}.jsonl'}")
        status = max(status, _report_errors(outcome))
    return status


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``build`` and ``eval`` to the CLI."""
    for name, func, text in (
        ("build", _build, "collect, score and filter trajectories of one split into a dataset dir (resumable)"),
        ("eval", _eval, "run a model on a split's tasks and print the split's metric"),
    ):
        p = sub.add_parser(name, help=text, description=f"{text}. Run 'agentinstruct {name} SPLIT --help' for "
                           "the options, the split's builder's included.")
        p.add_argument("split", metavar="SPLIT", help=f"registered: {', '.join(BUILDERS)}")
        p.add_argument("options", nargs=argparse.REMAINDER, help="options for the split (see SPLIT --help)")
        p.set_defaults(func=func)
