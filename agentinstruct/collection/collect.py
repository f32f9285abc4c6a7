"""Collecting a split: many episodes at once, journaled, resumable, filtered, written to the dataset dir.

``build_split`` is ``agentinstruct build``: it loads the builder's tasks,
fixes their order (``--seed`` shuffles deterministically, ``--limit`` takes
a prefix) and gives episode ``n`` the id ``{split}_{n}``; skips episodes the
journal already holds; runs the rest ``concurrency`` at a time; journals each
outcome as it lands; then filters every finished record and writes the
split with ``datasetdir.release.write_split``. Killing it at any moment and running
the same command again gives exactly the same record set. Under the reference
policy a task with no reference solution (``NoReferenceSolution``) is skipped,
journaled with its reason and listed in ``DIR/reports/skipped.json``, which the
card shows.

``agentinstruct.collection.evaluate`` runs the same episodes for ``agentinstruct eval``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from agentinstruct.builders.base import Builder, NoReferenceSolution, Task
from agentinstruct.builders.options import option_values
from agentinstruct.collection.agent import AgentClient, AgentRejected, AgentUnavailable
from agentinstruct.collection.buildfile import build_file_path, build_file_text
from agentinstruct.collection.journal import Journal
from agentinstruct.collection.runner import run_episode
from agentinstruct.datasetdir.fileutil import atomic_write_text
from agentinstruct.datasetdir.layout import REPORTS
from agentinstruct.datasetdir.release import write_split
from agentinstruct.filters.base import FilterPipeline

log = logging.getLogger(__name__)

Episode = tuple[str, Task]
SKIPPED_REPORT = "skipped"
"""``DIR/reports/skipped.json``: per split, the tasks its build skipped for having no reference solution."""


def tasks_digest(tasks: list[Task]) -> str:
    """sha256 of the tasks in source order: a resumed build must see exactly the same tasks.

    Example:
        >>> tasks_digest([Task("t0", "do it", "train_split")])[:7]
        'sha256:'
    """
    canon = json.dumps(
        [[t.task_id, t.instruction, t.source, t.payload] for t in tasks], sort_keys=True, ensure_ascii=False
    )
    return "sha256:" + hashlib.sha256(canon.encode("utf-8")).hexdigest()


def select(tasks: list[Task], split: str, *, seed: int | None = None, limit: int | None = None) -> list[Episode]:
    """The episodes of a build: tasks in source order (or shuffled by ``seed``), the first ``limit``, ids ``{split}_{n}``.

    Example:
        >>> [eid for eid, _ in select([Task(f"t{i}", "x", "train_split") for i in range(5)], "os", seed=1, limit=2)]
        ['os_0', 'os_1']
    """
    if limit is not None and limit < 0:
        raise ValueError(f"--limit must be >= 0, got {limit}")
    ids = [t.task_id for t in tasks]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"task id {dup!r} occurs more than once in the task source")
    order = list(tasks)
    if seed is not None:
        random.Random(seed).shuffle(order)
    return [(f"{split}_{n}", task) for n, task in enumerate(order[:limit])]


@dataclass
class Outcome:
    """What a collection run ended with, over the selected episodes (resumed ones included)."""

    episodes: int
    records: list[dict[str, Any]]
    errors: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    """Episodes whose task has no reference solution, by id, with the reason (this run's and the journal's)."""
    resumed: int = 0
    """Episodes the journal already held (finished or skipped), so this run did not run them."""
    seconds: float = 0.0
    """Wall time of this run's episodes (the dataset write not included)."""

    @property
    def failed(self) -> int:
        """Scored episodes the environment judged unsolved."""
        return sum(1 for r in self.records if not r["success"])

    @property
    def kept(self) -> int:
        """Records the filters kept."""
        return sum(1 for r in self.records if r["filter"]["kept"])


