"""The webshop split's speed: searches per second (bm25s against a plain-Python BM25 over the same catalogue and
the same analysed text, as a ratio) and environment steps per second (the expert's episodes, reward included).

The plain-Python BM25 scores with the same formula (Lucene's: idf = ln(1 + (N - df + 0.5) / (df + 0.5)), term
weight tf / (tf + k1 (1 - b + b dl / avgdl)), k1 0.9, b 0.4) from an inverted index of dicts; both must return
the same ranking, which the benchmark checks before it times them.

::

    .venv/bin/python benchmarks/bench_webshop.py [--queries 400] [--copies 1]

``--copies N`` indexes the catalogue N times over (fresh ASINs) to see how each engine scales.
"""

from __future__ import annotations

import argparse
import math
import time
from collections import Counter, defaultdict

from agentinstruct.builders.webshop.builder import WebshopBuilder, embedded_catalogue
from agentinstruct.builders.webshop.expert import search_query
from agentinstruct.builders.webshop.search import B, K1, SEARCH_RETURN_N, Analyzer, Bm25sSearch, document_text


class PlainBm25:
    """Lucene's BM25 over an inverted index of Python dicts."""

    def __init__(self, products: list[dict]) -> None:
        self.analyze = Analyzer()
        self.asins = [p["asin"] for p in products]
        self.postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        lengths = []
        for i, p in enumerate(products):
            terms = Counter(self.analyze(document_text(p)))
            lengths.append(sum(terms.values()))
            for term, tf in terms.items():
                self.postings[term].append((i, tf))
        n, avg = len(products), sum(lengths) / len(products)
        self.norm = [K1 * (1 - B + B * dl / avg) for dl in lengths]
        self.idf = {t: math.log(1 + (n - len(ps) + 0.5) / (len(ps) + 0.5)) for t, ps in self.postings.items()}

    def search(self, query: str, k: int = SEARCH_RETURN_N) -> list[str]:
        scores: dict[int, float] = defaultdict(float)
        for term in self.analyze(query):
            for doc, tf in self.postings.get(term, ()):
                scores[doc] += self.idf[term] * tf / (tf + self.norm[doc])
        best = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:k]
        return [self.asins[doc] for doc, _ in best]


def rate(fn, items: list) -> float:
    start = time.perf_counter()
    for item in items:
        fn(item)
    return len(items) / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--queries", type=int, default=400)
    p.add_argument("--copies", type=int, default=1)
    args = p.parse_args()
    catalogue = embedded_catalogue()
    products = [dict(prod, asin=f"{prod['asin']}-{c}" if c else prod["asin"])
                for c in range(args.copies) for prod in catalogue.products]
    goals = catalogue.goals
    queries = [search_query(g["instruction_text"], g["goal_options"]) for g in goals]
    queries = (queries * (args.queries // len(queries) + 1))[:args.queries]

    start = time.perf_counter()
    fast = Bm25sSearch(products)
    fast_index = time.perf_counter() - start
    start = time.perf_counter()
    plain = PlainBm25(products)
    plain_index = time.perf_counter() - start
    agree = sum(fast.search(q)[:10] == plain.search(q)[:10] for q in queries[:100])
    fast_rate, plain_rate = rate(fast.search, queries), rate(plain.search, queries)
    print(f"catalogue: {len(products)} products, {len(queries)} queries (the expert's, one per goal, repeated)")
    print(f"  index build   bm25s {fast_index:6.2f} s   plain Python {plain_index:6.2f} s   "
          f"ratio {plain_index / fast_index:5.1f}x")
    print(f"  searches/s    bm25s {fast_rate:8.0f}   plain Python {plain_rate:8.0f}   "
          f"ratio {fast_rate / plain_rate:5.1f}x   (same top 10 on {agree}/100 queries)")

    builder = WebshopBuilder(catalogue)
    tasks = builder.load_tasks("embedded")
    plans = [builder.reference_actions(t) for t in tasks]  # the searches are cached after this pass
    start = time.perf_counter()
    steps = 0
    for task, actions in zip(tasks, plans):
        with builder.open_env(task) as env:
            for action in actions:
                env.step(action)
                steps += 1
            env.score(actions[-1])
    elapsed = time.perf_counter() - start
    print(f"  env steps/s   {steps / elapsed:8.0f}   ({len(tasks)} expert episodes, {steps} steps with reward, "
          f"cached searches)")


if __name__ == "__main__":
    main()
