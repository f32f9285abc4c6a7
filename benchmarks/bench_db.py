"""db split: episode cost per backend, measured side by side on AgentBench's 60 dev tasks.

Each run is the engine's ``run_episode`` with ``--policy reference`` and no model (template thoughts) over every
task (journal and dataset write left out), so the figures are the environment's own cost: creating the episode database with its table, running the reference statement, scoring
(for a modification: a second fresh database for the expected table, hashed once per task), dropping it. The
MariaDB server is a throwaway one started here (tests/mariadb_server.py). Prints episodes per second per backend
and concurrency, and the ratio MariaDB / SQLite::

    .venv/bin/python benchmarks/bench_db.py [--concurrency 1 8] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from mariadb_server import mariadb_server  # noqa: E402  (the throwaway server helper lives in tests/)

from agentinstruct.builders.db.backends import MariadbBackend, SqliteBackend  # noqa: E402
from agentinstruct.builders.db.builder import DbBuilder  # noqa: E402
from agentinstruct.collection.runner import run_episode  # noqa: E402

DEV = ROOT.parent / "shared" / "data" / "agentbench" / "dbbench" / "dev.jsonl"


def episodes_per_second(make_builder, concurrency: int, repeat: int) -> float:
    """Best of ``repeat`` runs (a fresh builder each, so expected tables are recomputed) of all dev tasks."""
    best = 0.0
    for _ in range(repeat):
        builder = make_builder()
        tasks = builder.load_tasks(str(DEV))

        async def run_all() -> list[dict]:
            gate = asyncio.Semaphore(concurrency)

            async def one(n: int, task) -> dict:
                async with gate:
                    return await run_episode(builder, task, f"db_{n}", policy="reference")

            return await asyncio.gather(*(one(n, t) for n, t in enumerate(tasks)))

        started = time.perf_counter()
        records = asyncio.run(run_all())
        seconds = time.perf_counter() - started
        assert len(records) == len(tasks)
        best = max(best, len(tasks) / seconds)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    with mariadb_server() as address:
        print(f"{'concurrency':>11} {'sqlite ep/s':>12} {'mariadb ep/s':>13} {'mariadb/sqlite':>15}")
        for c in args.concurrency:
            lite = episodes_per_second(lambda: DbBuilder(SqliteBackend()), c, args.repeat)
            server = episodes_per_second(lambda: DbBuilder(MariadbBackend(address)), c, args.repeat)
            print(f"{c:>11} {lite:>12.1f} {server:>13.1f} {server / lite:>15.3f}")


if __name__ == "__main__":
    main()