class _Progress:
    """The progress bar: done, kept, failed, errored, skipped, model retries; tqdm adds rate and ETA."""

    def __init__(self, split: str, total: int, records: list[dict[str, Any]], skipped: int, agent: AgentClient | None,
                 show: bool):
        self.agent = agent
        self.kept = sum(1 for r in records if r["filter"]["kept"])
        self.failed = sum(1 for r in records if not r["success"])
        self.errored = 0
        self.skipped = skipped
        self.bar = tqdm(total=total, initial=len(records) + skipped, desc=split, unit="ep", disable=not show,
                        dynamic_ncols=True)
        self._refresh()

    def _refresh(self) -> None:
        retries = self.agent.stats.retries if self.agent else 0
        self.bar.set_postfix(kept=self.kept, failed=self.failed, errored=self.errored, skipped=self.skipped,
                             retries=retries, refresh=False)

    def finished(self, record: dict[str, Any]) -> None:
        self.kept += record["filter"]["kept"]
        self.failed += not record["success"]
        self._refresh()
        self.bar.update(1)

    def skipped_one(self) -> None:
        self.skipped += 1
        self._refresh()
        self.bar.update(1)

    def errored_one(self) -> None:
        self.errored += 1
        self._refresh()
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


async def run_episodes(
    builder: Builder,
    episodes: list[Episode],
    journal: Journal,
    *,
    policy: str,
    agent: AgentClient | None,
    concurrency: int,
    decide: Callable[[dict[str, Any]], dict[str, Any]],
    progress: bool,
) -> Outcome:
    """Run the episodes the journal does not hold yet, ``concurrency`` at a time, journaling each outcome as it
    lands; ``decide`` turns a scored record into what is journaled (the filters' decision, or the record as is)."""
    if concurrency < 1:
        raise ValueError(f"--concurrency must be >= 1, got {concurrency}")
    # Environments run in worker threads; the default pool (cpu + 4 threads) would cap concurrency on small machines.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(concurrency + 4, thread_name_prefix="env"))
    resumed = [decide(journal.finished[eid]) for eid, _ in episodes if eid in journal.finished]
    resumed_skips = sum(1 for eid, _ in episodes if eid in journal.skipped)
    todo = [(eid, task) for eid, task in episodes if eid not in journal.finished and eid not in journal.skipped]
    bar = _Progress(builder.split, len(episodes), resumed, resumed_skips, agent, progress)
    sem = asyncio.Semaphore(concurrency)
    errors: dict[str, str] = {}
    env_error_logged = False

    async def one(eid: str, task: Task) -> None:
        nonlocal env_error_logged
        async with sem:
            try:
                record = await run_episode(builder, task, eid, policy=policy, agent=agent)
            except AgentRejected:
                raise
            except AgentUnavailable as exc:
                errors[eid] = str(exc)
            except NoReferenceSolution as exc:  # a property of the task: counted, and not run again on resume
                await asyncio.to_thread(journal.skip, eid, str(exc))
                bar.skipped_one()
                return
            except Exception as exc:  # an environment or builder failure: errored, retried on resume
                errors[eid] = f"environment error in task {task.task_id}: {type(exc).__name__}: {exc}"
                if not env_error_logged:
                    env_error_logged = True
                    log.error("%s", errors[eid], exc_info=True)
            else:
                # The fsync runs in a worker thread so the event loop keeps serving other episodes meanwhile.
                await asyncio.to_thread(journal.finish, eid, decide(record))
                bar.finished(record)
                return
            await asyncio.to_thread(journal.error, eid, errors[eid])
            bar.errored_one()

    started = time.perf_counter()
    # A builder that starts environments ahead of need (the os split's sandbox pools) keeps `concurrency` of them
    # ready while the episodes run, and closes the leftovers after.
    warm = builder.warm(concurrency) if todo else contextlib.nullcontext()
    jobs: list[asyncio.Future[None]] = []
    try:
        with warm:
            jobs = [asyncio.ensure_future(one(eid, task)) for eid, task in todo]
            await asyncio.gather(*jobs)
    except BaseException:
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
        raise
    finally:
        bar.close()
    records = [journal.finished[eid] for eid, _ in episodes if eid in journal.finished]
    skipped = {eid: journal.skipped[eid] for eid, _ in episodes if eid in journal.skipped}
    return Outcome(len(episodes), records, errors, skipped, resumed=len(resumed) + resumed_skips,
                   seconds=time.perf_counter() - started)


