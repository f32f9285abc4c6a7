"""Collection throughput against an OpenAI-compatible server with a fixed latency, as a ratio to the ideal.

The server (tests/openai_stub.py, in its own process) answers every chat
request after ``--latency`` seconds; each episode of the counter test
builder takes ``TURNS`` model calls. With ``c`` episodes in flight the ideal
is ``c / (latency * TURNS)`` episodes per second; the ratio shows what the
engine (client, event loop, worker threads, journal fsyncs, the final
dataset write) costs on top; ``cpu ms/ep`` is the engine's own CPU per
episode, the figure that bounds throughput when the machine is busy. Runs
``build_split`` in process, as ``agentinstruct build`` does. Each concurrency
runs twice: with the counter's environment calls on the event loop (``inline``,
the builder's ``env_in_thread = False``, as for a split of pure computations)
and in worker threads (``threaded``, as for splits whose calls wait on a
sandbox or a database), so the table shows what the thread hand-offs cost::

    .venv/bin/python benchmarks/bench_collect.py [--latency 0.2] [--concurrency 1 64 256] [--seconds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from counter_builder import CounterBuilder  # noqa: E402  (the test builder lives in tests/)
from openai_stub import spawn  # noqa: E402

import agentinstruct.collection.collect as collect_module  # noqa: E402
from agentinstruct.collection.agent import AgentClient  # noqa: E402
from agentinstruct.collection.collect import build_split  # noqa: E402
from agentinstruct.filters.base import FilterPipeline, RewardFilter  # noqa: E402

TURNS = 2  # add, then answer: the scripted model's path for targets that are not multiples of 5


def task_file(n: int, where: Path) -> Path:
    """n tasks whose scripted episodes take exactly TURNS calls: targets not multiples of 5, and at most 1000 (the
    counter ends an episode past 1000), repeated under distinct task ids when n needs more."""
    targets = [t for t in range(1, 1001) if t % 5]
    path = where / "tasks.json"
    path.write_text(json.dumps([{"id": f"b{i}", "start": 0, "target": targets[i % len(targets)]} for i in range(n)]))
    return path


class ThreadedCounter(CounterBuilder):
    """The counter with its environment calls in worker threads, as the default ``Builder`` runs them."""

    env_in_thread = True


ENVS = {"inline": CounterBuilder, "threaded": ThreadedCounter}


async def run(url: str, tasks: Path, out: Path, concurrency: int, env: str) -> tuple[float, float, int, float]:
    builder = ENVS[env]()
    # This process's CPU while the episodes run: up to the moment the split's write starts.
    write_started: list[float] = []
    write = collect_module.write_split
    collect_module.write_split = lambda *a, **k: (write_started.append(time.process_time()), write(*a, **k))[1]
    try:
        async with AgentClient("stub", base_url=url, max_retries=0) as agent:
            start, cpu = time.perf_counter(), time.process_time()
            outcome = await build_split(builder, builder.load_tasks(str(tasks)), out, agent=agent,
                                        concurrency=concurrency, pipeline=FilterPipeline([RewardFilter(1.0)]),
                                        progress=False)
            elapsed, cpu = time.perf_counter() - start, write_started[0] - cpu
    finally:
        collect_module.write_split = write
    if outcome.errors or len(outcome.records) != outcome.episodes:
        raise SystemExit(f"benchmark run had errors: {list(outcome.errors.values())[:1]}")
    calls = sum(r["agent"]["usage"]["calls"] for r in outcome.records)
    if calls != TURNS * outcome.episodes:
        raise SystemExit(f"expected {TURNS} calls per episode, got {calls / outcome.episodes}")
    return outcome.seconds, elapsed, outcome.episodes, cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--latency", type=float, default=0.2, help="server seconds per request (default 0.2)")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 64, 256])
    p.add_argument("--env", nargs="+", choices=list(ENVS), default=list(ENVS), help="environment call modes to run")
    p.add_argument("--seconds", type=float, default=4.0, help="ideal duration of each run (sets the episode count)")
    args = p.parse_args()
    proc, url = spawn("counter_builder:respond", args.latency)
    try:
        print(f"server latency {args.latency}s, {TURNS} model calls per episode, build_split in process")
        print("eps/s: episodes per second while collecting; total s adds the final dataset write; cpu ms/ep: this "
              "process's CPU per episode while collecting (the server's not included)")
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"{'concurrency':>11} {'env':>8} {'episodes':>8} {'seconds':>8} {'total s':>8} {'eps/s':>8} {'ideal':>8} "
              f"{'ratio':>6} {'cpu ms/ep':>9}")
        for c in args.concurrency:
            ideal = c / (args.latency * TURNS)
            n = max(c, round(ideal * args.seconds))
            for env in args.env:
                with tempfile.TemporaryDirectory() as tmp:
                    seconds, total, episodes, cpu = asyncio.run(run(url, task_file(n, Path(tmp)), Path(tmp) / "out", c,
                                                                    env))
                rate = episodes / seconds
                print(f"{c:>11} {env:>8} {episodes:>8} {seconds:>8.2f} {total:>8.2f} {rate:>8.2f} {ideal:>8.2f} "
                      f"{rate / ideal:>6.2f} {cpu / episodes * 1000:>9.2f}")
        print(f"load average {os.getloadavg()[0]:.1f}")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
