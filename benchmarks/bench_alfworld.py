"""alfworld split: engine steps and episodes per second under the reference policy, games generated per second.

Runs the engine's ``run_episode`` with ``--policy reference`` and template thoughts (no model) over N embedded
games of every task type, so the figures are the environment's own cost: the expert's play, the episode's replay,
scoring. Side by side in the same run: an episode's reset with TextWorld's own translation of the game's PDDL
(as PddlEnv does on every reset) against the memoised translation the builder uses, and the generator's games
per second (planner check included, two workers). Prints the figures and the ratios::

    .venv/bin/python benchmarks/bench_alfworld.py [--games 2] [--generate 2]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import fast_downward

from agentinstruct.builders.alfworld import engine
from agentinstruct.builders.alfworld.builder import AlfworldBuilder
from agentinstruct.builders.alfworld.games import TASK_TYPES
from agentinstruct.builders.alfworld.generate import generate
from agentinstruct.collection.runner import run_episode


def reference_episodes(per_type: int) -> tuple[float, float, float]:
    """(episodes/s, engine steps/s, mean agent turns) of reference episodes on ``per_type`` games of each type."""
    builder = AlfworldBuilder()
    tasks = builder.load_tasks("embedded")
    picked = [t for kind in TASK_TYPES for t in [t for t in tasks if t.payload["task_type"] == kind][:per_type]]
    started = time.perf_counter()
    records = [asyncio.run(run_episode(builder, t, f"alfworld_{i}", policy="reference")) for i, t in enumerate(picked)]
    elapsed = time.perf_counter() - started
    turns = [sum(1 for c in r["conversations"] if c["from"] == "gpt" and c["loss"]) for r in records]
    # Each reference episode plays the game twice (the expert, then the replay): steps counted as played.
    steps = 2 * sum(turns)
    assert all(r["reward"] == 1.0 for r in records), "the expert lost a game"
    return len(records) / elapsed, steps / elapsed, sum(turns) / len(turns)


def reset_seconds(per_type: int) -> tuple[float, float]:
    """Mean seconds of a game's load + reset with TextWorld's translation each time, and memoised."""
    builder = AlfworldBuilder()
    games = [builder._game_file(t).data for kind in TASK_TYPES
             for t in [t for t in builder.load_tasks("embedded") if t.payload["task_type"] == kind][:per_type]]

    def timed() -> float:
        started = time.perf_counter()
        for data in games:
            game = engine.Game(data)
            game.reset()
            game.close()
        return (time.perf_counter() - started) / len(games)

    engine._translated.clear()
    fast_downward.pddl2sas = engine._pddl2sas  # TextWorld's own path: translate on load and again on reset
    try:
        fresh = timed()
    finally:
        fast_downward.pddl2sas = engine._memo_pddl2sas
    engine._translated.clear()
    return fresh, timed()


def games_per_second(per_type: int) -> float:
    started = time.perf_counter()
    made = list(generate(per_type, 0, seed=99))
    return len(made) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=2, help="embedded games per task type (default 2)")
    parser.add_argument("--generate", type=int, default=1, help="games per task type to generate (default 1)")
    args = parser.parse_args()
    fresh, memo = reset_seconds(args.games)
    print(f"load+reset per game: TextWorld's translation {fresh:.2f} s, memoised {memo:.2f} s "
          f"(ratio {fresh / memo:.2f}x)")
    episodes, steps, turns = reference_episodes(args.games)
    print(f"reference policy: {episodes:.3f} episodes/s, {steps:.1f} engine steps/s, mean agent turns {turns:.2f} "
          f"(AgentInstruct's alfworld rows: 13.52)")
    rate = games_per_second(args.generate)
    print(f"generator: {rate:.3f} games/s (planner check included, 2 workers); "
          f"{episodes / rate:.1f} reference episodes per generated game's time")


if __name__ == "__main__":
    main()
