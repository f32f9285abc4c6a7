"""Collecting a split: many episodes at once, journaled, resumable, filtered, written to the dataset dir.

``build_split`` is ``agentinstruct build``: it loads the builder's tasks,
fixes their order (``--seed`` shuffles deterministically, ``--limit`` takes
a prefix), makes ``--attempts`` episodes of each (distinct sampling seeds) and
keys each episode ``{task_id}#{attempt}`` in the build's journal; skips
episodes the journal already holds; runs the rest ``concurrency`` at a time;
journals each outcome as it lands; then filters every finished record and
writes the split with ``datasetdir.release.write_split``, the records streamed
back from the journals (no step holds a split's records: ``EpisodeRecords``). Killing it at any
moment and running the same command again gives exactly the same record set.

A split may hold several builds (``--name``: other task sources, policies or
models), each with its own journal. The written split holds every build's
records, builds in the order they were first started and each build's in
episode order, and numbers them THUDM's way, ``{split}_{n}`` from 0, at write
time; each record names its build, task source, attempt and episode key in
``build``. Under the reference
policy a task with no reference solution (``NoReferenceSolution``) is skipped,
journaled with its reason and listed in ``DIR/reports/skipped.json``, which the
card shows.

``agentinstruct.collection.evaluate`` runs the same episodes for ``agentinstruct eval``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import json
import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from agentinstruct.builders.base import Builder, NoReferenceSolution, Task
from agentinstruct.collection.executors import LOST_RETRIES, Executor, LocalExecutor, WorkerLost
from agentinstruct.builders.options import option_values
from agentinstruct.collection.agent import AgentClient, AgentRejected, AgentUnavailable
from agentinstruct.collection.buildfile import build_file_path, build_file_text
from agentinstruct.collection.journal import MAIN, Finished, Journal, build_names, journal_records, read_episodes
from agentinstruct.datasetdir.fileutil import atomic_write_text
from agentinstruct.datasetdir.layout import REPORTS
from agentinstruct.datasetdir.release import RecordStream, write_split
from agentinstruct.filters.base import FilterPipeline

log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class Episode:
    """One episode of a build: its journal key, its place ``n`` in the build, its task, which attempt at the task
    it is, and the sampling seed of that attempt (None: the model's own settings)."""

    key: str
    n: int
    task: Task
    attempt: int = 0
    seed: int | None = None


def attempt_seed(seed: int | None, attempt: int, attempts: int) -> int | None:
    """The sampling seed of attempt ``attempt`` of ``attempts``: ``seed`` itself for a single attempt, otherwise
    a seed per (seed, attempt), distinct across attempts and across build seeds.

    Example:
        >>> attempt_seed(None, 0, 1), attempt_seed(7, 0, 1), [attempt_seed(7, a, 3) for a in range(3)]
        (None, 7, [21, 22, 23])
    """
    return seed if attempts == 1 else (seed or 0) * attempts + attempt


def select(tasks: list[Task], *, seed: int | None = None, limit: int | None = None,
           attempts: int = 1) -> list[Episode]:
    """The episodes of a build: tasks in source order (or shuffled by ``seed``), the first ``limit``, ``attempts``
    episodes of each, keyed ``{task_id}#{attempt}``.

    Example:
        >>> [e.key for e in select([Task(f"t{i}", "x", "train_split") for i in range(5)], seed=1, limit=2)]
        ['t2#0', 't3#0']
        >>> [(e.key, e.n, e.seed) for e in select([Task("t0", "x", "train_split")], seed=1, attempts=2)]
        [('t0#0', 0, 2), ('t0#1', 1, 3)]
    """
    if limit is not None and limit < 0:
        raise ValueError(f"--limit must be >= 0, got {limit}")
    if attempts < 1:
        raise ValueError(f"--attempts must be >= 1, got {attempts}")
    ids = [t.task_id for t in tasks]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"task id {dup!r} occurs more than once in the task source")
    order = list(tasks)
    if seed is not None:
        random.Random(seed).shuffle(order)
    return [Episode(f"{task.task_id}#{a}", n * attempts + a, task, a, attempt_seed(seed, a, attempts))
            for n, task in enumerate(order[:limit]) for a in range(attempts)]


