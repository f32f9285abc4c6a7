"""``agentinstruct demo``: the main job on embedded defaults, with no keys and no network.

It builds every registered split whose builder ships embedded tasks (``Builder.embedded_tasks``: all six
today), each episode in the split's own environment (a sandbox, a fresh database, the embedded graph, a text game,
the shop, a recorded web page's rounds of choices), with SmolLM2-135M-Instruct served by a local llama.cpp server
(``agentinstruct.collection.localmodel``). A split whose episodes are long builds only ``Builder.demo_tasks`` of its
tasks and has SmolLM2 take part in ``Builder.demo_model_tasks`` of them. Per split:

- model policy: SmolLM2 is the agent on the first ``MODEL_EPISODES`` tasks (a 135M model rarely solves one; its
  scored attempts land in the ``all`` config as negative samples);
- reference policy (task derivation) on every task: its reference solution runs in the environment, so the demo
  also yields kept trajectories. SmolLM2 writes the thought before each action of the first
  ``THOUGHT_EPISODES`` tasks; the rest get the builder's template thoughts, which keeps the demo within minutes
  on two cores.

Each run is journaled under ``DIR/.work/SPLIT`` (re-running the demo resumes them); their records go into one
dataset dir, ``DIR``, written with one commit, that ``datasets.load_dataset`` reads.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agentinstruct.builders import BUILDERS, builder_class
from agentinstruct.builders.base import EMBEDDED, Builder, Task
from agentinstruct.filters.base import FilterPipeline, RewardFilter

# What the demo runs (openai, datasets, the local server) is imported when it runs, so that `agentinstruct --help`
# starts at once.
if TYPE_CHECKING:
    from agentinstruct.collection.collect import Outcome

WORK = ".work"
# The two caps bound the demo's time: on two cores a SmolLM2 call takes 1-4 s, an episode it acts in up to the
# split's max turns of them (25 s on the kg split), and the builds without it take seconds.
MODEL_EPISODES = 2
"""Episodes per split where SmolLM2 acts."""
THOUGHT_EPISODES = 8
"""Reference episodes per split whose thoughts SmolLM2 writes (a call per action); the split's other tasks get
the builder's template thoughts."""


@dataclass(frozen=True)
class DemoBuild:
    """One build of a split in the demo, journaled in ``DIR/.work/SPLIT/NAME``."""

    name: str
    label: str
    """How the summary names it."""
    policy: str
    model: bool
    """Whether SmolLM2 takes part: it writes the thoughts (reference policy) or acts (model policy)."""
    tasks: list[Task]
    limit: int | None = None


def demo_tasks(builder: Builder, tasks: list[Task]) -> list[Task]:
    """The embedded tasks the demo builds: all of them, or ``builder.demo_tasks`` of them spread evenly over the
    list (every k-th), so a split whose tasks come grouped by kind shows every kind.

    Example:
        >>> class Long(Builder): demo_tasks = 3
        >>> [t.task_id for t in demo_tasks(Long, [Task(f"t{i}", "q", "package") for i in range(9)])]
        ['t0', 't3', 't6']
    """
    n = builder.demo_tasks
    if n is None or n >= len(tasks):
        return tasks
    step = len(tasks) // n
    return tasks[::step][:n]


def demo_builds(tasks: list[Task], model_tasks: int | None = None) -> list[DemoBuild]:
    """The demo's builds of one split's embedded tasks: the reference policy on every task (SmolLM2's thoughts on
    the first ``THOUGHT_EPISODES``, template thoughts on the rest), SmolLM2 acting on the first ``MODEL_EPISODES``.

    Example:
        >>> builds = demo_builds([Task(f"t{i}", "Count the files.", "package") for i in range(10)])
        >>> [(b.label, b.policy, b.model, len(b.tasks[:b.limit])) for b in builds]  # doctest: +NORMALIZE_WHITESPACE
        [('reference policy (thoughts: SmolLM2|template)', 'reference', True, 8),
         ('reference policy (thoughts: template)', 'reference', False, 2),
         ('model policy (SmolLM2 acts)', 'model', True, 2)]
        >>> [b.name for b in demo_builds([Task("t0", "Count the files.", "package")])]  # nothing left for templates
        ['reference', 'model']
        >>> [(b.name, b.limit) for b in demo_builds([Task(f"t{i}", "q", "package") for i in range(4)], 1)]
        [('reference', 1), ('reference-template', None), ('model', 1)]
        >>> [b.name for b in demo_builds([Task(f"t{i}", "q", "package") for i in range(4)], 0)]  # no model calls
        ['reference-template']
    """
    thoughts = THOUGHT_EPISODES if model_tasks is None else min(THOUGHT_EPISODES, model_tasks)
    acting = MODEL_EPISODES if model_tasks is None else min(MODEL_EPISODES, model_tasks)
    builds = []
    if thoughts:
        builds.append(DemoBuild("reference", "reference policy (thoughts: SmolLM2|template)", "reference", True,
                                tasks, thoughts))
    if tasks[thoughts:]:
        builds.append(DemoBuild("reference-template", "reference policy (thoughts: template)", "reference", False,
                                tasks[thoughts:]))
    if acting:
        builds.append(DemoBuild("model", "model policy (SmolLM2 acts)", "model", True, tasks, acting))
    return builds


