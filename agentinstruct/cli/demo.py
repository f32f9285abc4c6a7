"""``agentinstruct demo``: the main job on embedded defaults, with no keys and no network.

It builds the ``os`` split from the 18 tasks shipped in ``builders/os/data``, each episode in its own sandbox,
with SmolLM2-135M-Instruct served by a local llama.cpp server (``agentinstruct.collection.localmodel``):

- model policy: SmolLM2 is the agent on the first 4 tasks (a 135M model rarely solves one; its scored
  attempts land in the ``all`` config as negative samples);
- reference policy (task derivation): each task's reference solution runs in the sandbox and SmolLM2 writes
  the thought before each action, so the demo also yields kept trajectories.

Both runs are journaled under ``DIR/.work`` (re-running the demo resumes them); their records go into one
dataset dir, ``DIR``, that ``datasets.load_dataset`` reads.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from agentinstruct.filters.base import FilterPipeline, RewardFilter

# What the demo runs (openai, datasets, the local server) is imported when it runs, so that `agentinstruct --help`
# starts at once.
if TYPE_CHECKING:
    from agentinstruct.collection.collect import Outcome

WORK = ".work"
MODEL_EPISODES = 4
"""Episodes where SmolLM2 acts: up to 8 turns each, the slow part of the demo on two cores."""


def _line(name: str, outcome: Outcome) -> str:
    rewards = [r["reward"] for r in outcome.records]
    mean = sum(rewards) / len(rewards) if rewards else 0.0
    return (f"  {name}: {outcome.episodes} episodes, {outcome.kept} kept, mean reward {mean:.2f}"
            + (f", {len(outcome.errors)} errored" if outcome.errors else ""))


async def _collect(builder, tasks, out: Path, base_url: str, model: str, concurrency: int) -> dict[str, Outcome]:
    from agentinstruct.collection.agent import AgentClient
    from agentinstruct.collection.collect import build_split

    pipeline = FilterPipeline([RewardFilter(builder.reward_bar)])
    # Greedy decoding and short replies: the same demo gives the same data, in minutes on two cores.
    async with AgentClient(model, base_url=base_url, temperature=0.0, max_tokens=160, seed=0, timeout=300.0) as agent:
        return {
            policy: await build_split(builder, tasks, out / WORK / policy, pipeline=pipeline, policy=policy,
                                      agent=agent, concurrency=concurrency, limit=limit)
            for policy, limit in (("reference", None), ("model", MODEL_EPISODES))
        }


def _demo(args: argparse.Namespace) -> int:
    import asyncio

    from agentinstruct.builders import builder_class
    from agentinstruct.collection.localmodel import MODEL_NAME, local_server
    from agentinstruct.datasetdir.release import write_split

    builder = builder_class("os")()  # through the registry: the library imports no split's package by name
    tasks = builder.load_tasks("embedded")
    print(f"demo: os split, {len(tasks)} embedded tasks, {builder.backend} sandbox, {MODEL_NAME} on a local "
          "llama.cpp server", file=sys.stderr)
    with local_server() as (base_url, model):
        outcomes = asyncio.run(_collect(builder, tasks, args.out, base_url, model, args.concurrency))
    derived, acted = outcomes["reference"], outcomes["model"]
    # One dir: the derived trajectories keep their ids, the model's own attempts follow them.
    records = derived.records + [dict(r, id=f"os_{len(derived.records) + n}") for n, r in enumerate(acted.records)]
    write_split(args.out, "os", records)
    kept = sum(1 for r in records if r["filter"]["kept"])
    print(_line("model policy (SmolLM2 acts)                ", acted))
    print(_line("reference policy (thoughts: SmolLM2|template)", derived))
    print(f"dataset dir {args.out}: default/os {kept} rows (kept), all/os {len(records)} rows (every scored episode)")
    print(f'load it: datasets.load_dataset("{args.out}", split="os")   '
          f'# every episode: load_dataset("{args.out}", "all", split="os")')
    return 3 if derived.errors or acted.errors else 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``demo`` to the CLI."""
    p = sub.add_parser("demo", help="build the os split from embedded tasks with a local model (no keys, no network)")
    p.add_argument("--out", type=Path, default=Path("demo-out"), help="dataset dir to write (default demo-out)")
    p.add_argument("--concurrency", type=int, default=2, metavar="N", help="episodes at once (default 2)")
    p.set_defaults(func=_demo)
