"""Decontamination and dedup throughput on real ShareGPT, side by side with the plain-Python approach.

Decontamination: every conversation of the embedded ShareGPT file (all turns,
about 16.5k conversations, 95 MB of text) against the AgentBench dev tasks,
n = 13. The baseline is what open-r1's ``scripts/decontaminate.py`` does,
with our tokens and short-instance rule so both must give the same answer:
split each text into words, build every n-gram as a string, look it up in a
set of eval n-grams. Ours is ``Decontaminator.scan`` (Arrow tokens mapped to
the eval vocabulary, NumPy rolling hashes, verified hits) with 1 and 2 threads.
ShareGPT shares nothing with AgentBench, so every ``--plant-every``-th
conversation gets a 5 to 30 word piece of a random eval instance pasted in:
both methods must flag exactly the same conversations.

Dedup: the first human turn of ``--dedup-sample`` conversations, near
duplicates at Jaccard >= 0.8 of word 3-grams: all pairs compared exactly
(the baseline) against ``Deduplicator`` (MinHash LSH candidates, exact
Jaccard confirmed). Agreement is reported for both::

    .venv/bin/python benchmarks/bench_decontam.py [--limit N] [--n 13] [--dedup-sample 3000]
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from agentinstruct.filters.decontam import Decontaminator, agentbench_eval_sets  # noqa: E402
from agentinstruct.filters.dedup import Deduplicator  # noqa: E402
from agentinstruct.training.sharegpt import read_general  # noqa: E402

WORD = re.compile(r"\w+")


def naive_decontam(texts: list[str], evals: list[str], n: int, min_words: int) -> list[bool]:
    """The plain approach: string n-grams in a set (per length, for eval texts shorter than n)."""
    grams: dict[int, set[str]] = {}
    for e in evals:
        tokens = WORD.findall(e.lower())
        length = min(n, len(tokens))
        if length < min(n, min_words):
            continue
        grams.setdefault(length, set()).update(" ".join(tokens[i:i + length]) for i in range(len(tokens) - length + 1))
    out = []
    for text in texts:
        tokens = WORD.findall(text.lower())
        out.append(any(" ".join(tokens[i:i + length]) in table
                       for length, table in grams.items() for i in range(len(tokens) - length + 1)))
    return out


def naive_dedup(texts: list[str], threshold: float, k: int) -> list[bool]:
    """Keep the first of each group: compare each text's shingle set with every kept one."""
    kept: list[set] = []
    out = []
    for text in texts:
        tokens = WORD.findall(text.lower())
        if not tokens:
            out.append(True)
            continue
        size = min(k, len(tokens))
        shingles = {tuple(tokens[i:i + size]) for i in range(len(tokens) - size + 1)}
        dup = any(len(shingles & other) / len(shingles | other) >= threshold for other in kept)
        out.append(not dup)
        if not dup:
            kept.append(shingles)
    return out


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, help="conversations to use (default: all)")
    parser.add_argument("--n", type=int, default=13)
    parser.add_argument("--agentbench", type=Path, default=ROOT.parent / "shared" / "data" / "agentbench")
    parser.add_argument("--dedup-sample", type=int, default=3000)
    parser.add_argument("--plant-every", type=int, default=50)
    args = parser.parse_args()
    if not args.agentbench.exists():
        print(f"AgentBench data not found at {args.agentbench}", file=sys.stderr)
        return 1

    rows, _ = read_general(limit=args.limit)
    texts = ["\n".join(t["value"] for t in r["conversations"]) for r in rows]
    sets = agentbench_eval_sets(args.agentbench)
    evals = [t for s in sets for t in s.texts]
    rng = random.Random(0)
    for i in range(0, len(texts), args.plant_every):
        source = rng.choice(evals).split()
        size = min(len(source), rng.randint(5, 30))
        start = rng.randint(0, len(source) - size)
        words = texts[i].split(" ")
        at = rng.randint(0, len(words))
        texts[i] = " ".join(words[:at] + source[start:start + size] + words[at:])
    mb = sum(len(t.encode()) for t in texts) / 1e6
    print(f"decontamination: {len(texts)} ShareGPT conversations ({mb:.1f} MB) vs {len(evals)} AgentBench dev "
          f"instances, n={args.n}; {len(range(0, len(texts), args.plant_every))} conversations with a planted piece")

    want, base = timed(lambda: naive_decontam(texts, evals, args.n, 8))
    rows_out = [("plain Python n-gram set (baseline)", base, want)]
    for workers in (1, 2):
        decon = Decontaminator(sets, n=args.n, workers=workers)
        got, secs = timed(lambda: [m is not None for m in decon.scan(texts)])
        rows_out.append((f"agentinstruct Decontaminator, {workers} thread{'s' if workers > 1 else ''}", secs, got))
    print(f"{'method':<45} {'seconds':>8} {'conv/s':>9} {'MB/s':>7} {'speed-up':>9} {'flagged':>8} {'agrees':>7}")
    for name, secs, result in rows_out:
        print(f"{name:<45} {secs:8.2f} {len(texts) / secs:9.0f} {mb / secs:7.1f} {base / secs:8.1f}x "
              f"{sum(result):8d} {str(result == want):>7}")

    sample = [r["conversations"][0]["value"] for r in rows[:args.dedup_sample]]
    print(f"\ndedup: first human turn of {len(sample)} conversations, Jaccard >= 0.8 of word 3-grams")
    want, base = timed(lambda: naive_dedup(sample, 0.8, 3))
    records = [{"id": f"c{i}", "split": "os", "instruction": t} for i, t in enumerate(sample)]
    dedup = Deduplicator(keys=["instruction"], threshold=0.8, shingle=3)
    got, secs = timed(lambda: [k for k, _ in dedup.decide_all(records)])
    print(f"{'method':<45} {'seconds':>8} {'texts/s':>9} {'speed-up':>9} {'dropped':>8} {'agrees':>7}")
    for name, s, result in (("all pairs, exact Jaccard (baseline)", base, want), ("agentinstruct Deduplicator (MinHash LSH)", secs, got)):
        print(f"{name:<45} {s:8.2f} {len(sample) / s:9.0f} {base / s:8.1f}x {result.count(False):8d} {str(result == want):>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