class EpisodeRecords:
    """The records of some finished episodes of a build, in episode order, read back from its journal each time
    they are iterated: a run's ``Outcome`` holds where they lie and what they count, never the records, so its
    memory does not grow with the build. ``len`` is the number of records; ``episodes`` gives them per episode.

    ``decisions`` are filter decisions that replace journaled ones (a resumed build's filters, applied again to the
    records an earlier run journaled), by (episode key, record index). The journal file is held open, so the
    records stay readable after it is removed (``agentinstruct eval`` without ``--out`` journals in a scratch dir).
    """

    def __init__(self, path: Path, entries: list[tuple[str, Finished]],
                 decisions: dict[tuple[str, int], dict[str, Any]] | None = None):
        self.path = path
        self._file = Path(path).open("rb")  # closed when the outcome is dropped
        self._entries = entries
        self._decisions = decisions or {}

    def __len__(self) -> int:
        return sum(len(entry.kept) for _, entry in self._entries)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for records in self.episodes:
            yield from records

    @property
    def episodes(self) -> "_PerEpisode":
        """The records episode by episode (a query split's episode has one record per question)."""
        return _PerEpisode(self)

    def _read(self) -> Iterator[list[dict[str, Any]]]:
        for key, entry in self._entries:
            # pread: iterations in progress at once do not share a file position.
            records = json.loads(os.pread(self._file.fileno(), entry.size, entry.offset))["records"]
            for i, record in enumerate(records):
                if (key, i) in self._decisions:
                    record["filter"] = self._decisions[key, i]
            yield records

    def facts(self) -> Iterator[tuple[bool, bool]]:
        """(kept, success) of each record, without reading the records."""
        for key, entry in self._entries:
            for i, (kept, success) in enumerate(zip(entry.kept, entry.success)):
                decision = self._decisions.get((key, i))
                yield (bool(decision["kept"]) if decision else kept), success


class _PerEpisode:
    def __init__(self, records: EpisodeRecords):
        self._records = records

    def __len__(self) -> int:
        return len(self._records._entries)

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        return self._records._read()


@dataclass
class Outcome:
    """What a collection run ended with, over the selected episodes (resumed ones included).

    ``records`` is an ``EpisodeRecords``: iterating it reads the records back from the build's journal, one episode
    at a time, so an outcome stays small however many episodes the build has (``len``, ``kept`` and ``failed``
    read nothing).
    """

    episodes: int
    records: EpisodeRecords
    errors: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    """Episodes whose task has no reference solution, by id, with the reason (this run's and the journal's)."""
    resumed: int = 0
    """Episodes the journal already held (finished or skipped), so this run did not run them."""
    seconds: float = 0.0
    """Wall time of this run's episodes (the dataset write not included)."""

    @property
    def per_episode(self) -> _PerEpisode:
        """``records`` by finished episode, in episode order (a query split's episode has one record per question)."""
        return self.records.episodes

    @property
    def failed(self) -> int:
        """Scored episodes the environment judged unsolved."""
        return sum(1 for _, success in self.records.facts() if not success)

    @property
    def kept(self) -> int:
        """Records the filters kept."""
        return sum(1 for kept, _ in self.records.facts() if kept)


class _Progress:
    """The progress bar: episodes done, records kept, failed, episodes errored, skipped, model retries; tqdm adds
    rate and ETA."""

    def __init__(self, split: str, total: int, done: int, facts: Iterable[tuple[bool, bool]], skipped: int,
                 agent: AgentClient | None, show: bool):
        self.agent = agent
        self.kept = self.failed = 0
        for kept, success in facts:
            self.kept += kept
            self.failed += not success
        self.errored = 0
        self.skipped = skipped
        self.bar = tqdm(total=total, initial=done + skipped, desc=split, unit="ep", disable=not show,
                        dynamic_ncols=True)
        self._refresh()

    def _refresh(self) -> None:
        retries = self.agent.stats.retries if self.agent else 0
        self.bar.set_postfix(kept=self.kept, failed=self.failed, errored=self.errored, skipped=self.skipped,
                             retries=retries, refresh=False)

    def finished(self, records: list[dict[str, Any]]) -> None:
        self.kept += sum(r["filter"]["kept"] for r in records)
        self.failed += sum(not r["success"] for r in records)
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


