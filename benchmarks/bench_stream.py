"""Peak memory of writing a split of 10k and of 100k records: streaming keeps it flat, whatever the split's size.

For each size a child process first journals that many synthetic episodes (one record each, 2-4 KB of JSON, made
with ``make_record``; fsync is skipped there, since it only makes the fixture), then a fresh child runs the real
path over them and reports its peak RSS (``ru_maxrss``): ``build_split`` resumes the build (every episode is in the
journal), applies the filters again, streams the records from the journal through validation and into the
Parquet files row group by row group, and commits the dir (stats, plots, card, manifest). A third child only
imports the same modules, to show the fixed part. The ratio of the 100k peak to the 10k peak is what streaming
promises to keep near 1 (holding the records would make it near 10)::

    .venv/bin/python benchmarks/bench_stream.py [--sizes 10000 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from counter_builder import CounterBuilder  # noqa: E402  (the test builder lives in tests/)

WORDS = ("counter target answer value shell file directory list count thought action observation result "
         "because next step check output error line number total reach make add").split()


def _text(rng: random.Random, chars: int) -> str:
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < chars:
        words.append(rng.choice(WORDS) + (str(rng.randrange(1000)) if rng.random() < 0.2 else ""))
    return " ".join(words)


def synthetic_record(n: int, rng: random.Random) -> dict:
    """A valid scored record of 2-4 KB of JSON: the builder's prompt, then agent and environment turns."""
    from agentinstruct.records.record import make_record

    turns = [{"from": "human", "value": _text(rng, 400), "loss": None}, {"from": "gpt", "value": "Ok.", "loss": False},
             {"from": "human", "value": f"Task {n}: " + _text(rng, 200), "loss": None}]
    for _ in range(rng.randrange(2, 5)):
        turns += [{"from": "gpt", "value": "Thought: " + _text(rng, 250) + "\nAction: add(1)", "loss": True},
                  {"from": "human", "value": _text(rng, 200), "loss": None}]
    turns.append({"from": "gpt", "value": "Thought: done.\nAction: answer(1)", "loss": True})
    kept = rng.random() < 0.7
    return make_record(
        id=f"os_{n}", split="os", conversations=turns, task_id=f"c{n}", instruction=turns[2]["value"],
        instruction_source="train_split", reward=1.0 if kept else 0.0, success=kept,
        reward_details={"metric": "success", "components": [{"name": "counter_at_target", "value": float(kept)}],
                        "termination": "answered", "format_errors": 0},
        env={"name": "counter", "version": "1", "backend": "in-process"},
        agent={"model": None, "endpoint_kind": None, "policy": "reference",
               "sampling": {"temperature": None, "top_p": None, "max_tokens": None, "seed": None},
               "usage": {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": None}},
        filter={"bar": "reward>=1.0", "kept": kept, "reason": None if kept else "reward 0.0 < 1.0"},
        created_at="2026-12-01T00:00:00Z",
    )


def _setup(n: int) -> tuple[CounterBuilder, list, dict]:
    from agentinstruct.collection.collect import params

    builder = CounterBuilder()
    tasks = builder.load_tasks(f"gen:{n}")
    return builder, tasks, params(builder, tasks, "reference", None, None)


def make_journal(out: Path, n: int) -> None:
    """Child 1: journal ``n`` finished episodes, as a build would have left them."""
    from agentinstruct.collection.collect import _provenance, select
    from agentinstruct.collection.journal import Journal

    builder, tasks, p = _setup(n)
    rng = random.Random(0)
    os.fsync = lambda fd: None  # durability is not what this fixture measures; 100k fsyncs would take minutes
    with Journal.open(out, "os", p) as journal:
        for ep in select(tasks):
            journal.finish(ep.key, ep.n, _provenance([synthetic_record(ep.n, rng)], {"name": "main", "tasks": None}, ep))


def write(out: Path, n: int) -> dict:
    """Child 2: the real path over the journal: resume, filter, stream the split into Parquet, commit the dir."""
    import asyncio

    from agentinstruct.collection.collect import build_split
    from agentinstruct.filters.base import FilterPipeline, RewardFilter

    builder, tasks, _ = _setup(n)
    start = time.perf_counter()
    outcome = asyncio.run(build_split(builder, tasks, out, policy="reference", progress=False,
                                      pipeline=FilterPipeline([RewardFilter(1.0)])))
    assert outcome.resumed == n and len(outcome.records) == n, (outcome.resumed, len(outcome.records))
    return {"seconds": time.perf_counter() - start, "kept": outcome.kept}


def imports_only() -> dict:
    """Child 3: the modules the write imports, nothing written."""
    import matplotlib.pyplot  # noqa: F401  (the plots import it when they draw)

    import agentinstruct.collection.collect  # noqa: F401
    import agentinstruct.datasetdir.plots  # noqa: F401
    import agentinstruct.filters.base  # noqa: F401
    return {}


def child(argv: list[str]) -> None:
    what, out, n = argv[0], Path(argv[1]), int(argv[2])
    result = {"make": lambda: make_journal(out, n) or {}, "write": lambda: write(out, n), "imports": imports_only}[what]()
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def run_child(*args: str) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(
                              [str(ROOT / "tests"), *filter(None, [os.environ.get("PYTHONPATH")])])})
    if done.returncode:
        raise SystemExit(f"child {args[0]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child)
        return
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    base = run_child("imports", "-", "0")["peak_mb"]
    print(f"imports alone: peak RSS {base:.0f} MB")
    print(f"{'records':>8} {'journal MB':>10} {'parquet MB':>10} {'write s':>8} {'peak RSS MB':>11} {'above imports':>13}")
    peaks = {}
    for n in args.sizes:
        with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
            out = Path(tmp) / "out"
            run_child("make", str(out), str(n))
            journal = sum(f.stat().st_size for f in (out / ".journal").rglob("*.jsonl")) / 2**20
            result = run_child("write", str(out), str(n))
            parquet = sum(f.stat().st_size for f in (out / "data").rglob("*.parquet")) / 2**20
        peaks[n] = result["peak_mb"]
        print(f"{n:>8} {journal:>10.1f} {parquet:>10.1f} {result['seconds']:>8.1f} {result['peak_mb']:>11.0f} "
              f"{result['peak_mb'] - base:>13.0f}")
    if len(peaks) > 1:
        small, large = min(peaks), max(peaks)
        print(f"peak RSS {large} / {small} records: {peaks[large] / peaks[small]:.2f} "
              f"(records grew {large / small:.0f}x; above imports: {(peaks[large] - base) / (peaks[small] - base):.2f})")
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