def embedded_splits() -> list[str]:
    """The registered splits whose builders ship embedded tasks, in registry order: the splits the demo builds.

    Example:
        >>> embedded_splits()
        ['os', 'db', 'kg', 'alfworld', 'webshop', 'mind2web']
    """
    return [split for split in BUILDERS if builder_class(split).embedded_tasks]


def _line(name: str, outcome: Outcome) -> str:
    rewards = [r["reward"] for r in outcome.records]
    mean = sum(rewards) / len(rewards) if rewards else 0.0
    return (f"  {name}: {outcome.episodes} episodes, {outcome.kept} kept, mean reward {mean:.2f}"
            + (f", {len(outcome.errors)} errored" if outcome.errors else ""))


async def _collect(splits: dict[str, tuple[Builder, list[Task]]], out: Path, base_url: str, model: str,
                   concurrency: int) -> dict[str, list[tuple[DemoBuild, Outcome]]]:
    from agentinstruct.collection.agent import AgentClient
    from agentinstruct.collection.collect import build_split

    built: dict[str, list[tuple[DemoBuild, Outcome]]] = {}
    # Greedy decoding and short replies: the same demo gives the same data, in minutes on two cores.
    async with AgentClient(model, base_url=base_url, temperature=0.0, max_tokens=160, seed=0, timeout=300.0) as agent:
        for split, (builder, tasks) in splits.items():
            pipeline = FilterPipeline([RewardFilter(builder.reward_bar)])
            # SmolLM2's episodes go one at a time: the llama.cpp server keeps the last conversation's prefix, so
            # each turn reads only what is new; two interleaved episodes are each read in full on every turn
            # (8x slower for two 15-turn episodes on two cores).
            built[split] = [
                (run, await build_split(builder, run.tasks, out / WORK / split / run.name, pipeline=pipeline,
                                        policy=run.policy, agent=agent if run.model else None,
                                        concurrency=1 if run.model else concurrency, limit=run.limit))
                for run in demo_builds(tasks, builder.demo_model_tasks)
            ]
    return built


def _demo(args: argparse.Namespace) -> int:
    import asyncio

    from agentinstruct.collection.localmodel import MODEL_NAME, local_server
    from agentinstruct.datasetdir.release import write_splits

    splits: dict[str, tuple[Builder, list[Task]]] = {}
    for split in embedded_splits():
        builder = builder_class(split)()  # through the registry: the library imports no split's package by name
        splits[split] = (builder, demo_tasks(builder, builder.load_tasks(EMBEDDED)))
    print("demo: " + ", ".join(f"{split} ({len(tasks)} embedded tasks, {builder.backend})"
                               for split, (builder, tasks) in splits.items())
          + f"; {MODEL_NAME} on a local llama.cpp server", file=sys.stderr)
    with local_server() as (base_url, model):
        built = asyncio.run(_collect(splits, args.out, base_url, model, args.concurrency))
    # One dir, one commit: per split the derived trajectories first, then the model's own attempts, numbered anew.
    records = {split: [dict(r, id=f"{split}_{n}") for n, r in enumerate(r for _, o in runs for r in o.records)]
               for split, runs in built.items()}
    write_splits(args.out, records)
    width = max(len(run.label) for runs in built.values() for run, _ in runs)
    for split, runs in built.items():
        builder, tasks = splits[split]
        print(f"{split}: {len(tasks)} embedded tasks, {builder.backend}")
        for run, outcome in runs:
            print(_line(run.label.ljust(width), outcome))
    kept = ", ".join(f"{split} {sum(1 for r in rs if r['filter']['kept'])}" for split, rs in records.items())
    every = ", ".join(f"{split} {len(rs)}" for split, rs in records.items())
    print(f"dataset dir {args.out}: default {kept} rows (kept); all {every} rows (every scored episode)")
    first = next(iter(records))
    print(f'load it: datasets.load_dataset("{args.out}", split="{first}")   '
          f'# every episode: load_dataset("{args.out}", "all", split="{first}")')
    return 3 if any(outcome.errors for runs in built.values() for _, outcome in runs) else 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``demo`` to the CLI."""
    p = sub.add_parser("demo", help="build every split that ships embedded tasks with a local model (no keys, no "
                       "network)")
    p.add_argument("--out", type=Path, default=Path("demo-out"), help="dataset dir to write (default demo-out)")
    p.add_argument("--concurrency", type=int, default=2, metavar="N",
                   help="episodes at once where SmolLM2 takes no part (default 2; its own run one at a time)")
    p.set_defaults(func=_demo)
