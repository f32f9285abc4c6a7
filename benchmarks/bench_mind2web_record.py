"""The mind2web recorder's speed in Debian's headless Chromium: recorded steps per second, and where a step's time
goes: the CDP DOM snapshot against the whole step (snapshot, target lookup, turning the snapshot into Mind2Web's
raw and cleaned HTML and candidates, acting, waiting for the page), as a ratio; the Python side (``raw_tree`` +
``step_fields`` on the recorded snapshots) is timed on its own.

::

    .venv/bin/python benchmarks/bench_mind2web_record.py [--site restaurant] [--rounds 1]
"""

from __future__ import annotations

import argparse
import time

from agentinstruct.builders.mind2web.gold import read_gold
from agentinstruct.builders.mind2web.record import chromium, record_site
from agentinstruct.builders.mind2web.sites import HERE, SITES


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--site", default="restaurant", choices=list(SITES))
    p.add_argument("--rounds", type=int, default=1, help="times to record the site's train gold list")
    args = p.parse_args()
    gold = read_gold(HERE / args.site / "train.json")
    started = time.perf_counter()
    with chromium() as browser:
        launched = time.perf_counter()
        timings: list[float] = []
        for _ in range(args.rounds):
            tasks = record_site(args.site, gold, browser=browser, timings=timings)
        recorded = time.perf_counter()
    steps = len(timings) // 2
    snap, step = sum(timings[0::2]), sum(timings[1::2])
    print(f"{args.site}: {steps} steps in {recorded - launched:.1f} s ({steps / (recorded - launched):.2f} steps/s "
          f"including page loads and {len(gold) * args.rounds} browser contexts; Chromium start "
          f"{launched - started:.1f} s)")
    print(f"  per step: {1000 * step / steps:.0f} ms; CDP snapshot + target lookup {1000 * snap / steps:.0f} ms "
          f"(snapshot / step = {snap / step:.2f})")
    # The Python side alone, on the pages as recorded (parsed back from their raw_html).
    from lxml import etree

    from agentinstruct.builders.mind2web.snapshot import step_fields

    pages = [(etree.fromstring(a["raw_html"]), a["pos_candidates"][0]["backend_node_id"])
             for t in tasks for a in t["actions"]]
    t0 = time.perf_counter()
    for tree, target in pages:
        step_fields(tree, target)
    convert = (time.perf_counter() - t0) / len(pages)
    print(f"  cleaning + candidates (step_fields): {1000 * convert:.1f} ms a page "
          f"({convert / (step / steps):.2f} of a step)")


if __name__ == "__main__":
    main()