def record_skipped(out: Path, split: str, skipped: list[dict[str, str]]) -> Path:
    """Set ``split``'s entry of ``out/reports/skipped.json`` to the tasks its build skipped for having no reference
    solution (each ``{"id", "task_id", "reason"}``); an empty list removes the entry, and the file once it is
    empty. Returns the file's path. Written before the split's data, so the dir's commit lists it and the card
    shows it.

    Example:
        >>> skip = {"id": "os_0", "task_id": "dev-00000", "reason": "os task dev-00000: no example solution"}
        >>> path = record_skipped(Path("out"), "os", [skip])
        >>> json.loads(path.read_text())["splits"]["os"][0]["task_id"]
        'dev-00000'
        >>> record_skipped(Path("out"), "os", []).exists()
        False
    """
    path = Path(out) / REPORTS / f"{SKIPPED_REPORT}.json"
    splits = json.loads(path.read_text(encoding="utf-8"))["splits"] if path.exists() else {}
    if skipped:
        splits[split] = skipped
    else:
        splits.pop(split, None)
    if splits:
        atomic_write_text(path, json.dumps({"splits": splits}, indent=1, ensure_ascii=False) + "\n")
    elif path.exists():
        path.unlink()
    return path


def _builder_name(builder: Builder) -> str:
    return f"{type(builder).__module__}:{type(builder).__qualname__}"


def params(builder: Builder, tasks: list[Task], policy: str, agent: AgentClient | None,
           seed: int | None) -> dict[str, Any]:
    """What a journal's episodes depend on; a resume with any of it changed is refused, naming the differences.

    ``--limit`` and ``--concurrency`` are not among them: a longer limit extends the same prefix of episodes.
    """
    return {
        "split": builder.split,
        "builder": _builder_name(builder),
        "backend": builder.backend,
        "options": option_values(builder.options) if builder.options is not None else None,
        "tasks_sha256": tasks_digest(tasks),
        "policy": policy,
        "model": agent.model if agent else None,
        "sampling": agent.sampling if agent else None,
        "seed": seed,
    }


async def build_split(
    builder: Builder,
    tasks: list[Task],
    out: Path,
    *,
    pipeline: FilterPipeline,
    policy: str = "model",
    agent: AgentClient | None = None,
    concurrency: int = 4,
    seed: int | None = None,
    limit: int | None = None,
    progress: bool = True,
    config: dict[str, Any] | None = None,
) -> Outcome:
    """Collect, journal, filter and write one split of dataset dir ``out``; resume whatever an earlier run left.

    Episodes that errored (model unreachable, environment crash) are journaled,
    left out of the written split, and run again by the next call. ``config``,
    the build's resolved settings (``buildfile.resolved``), goes into the
    journal header and beside the data as ``out/builds/{split}.yaml``.

    Example (three embedded kg questions under the reference policy; ``agent=`` collects with a model instead):
        >>> from agentinstruct.builders.kg.builder import KgBuilder
        >>> from agentinstruct.filters.base import RewardFilter
        >>> kg = KgBuilder()
        >>> def build():
        ...     return asyncio.run(build_split(kg, kg.load_tasks("embedded"), Path("out"), policy="reference",
        ...                                    pipeline=FilterPipeline([RewardFilter(1.0)]), limit=3, progress=False))
        >>> outcome = build()
        >>> outcome.kept, len(outcome.errors), outcome.resumed
        (3, 0, 0)
        >>> build().resumed  # run again: every episode comes from the journal
        3
    """
    episodes = select(tasks, builder.split, seed=seed, limit=limit)
    with Journal.open(out, builder.split, params(builder, tasks, policy, agent, seed), config=config) as journal:
        if config is not None:  # once the journal accepted the build: a refused resume leaves the old file
            atomic_write_text(build_file_path(out, builder.split), build_file_text(config))
        outcome = await run_episodes(
            builder, episodes, journal, policy=policy, agent=agent, concurrency=concurrency,
            decide=pipeline.apply, progress=progress,
        )
    task_ids = {eid: task.task_id for eid, task in episodes}
    record_skipped(out, builder.split, [{"id": eid, "task_id": task_ids[eid], "reason": reason}
                                        for eid, reason in outcome.skipped.items()])
    if outcome.records:
        write_split(out, builder.split, outcome.records)
    return outcome