def _provenance(records: list[dict[str, Any]], build: dict[str, Any] | None, ep: Episode) -> list[dict[str, Any]]:
    if build is not None:
        for record in records:
            record["build"] = {**build, "attempt": ep.attempt, "episode": ep.key}
    return records


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
    build: dict[str, Any] | None = None,
    executor: Executor | None = None,
) -> Outcome:
    """Run the episodes the journal does not hold yet, ``concurrency`` at a time on ``executor`` (default: this
    process), journaling each outcome as it lands; ``decide`` turns a scored record into what is journaled (the
    filters' decision, or the record as is); ``build`` (the build's ``name`` and ``tasks`` source) goes into each
    record's ``build`` with its attempt and episode key. An episode the executor lost with its Ray node
    (``WorkerLost``) is journaled as errored and run again at once, up to ``LOST_RETRIES`` times."""
    if concurrency < 1:
        raise ValueError(f"--concurrency must be >= 1, got {concurrency}")
    executor = executor or LocalExecutor()
    # Environments run in worker threads; the default pool (cpu + 4 threads) would cap concurrency on small machines.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(concurrency + 4, thread_name_prefix="env"))
    resumed = [(ep.key, journal.finished[ep.key]) for ep in episodes if ep.key in journal.finished]
    decisions = _decided_again(journal.path, resumed, decide)
    resumed_skips = sum(1 for ep in episodes if ep.key in journal.skipped)
    todo = [ep for ep in episodes if ep.key not in journal.finished and ep.key not in journal.skipped]
    bar = _Progress(builder.split, len(episodes), len(resumed), EpisodeRecords(journal.path, resumed, decisions).facts(),
                    resumed_skips, agent, progress)
    sem = asyncio.Semaphore(concurrency)
    commits = _GroupCommit(journal)
    errors: dict[str, str] = {}
    failed: list[BaseException] = []
    env_error_logged = False

    async def one(ep: Episode, lost: int = 0) -> None:
        # Runs holding a slot of `sem`, taken for it by the caller; gives it back as soon as the episode is over.
        nonlocal env_error_logged
        again, decided = False, None
        try:
            try:
                who = agent.reseeded(ep.seed) if agent is not None and ep.seed is not None else agent
                try:
                    records = await executor.run(builder, ep.task, f"{builder.split}_{ep.n}", policy=policy, agent=who)
                except AgentRejected:
                    raise
                except AgentUnavailable as exc:
                    errors[ep.key] = str(exc)
                except WorkerLost as exc:  # its Ray node died: errored, and run again now on a live node
                    errors[ep.key] = str(exc)
                    again = lost < LOST_RETRIES
                except NoReferenceSolution as exc:  # a property of the task: counted, and not run again on resume
                    await asyncio.to_thread(journal.skip, ep.key, str(exc))
                    bar.skipped_one()
                    return
                except Exception as exc:  # an environment or builder failure: errored, retried on resume
                    errors[ep.key] = f"environment error in task {ep.task.task_id}: {type(exc).__name__}: {exc}"
                    if not env_error_logged:
                        env_error_logged = True
                        log.error("%s", errors[ep.key], exc_info=True)
                else:
                    decided = [decide(r) for r in _provenance(records, build, ep)]
                if decided is None:
                    await asyncio.to_thread(journal.error, ep.key, errors[ep.key])
                    bar.errored_one()
            finally:
                sem.release()
            if decided is not None:
                # The next episode has started: this one's line waits for its fsync (4 ms here, up to two of them in a
                # group commit) off the critical path; a crash before the line is durable runs the episode again on
                # resume, as before.
                await commits.finish(ep.key, ep.n, decided)
                bar.finished(decided)
        except Exception as exc:  # a refusal (AgentRejected) ends the build: no episode starts after it
            failed.append(exc)
            raise
        if again:
            del errors[ep.key]
            await sem.acquire()
            await one(ep, lost + 1)

    started = time.perf_counter()
    jobs: set[asyncio.Future[None]] = set()

    # The cyclic collector paused every episode in flight: at 256 in flight its passes took 250-450 ms of a 5 s run
    # (one full pass over the imported libraries 160 ms). What is alive now (modules, tasks, the builder) lives
    # through the build, so it is frozen, out of every pass; and the youngest generation is collected every 10,000
    # allocations rather than 700, since an episode's objects are freed by reference counting long before that
    # (13-48 ms of passes in the same run).
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(threshold[0], 10_000), *threshold[1:])
    try:
        # A builder that starts environments ahead of need (the os split's sandbox pools) keeps `concurrency` of them
        # ready while the episodes run, and closes the leftovers after.
        with executor.started(builder, concurrency) if todo else contextlib.nullcontext():
            # An episode's task is made when a slot is free, so at most `concurrency` run (plus those waiting for
            # their journal line): 2,560 tasks made up front kept the collector's passes long at 256 in flight, and
            # a 100k-episode build would hold 100k of them.
            for ep in todo:
                await sem.acquire()
                if failed:
                    sem.release()
                    break
                job = asyncio.ensure_future(one(ep))
                jobs.add(job)
                job.add_done_callback(jobs.discard)
            while jobs and not failed:
                await asyncio.wait(set(jobs), return_when=asyncio.FIRST_EXCEPTION)
            if failed:
                raise failed[0]
    except BaseException:
        for job in list(jobs):
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
        raise
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()
        bar.close()
    finished = [(ep.key, journal.finished[ep.key]) for ep in episodes if ep.key in journal.finished]
    skipped = {ep.key: journal.skipped[ep.key] for ep in episodes if ep.key in journal.skipped}
    return Outcome(len(episodes), EpisodeRecords(journal.path, finished, decisions), errors, skipped,
                   resumed=len(resumed) + resumed_skips, seconds=time.perf_counter() - started)


