"""Scoring a model on a split's tasks: ``agentinstruct eval``.

The same episodes as a build (``collect.run_episodes``), under the model
policy and with no filters; the result is the split's metric (mean reward and
success rate) and, with ``out``, per-task results beside a journal that makes
the run resumable.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentinstruct.builders.base import Builder, Task
from agentinstruct.collection.agent import AgentClient
from agentinstruct.collection.collect import Outcome, params, run_episodes, select
from agentinstruct.collection.journal import Journal
from agentinstruct.datasetdir.fileutil import atomic_write_text


@dataclass(frozen=True)
class Metric:
    """An evaluation's figures over the scored episodes."""

    name: str
    tasks: int
    scored: int
    mean_reward: float
    success_rate: float
    components: dict[str, float] = field(default_factory=dict)
    """Each reward component's mean over the scored tasks (a task's records averaged first: a query split's
    questions all carry their task's metrics, such as Mind2Web's step success)."""

    def __str__(self) -> str:
        parts = "".join(f"; {k} {v:.4f}" for k, v in self.components.items())
        return (
            f"{self.scored}/{self.tasks} tasks scored: mean {self.name} {self.mean_reward:.4f}, "
            f"success rate {self.success_rate:.2%}{parts}"
        )


def metric(episodes: list[list[dict[str, Any]]], tasks: int) -> Metric:
    """Mean reward, success rate and mean components of scored records, given per episode. An episode that gave no
    record (a query task with nothing to ask, such as a Mind2Web step with one candidate) counts 0 on every
    component rather than leaving the denominator.

    Example:
        >>> rec = {"reward": 1.0, "success": True, "reward_details": {"metric": "success", "components": [
        ...     {"name": "step_success", "value": 1.0}]}}
        >>> str(metric([[rec, rec]], 2))
        '1/2 tasks scored: mean success 1.0000, success rate 100.00%; step_success 1.0000'
        >>> metric([[rec], []], 2).components
        {'step_success': 0.5}
    """
    records = [r for episode in episodes for r in episode]
    n = len(records)
    name = records[0]["reward_details"]["metric"] if records else "reward"
    per_task: dict[str, list[float]] = {}
    for episode in episodes:
        values: dict[str, list[float]] = {}
        for r in episode:
            for c in r["reward_details"]["components"]:
                values.setdefault(c["name"], []).append(c["value"])
        for k, v in values.items():
            per_task.setdefault(k, []).append(sum(v) / len(v))
    names = list(per_task)
    for _ in range(sum(1 for episode in episodes if not episode)):
        for k in names:
            per_task[k].append(0.0)
    return Metric(
        name=name,
        tasks=tasks,
        scored=len(episodes),
        mean_reward=sum(r["reward"] for r in records) / n if n else 0.0,
        success_rate=sum(1 for r in records if r["success"]) / n if n else 0.0,
        components={k: sum(v) / len(v) for k, v in per_task.items()},
    )


def _result(record: dict[str, Any]) -> dict[str, Any]:
    details = record["reward_details"]
    return {
        "id": record["id"],
        "task_id": record["task_id"],
        "reward": record["reward"],
        "success": record["success"],
        "metric": details["metric"],
        "components": details["components"],
        "termination": details["termination"],
        "format_errors": details["format_errors"],
        "num_turns": record["num_turns"],
        "usage": record["agent"]["usage"],
        "conversations": record["conversations"],
    }


async def evaluate_split(
    builder: Builder,
    tasks: list[Task],
    agent: AgentClient,
    *,
    out: Path | None = None,
    concurrency: int = 4,
    limit: int | None = None,
    progress: bool = True,
    config: dict[str, Any] | None = None,
) -> tuple[Metric, Outcome]:
    """Run every task under the model policy and score the model: ``agentinstruct eval``.

    With ``out``, the run is journaled there (resumable; ``config``, the resolved
    settings, in the journal header) and per-task results go to
    ``out/eval-{split}.jsonl``.

    Example (needs a model server):
        >>> m, _ = asyncio.run(evaluate_split(builder, builder.load_tasks("dev.json"), agent))  # doctest: +SKIP
        >>> m.success_rate  # doctest: +SKIP
        0.25
    """
    episodes = select(tasks, limit=limit)
    name = f"eval-{builder.split}"
    with tempfile.TemporaryDirectory(prefix="agentinstruct-eval-") as scratch:
        root = Path(out) if out is not None else Path(scratch)
        with Journal.open(root, name, params(builder, tasks, "model", agent, None), config=config) as journal:
            outcome = await run_episodes(
                builder, episodes, journal, policy="model", agent=agent, concurrency=concurrency,
                decide=lambda record: record, progress=progress,
            )
    if out is not None:
        lines = "".join(json.dumps(_result(r), ensure_ascii=False) + "\n" for r in outcome.records)
        atomic_write_text(Path(out) / f"{name}.jsonl", lines)
    return metric(outcome.per_episode, len(episodes)), outcome
