"""Self-instruct, the part every split shares: a model writes candidate tasks, the split verifies them, the accepted
ones are stored as each is accepted, and running again resumes.

A split supplies the requests (``ask``: prompt and what the check needs to know), the check of a candidate
(``check``: its shape, then a run in the split's sandbox or database) and its task file format (``dump``);
``grow`` sends the requests concurrently within a budget of model calls, takes the JSON object out of each reply
(``extract_json``), drops near-duplicates and counts every rejection by its reason (``SelfInstructReport``).

Near-duplicates (``NearDuplicates``): one rule for every split. A description repeats another when their
normalised texts (lowercase words, ``textnorm.words``, joined by single spaces) are equal or their difflib ratio is
at least the split's threshold (os and db use 0.9).

``build SPLIT --tasks self-instruct --n N --out DIR`` keeps the file inside DIR (``self_instructed_tasks``).
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import re
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentinstruct.builders.base import Task
from agentinstruct.collection.agentargs import run_with_agent
from agentinstruct.datasetdir.fileutil import atomic_write_text
from agentinstruct.filters.textnorm import words

SELF_INSTRUCT_COUNT = 50
"""How many verified tasks ``build SPLIT --tasks self-instruct`` makes unless ``--n`` says."""
SELF_INSTRUCT = "self-instruct"
"""The ``--tasks`` value of ``build SPLIT`` that makes the tasks by self-instruct first (``self_instructed_tasks``)."""
_JSON = re.compile(r"\{.*\}", re.DOTALL)


@dataclass
class SelfInstructReport:
    """What a self-instruct run did: tasks in the file, new ones accepted, rejections by reason.

    Example:
        >>> print(SelfInstructReport(3, 2, 5, Counter({"not JSON": 2, "sql fails": 1})))
        3 tasks in the file (2 new from 5 requests); rejected: not JSON 2, sql fails 1
    """

    total: int = 0
    accepted: int = 0
    requests: int = 0
    rejected: Counter = field(default_factory=Counter)

    def __str__(self) -> str:
        why = ", ".join(f"{k} {v}" for k, v in self.rejected.most_common()) or "none"
        return (f"{self.total} tasks in the file ({self.accepted} new from {self.requests} requests); "
                f"rejected: {why}")


def extract_json(reply: str) -> Any:
    """The JSON object in a reply (inside a code fence or not); ValueError when there is none.

    Example:
        >>> extract_json('Here:\\n```json\\n{"a": 1}\\n```')
        {'a': 1}
    """
    found = _JSON.search(reply)
    if not found:
        raise ValueError("no JSON object in the reply")
    return json.loads(found.group(0))


class NearDuplicates:
    """The descriptions accepted so far, and whether a new one repeats one of them (see the module docstring).

    Example:
        >>> seen = NearDuplicates(["How many films did Nolan direct?"], threshold=0.9)
        >>> seen.repeats("how many films did nolan direct"), seen.repeats("Who directed Heat?")
        (True, False)
    """

    def __init__(self, texts: Iterable[str] = (), *, threshold: float) -> None:
        self.threshold = threshold
        self._keys = [self._key(t) for t in texts]

    @staticmethod
    def _key(text: str) -> str:
        return " ".join(words(text))

    def repeats(self, text: str) -> bool:
        """Whether ``text`` is a near-duplicate of a description added before."""
        key = self._key(text)
        return any(key == other or difflib.SequenceMatcher(None, key, other).ratio() >= self.threshold
                   for other in self._keys)

    def add(self, text: str) -> None:
        """Count ``text`` among the accepted descriptions."""
        self._keys.append(self._key(text))


async def grow(agent: Any, n: int, out: Path, entries: list[dict[str, Any]], seen: NearDuplicates, *,
               ask: Callable[[int], tuple[Any, str]], check: Callable[[Any, Any], Awaitable[dict[str, Any]]],
               dump: Callable[[list[dict[str, Any]]], str], concurrency: int = 4,
               max_requests: int | None = None) -> SelfInstructReport:
    """Ask ``agent`` for tasks until ``entries`` (the task file ``out`` as read) holds ``n``; rewrite ``out`` with
    ``dump(entries)`` after each acceptance and return the report.

    ``ask(k)`` gives the k-th request's context and prompt; ``check(candidate, context)`` turns the JSON object of a
    reply into the entry to store, or raises ValueError whose text up to " (" is the reason counted for rejecting
    it. An entry whose ``description`` repeats one in ``seen`` is rejected as "near-duplicate". ``max_requests``
    (default ``4 * n``) bounds the model calls of this run.

    Example (needs a model server):
        >>> report = asyncio.run(grow(agent, 50, out, [], NearDuplicates(threshold=0.9), ask=ask, check=check,
        ...                           dump=json.dumps))  # doctest: +SKIP
    """
    report = SelfInstructReport()
    budget = max_requests if max_requests is not None else 4 * n
    # Request numbers continue after those spent on the tasks already in the file, so a resumed run asks anew.
    k = len(entries) * 4
    lock = asyncio.Lock()

    async def worker() -> None:
        nonlocal k
        while True:
            async with lock:
                if len(entries) >= n or report.requests >= budget:
                    return
                number, k = k, k + 1
                report.requests += 1
            context, prompt = ask(number)
            reply = await agent.chat([{"role": "user", "content": prompt}])
            try:
                candidate = extract_json(reply.text)
            except ValueError:  # json.JSONDecodeError included
                report.rejected["not JSON"] += 1
                continue
            try:
                entry = await check(candidate, context)
            except ValueError as exc:
                report.rejected[str(exc).split(" (")[0]] += 1
                continue
            async with lock:
                if len(entries) >= n:
                    return
                # Checked under the lock: another worker may have accepted a twin while this candidate ran.
                if seen.repeats(entry["description"]):
                    report.rejected["near-duplicate"] += 1
                    continue
                entries.append(entry)
                seen.add(entry["description"])
                report.accepted += 1
                atomic_write_text(out, dump(entries))

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    report.total = len(entries)
    return report


def self_instructed_tasks(builder: Any, opts: argparse.Namespace | None, store: Path,
                          load: Callable[[Path], list[Task]]) -> list[Task]:
    """``build SPLIT --tasks self-instruct``: the first ``--n`` tasks of the file ``store`` (inside ``--out``), after
    asking the model of the options (``builder.self_instruct``) for the missing ones; ``load`` reads the file.

    Example (needs a model server, the one ``opts`` names):
        >>> self_instructed_tasks(OsBuilder(), opts, Path("tasks/os-self-instruct.json"), load)  # doctest: +SKIP
        [Task(task_id='tasks-00000', ...), ...]
    """
    if opts is None or getattr(opts, "out", None) is None or not getattr(opts, "model", None):
        raise ValueError("--tasks self-instruct needs --out DIR and --model (the model writes the tasks)")
    if opts.n < 1:
        raise ValueError(f"--n must be >= 1, got {opts.n}")
    path = Path(opts.out) / store
    tasks = load(path) if path.exists() else []
    if len(tasks) >= opts.n:
        print(f"{builder.split} self-instruct: using the tasks already in {path}", file=sys.stderr)
    else:
        tasks, report = run_with_agent(opts, lambda agent: builder.self_instruct(
            agent, opts.n, path, seed=opts.seed or 0, concurrency=opts.concurrency))
        print(f"{builder.split} self-instruct: {report}; tasks in {path}", file=sys.stderr)
    tasks = tasks[: opts.n]
    if not tasks:
        raise ValueError(f"self-instruct has no verified task in {path}; see the rejection reasons above")
    return tasks