class _GroupCommit:
    """Finished episodes that land while the journal is writing are written together, with one write and one fsync
    in a worker thread; each waits until its line is durable. A thread and a fsync per episode (6 ms apiece on a
    virtual disk, and a file's fsyncs run one at a time) would cap a build near 160 episodes per second, below what
    256 episodes in flight against a fast server finish."""

    def __init__(self, journal: Journal):
        self.journal = journal
        self._pending: list[tuple[str, int, list[dict[str, Any]], asyncio.Future[None]]] = []
        self._writer: asyncio.Future[None] | None = None

    async def finish(self, key: str, n: int, records: list[dict[str, Any]]) -> None:
        """Journal a finished episode; returns once it is durable."""
        done = asyncio.get_running_loop().create_future()
        self._pending.append((key, n, records, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write())
        await asyncio.shield(done)  # a cancelled episode leaves the batch it is in to be written for the others

    async def _write(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await asyncio.to_thread(self.journal.finish_all, [(key, n, records) for key, n, records, _ in batch])
            except asyncio.CancelledError:
                for *_, done in batch + self._pending:
                    done.cancel()
                raise
            except Exception as exc:  # a failed write (disk full) fails its episodes; the next batch tries again
                for *_, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for *_, done in batch:
                if not done.done():
                    done.set_result(None)


def _decided_again(path: Path, resumed: list[tuple[str, Finished]],
                   decide: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """``decide`` (this run's filters) applied again to the records earlier runs journaled, streamed from the
    journal: the decisions that differ from the journaled ones, by (episode key, record index)."""
    changed = {}
    for (key, _), records in zip(resumed, read_episodes(path, [entry for _, entry in resumed])):
        for i, record in enumerate(records):
            before = record.get("filter")
            after = decide(record)["filter"]
            if after != before:
                changed[key, i] = after
    return changed


def record_skipped(out: Path, split: str, skipped: list[dict[str, str]], build: str = MAIN) -> Path:
    """Set build ``build``'s part of ``split``'s entry of ``out/reports/skipped.json`` to the tasks it skipped for
    having no reference solution (each ``{"id", "task_id", "reason"}``: ``id`` is the episode's key), other builds'
    entries kept; an empty entry is removed, and the file once it is empty. Returns the file's path. Written before
    the split's data, so the dir's commit lists it and the card shows it.

    Example:
        >>> skip = {"id": "dev-00000#0", "task_id": "dev-00000", "reason": "os task dev-00000: no example solution"}
        >>> path = record_skipped(Path("out"), "os", [skip])
        >>> [(s["build"], s["task_id"]) for s in json.loads(path.read_text())["splits"]["os"]]
        [('main', 'dev-00000')]
        >>> record_skipped(Path("out"), "os", []).exists()
        False
    """
    path = Path(out) / REPORTS / f"{SKIPPED_REPORT}.json"
    splits = json.loads(path.read_text(encoding="utf-8"))["splits"] if path.exists() else {}
    entries = [s for s in splits.get(split, []) if s.get("build", MAIN) != build]
    entries += [{"build": build, **s} for s in skipped]
    if entries:
        splits[split] = entries
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
           seed: int | None, attempts: int = 1) -> dict[str, Any]:
    """What a journal's episodes depend on; a resume with any of it changed is refused, naming the differences.

    ``--limit``, ``--concurrency`` and ``--executor`` are not among them: a longer limit extends the same prefix of
    episodes, and where an episode runs does not change it.
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
        "attempts": attempts,
    }


def numbered(split: str, records: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """``records`` with THUDM's ids, ``{split}_{n}`` from 0 in the order given (the journals keep their own keys).

    Example:
        >>> [r["id"] for r in numbered("os", [{"id": "os_4.0"}, {"id": "os_9"}])]
        ['os_0', 'os_1']
    """
    return ({**r, "id": f"{split}_{n}"} for n, r in enumerate(records))


def split_records(out: Path, split: str, current: str, records: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every record split ``split`` of ``out`` holds, streamed: each build's in the order the builds were first
    started, ``records`` (this run's selection) for build ``current`` and every finished episode's for the others
    (read from their journals in episode order), numbered.

    Example:
        >>> with Journal.open(Path("out"), "db", {"split": "db"}, build="bird") as j:
        ...     j.finish("q7#0", 0, [{"id": "db_0", "task_id": "q7"}])
        >>> [(r["id"], r["task_id"]) for r in split_records(Path("out"), "db", "main", [{"id": "db_0", "task_id": "s1"}])]
        [('db_0', 'q7'), ('db_1', 's1')]
    """
    names = build_names(out, split)

    def ordered() -> Iterator[dict[str, Any]]:
        for name in names:
            yield from records if name == current else journal_records(out, split, name)
        if current not in names:
            yield from records

    return numbered(split, ordered())


def _write_build_files(out: Path, split: str) -> None:
    """``out/builds/{split}.yaml`` reproducing every build of the split, from the settings their journals hold."""
    configs = [Journal.header_of(out, split, name).get("config") for name in build_names(out, split)]
    configs = [c for c in configs if c is not None]
    if configs:
        atomic_write_text(build_file_path(out, split), build_file_text(configs))


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
    attempts: int = 1,
    name: str = MAIN,
    source: str | None = None,
    progress: bool = True,
    config: dict[str, Any] | None = None,
    executor: Executor | None = None,
) -> Outcome:
    """Collect, journal, filter and write build ``name`` of one split of dataset dir ``out``; resume whatever an
    earlier run left. The split written holds this build's records and those of the split's other builds.

    Episodes that errored (model unreachable, environment crash) are journaled,
    left out of the written split, and run again by the next call. ``config``,
    the build's resolved settings (``buildfile.resolved``), goes into the
    journal header and beside the data in ``out/builds/{split}.yaml``;
    ``source`` (the ``--tasks`` value) into each record's ``build``.

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
    episodes = select(tasks, seed=seed, limit=limit, attempts=attempts)
    with Journal.open(out, builder.split, params(builder, tasks, policy, agent, seed, attempts), config=config,
                      build=name) as journal:
        if config is not None:  # once the journal accepted the build: a refused resume leaves the old file
            _write_build_files(out, builder.split)
        outcome = await run_episodes(
            builder, episodes, journal, policy=policy, agent=agent, concurrency=concurrency,
            decide=pipeline.apply, progress=progress, build={"name": name, "tasks": source}, executor=executor,
        )
    task_ids = {ep.key: ep.task.task_id for ep in episodes}
    record_skipped(out, builder.split, [{"id": key, "task_id": task_ids[key], "reason": reason}
                                        for key, reason in outcome.skipped.items()], build=name)
    # Streamed from the journals twice (checked, then written), so the write holds one row group, not the split.
    records = RecordStream(lambda: split_records(out, builder.split, name, outcome.records))
    if next(iter(records), None) is not None:
        write_split(out, builder.split, records)
    return outcome
