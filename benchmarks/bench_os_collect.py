"""os-split collection with real sandboxes against a fixed-latency model server, as a ratio to the ideal.

Each episode of the os builder's embedded tasks runs in its own bubblewrap sandbox (``OsBuilder``, its warm pool
started by the build as ``agentinstruct build os`` does) and takes ``TURNS`` model calls: a shell command
(``ls /etc | wc -l``, run in the sandbox), then an answer, which the task's checker scores in the sandbox. The
server (tests/openai_stub.py, its own process) answers each call after ``--latency`` seconds.

Ideal: latency-bound episodes, ``c / (latency * TURNS)`` episodes per second with ``c`` in flight: what the
episodes would take if sandbox start, the command, the checker and the engine cost nothing. The warm pool starts
sandboxes ahead of need, so their start cost is inside the measured time only where the pool cannot keep up; the
ratio shows what everything costs on top of the model's latency. ``cores busy`` and ``CPU ms/ep`` are the
machine's CPU over the run (all processes, sandboxes included): a build cannot go faster than ``cores / CPU per
episode`` episodes a second, whatever the model's latency::

    .venv/bin/python benchmarks/bench_os_collect.py [--latency 1.0] [--concurrency 8 32] [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from openai_stub import spawn  # noqa: E402  (the test server lives in tests/)

from agentinstruct.builders.os.builder import NEW_PROBLEM, OsBuilder  # noqa: E402
from agentinstruct.builders.os.limits import Limits  # noqa: E402
from agentinstruct.collection.agent import AgentClient  # noqa: E402
from agentinstruct.collection.collect import build_split  # noqa: E402
from agentinstruct.filters.base import FilterPipeline, RewardFilter  # noqa: E402

TURNS = 2
SCRIPT = ["Think: look first.\n\nAct: bash\n\n```bash\nls /etc | wc -l\n```", "Think: that is all.\n\nAct: answer(0)"]


def respond(messages: list[dict]) -> str:
    """The scripted model: a command, then an answer, whatever the task (a pure function of the conversation)."""
    at = max(i for i, m in enumerate(messages) if m["role"] == "user" and m["content"].startswith(NEW_PROBLEM))
    step = sum(1 for m in messages[at:] if m["role"] == "assistant")
    return SCRIPT[min(step, TURNS - 1)]


async def run(url: str, out: Path, concurrency: int, n: int, memory_mb: int) -> tuple[float, int, int]:
    builder = OsBuilder(backend="bubblewrap", limits=Limits(memory_total_mb=memory_mb, disk_mb=memory_mb // 2))
    tasks = builder.load_tasks("embedded")
    async with AgentClient("stub", base_url=url, max_retries=0) as agent:
        # --attempts repeats the embedded tasks (distinct episodes, each in its own sandbox) to reach n episodes.
        attempts = -(-n // len(tasks))
        outcome = await build_split(builder, tasks, out, agent=agent, concurrency=concurrency, attempts=attempts,
                                    limit=-(-n // attempts), pipeline=FilterPipeline([RewardFilter(1.0)]),
                                    progress=False, seed=0)
    if outcome.errors:
        raise SystemExit(f"benchmark run had errors: {list(outcome.errors.values())[:1]}")
    calls = sum(r["agent"]["usage"]["calls"] for r in outcome.records)
    return outcome.seconds, len(outcome.records), calls


def cpu_seconds() -> float:
    """CPU time the whole machine has spent busy (all cores, user + system), from /proc/stat.

    Sandboxes are not this process's children once bubblewrap forks, so the machine's figure is the one that counts
    them all; it also counts whatever else runs, so read it on a quiet machine.
    """
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--latency", type=float, default=1.0, help="server seconds per request (default 1.0)")
    p.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    p.add_argument("--seconds", type=float, default=8.0, help="ideal duration of each run (sets the episode count)")
    # Admission reserves each sandbox's budget, warm ones included: 32 in flight and 32 warm at the default 1 GiB
    # would need 64 GiB, so the default 1 GiB admits about 18 at once on a 24 GiB host (README "Memory").
    p.add_argument("--memory-mb", type=int, default=256,
                   help="memory budget per episode, its tmpfs (half of it) included (default 256: 64 sandboxes fit "
                        "in 16 GiB)")
    args = p.parse_args()
    proc, url = spawn("bench_os_collect:respond", args.latency, [ROOT / "benchmarks"])
    try:
        print(f"os split, bubblewrap sandboxes of {args.memory_mb} MiB each; server latency {args.latency}s, {TURNS} "
              "model calls per episode")
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"{'concurrency':>11} {'episodes':>8} {'seconds':>8} {'eps/s':>8} {'ideal':>8} {'ratio':>6} "
              f"{'calls/ep':>8} {'cores busy':>10} {'CPU ms/ep':>9}")
        for c in args.concurrency:
            ideal = c / (args.latency * TURNS)
            n = max(c, round(ideal * args.seconds))
            with tempfile.TemporaryDirectory() as tmp:
                start, busy = time.perf_counter(), cpu_seconds()
                seconds, episodes, calls = asyncio.run(run(url, Path(tmp) / "out", c, n, args.memory_mb))
                busy, wall = cpu_seconds() - busy, time.perf_counter() - start
            rate = episodes / seconds
            # CPU per episode bounds the rate at cores / cpu: past that, a lower latency cannot make it faster.
            print(f"{c:>11} {episodes:>8} {seconds:>8.2f} {rate:>8.2f} {ideal:>8.2f} {rate / ideal:>6.2f} "
                  f"{calls / episodes:>8.2f} {busy / wall:>10.2f} {1000 * busy / episodes:>9.0f}   "
                  f"(with the dataset write {wall:.1f}s)")
        print(f"load average {os.getloadavg()[0]:.1f}")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
