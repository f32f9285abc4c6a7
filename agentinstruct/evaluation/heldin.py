"""The held-in evaluation: each split's environment, its evaluation tasks, the paper's metric, errors counted.

The paper (AgentTuning, table 3) scores AgentLM on AgentBench's six held-in tasks with one metric each: ALFWorld
success, WebShop reward, Mind2Web step success, KG F1, OS success and DB success. Here each split runs through
``agentinstruct.collection.evaluate.evaluate_split`` (the episodes of a build, under the model, journaled in the
output dir) on tasks that are not training tasks: by default the split's embedded evaluation part (``SPECS``: what
each builder holds out of ``embedded``), or the user's set (``--tasks SPLIT=SRC``, e.g. AgentBench's dev files).

An episode that errors (the model server failing past the client's retries) is run again through the journal's
resume, up to ``retries`` times; what still errors counts as a failure (score 0) in the figure and in
``Result.errors``. With a training dir, tasks whose text or id the training data shares are found by the
decontamination check (``agentinstruct.filters.decontam``) and the split is refused, or with ``allow_overlap``
flagged in its settings. ``max_turns`` caps every episode's agent turns below the split's own limit (a quick
run's budget); the limit each split ran under is in its settings.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentinstruct.builders import builder_class
from agentinstruct.builders.base import Builder, FormatError, Task
from agentinstruct.evaluation.results import Result, mean_result, rate_result

DEFAULT_RETRIES = 2
OVERLAP_MIN_WORDS = 5
"""An evaluation task shorter than the 13-word n-gram still overlaps when its whole text (at least this many words)
is in a training record: KG questions are often 6-10 words."""


@dataclass(frozen=True)
class HeldIn:
    """How one split is evaluated: the paper's metric and the split's own evaluation tasks."""

    split: str
    metric: str
    """``success`` (the episode solved the task), ``reward`` (its mean reward), or a reward component's name."""
    rate: bool
    """Per-task values are 0 or 1 (Wilson interval) rather than scores in [0, 1] (bootstrap interval)."""
    source: str
    """The default task source: the evaluation part the builder holds out of ``embedded``."""
    options: dict[str, Any] = field(default_factory=dict)
    """Builder options that admit the evaluation part (builds refuse it without them)."""


SPECS: dict[str, HeldIn] = {
    "alfworld": HeldIn("alfworld", "success", True, "embedded-eval", {"eval_games": True}),
    "webshop": HeldIn("webshop", "reward", False, "embedded", {"goals": "eval"}),
    "mind2web": HeldIn("mind2web", "step_success", True, "embedded-eval", {"eval_tasks": True}),
    "kg": HeldIn("kg", "f1", False, "embedded-eval", {"eval_tasks": True}),
    "os": HeldIn("os", "success", True, "embedded-eval", {"eval_tasks": True}),
    "db": HeldIn("db", "success", True, "embedded-eval", {"eval_tasks": True}),
}


def make_builder(split: str, spec: str | None = None) -> Builder:
    """The split's builder (``spec``: another ``module:Class`` for it) with the options its evaluation needs.

    Example:
        >>> make_builder("webshop").goals
        'eval'
        >>> make_builder("chess")
        Traceback (most recent call last):
        ...
        ValueError: no held-in evaluation for split 'chess' (known: alfworld, webshop, mind2web, kg, os, db)
    """
    if split not in SPECS:
        raise ValueError(f"no held-in evaluation for split {split!r} (known: {', '.join(SPECS)})")
    cls = builder_class(split, spec)
    wanted = {f.name for f in dataclasses.fields(cls.Options)}
    options = dataclasses.replace(cls.Options(), **{k: v for k, v in SPECS[split].options.items() if k in wanted})
    builder = cls.from_options(options)
    builder.options = options
    return builder


def cap_turns(builder: Builder, max_turns: int | None) -> int:
    """Cap ``builder``'s episodes at ``max_turns`` agent turns (None: the split's own limit); the limit now in force.

    The cap never raises a split's limit: its own is AgentBench's (alfworld 35, os 8, ...), and a query split asks
    one action per question (its limit is 1).

    Example:
        >>> from agentinstruct.builders.kg.builder import KgBuilder
        >>> kg = KgBuilder()
        >>> cap_turns(kg, None), cap_turns(kg, 3), cap_turns(KgBuilder(), 50)
        (15, 3, 15)
        >>> cap_turns(kg, 0)
        Traceback (most recent call last):
        ...
        ValueError: --max-turns 0: an episode needs at least 1 agent turn
    """
    if max_turns is not None:
        if max_turns < 1:
            raise ValueError(f"--max-turns {max_turns}: an episode needs at least 1 agent turn")
        # an instance attribute: the class's limit stays for every other builder of the split
        builder.max_turns = min(max_turns, type(builder).max_turns)
    return builder.max_turns


def _check_turn_limit(out: Path, builder: Builder, max_turns: int) -> None:
    """Refuse to resume an evaluation journal whose episodes ran under another turn limit: the journal's own
    parameters do not hold it (builds have no such option), its header's settings do (a journal from before they
    did ran under the split's own limit)."""
    from agentinstruct.collection.journal import Journal, journal_path

    name = f"eval-{builder.split}"
    if not journal_path(out, name).is_file():
        return
    before = Journal.header_of(out, name).get("config", {}).get("max_turns", type(builder).max_turns)
    if before != max_turns:
        raise ValueError(f"{journal_path(out, name)}: its episodes ran under max_turns {before}, not {max_turns}; "
                         "use another --out, or the same --max-turns to resume")


def episode_value(spec: HeldIn, records: Sequence[dict[str, Any]]) -> float:
    """One task's score under the split's metric; a query split's records (Mind2Web's rounds) are averaged.

    Example:
        >>> rec = {"reward": 0.5, "success": False, "reward_details": {"components": [
        ...     {"name": "step_success", "value": 1.0}]}}
        >>> episode_value(SPECS["mind2web"], [rec, rec]), episode_value(SPECS["webshop"], [rec])
        (1.0, 0.5)
    """
    if spec.metric == "success":
        return float(all(r["success"] for r in records))
    if spec.metric == "reward":
        return sum(r["reward"] for r in records) / len(records)
    values = [c["value"] for r in records for c in r["reward_details"]["components"] if c["name"] == spec.metric]
    if not values:
        raise ValueError(f"{spec.split} record {records[0].get('id')}: reward_details.components has no "
                         f"{spec.metric!r}, the split's metric")
    return sum(values) / len(values)


def _agent_actions(builder: Builder, record: dict[str, Any]) -> list[Any]:
    replies = [t["value"] for t in record["conversations"] if t["from"] == "gpt" and t.get("loss") is True]
    return [builder.parse(r) for r in replies]


def episode_details(builder: Builder, episodes: list[list[dict[str, Any]]], n: int) -> dict[str, float]:
    """The error analysis' figures over the scored episodes: success rate and mean reward, the share of episodes
    with a format error (a reply the parser refused) and with an action repeated right after itself, mean agent
    turns, and the share that ran out of turns; ``scored`` and ``tasks`` say over how many.

    Example:
        >>> from agentinstruct.builders.kg.builder import KgBuilder
        >>> turn = {"from": "gpt", "value": "Thought: x\\nAction: count(#0)", "loss": True}
        >>> rec = {"reward": 1.0, "success": True, "num_turns": 2, "conversations": [turn, turn],
        ...        "reward_details": {"format_errors": 1, "termination": "answered"}}
        >>> d = episode_details(KgBuilder(), [[rec]], 2)
        >>> d["format_error_rate"], d["repeated_action_rate"], d["scored"], d["tasks"]
        (1.0, 1.0, 1.0, 2.0)
    """
    records = [r for episode in episodes for r in episode]
    scored = len(episodes)

    def share(test: Any) -> float:
        return sum(1 for e in episodes if any(test(r) for r in e)) / scored if scored else 0.0

    def repeats(record: dict[str, Any]) -> bool:
        actions = [a for a in _agent_actions(builder, record) if not isinstance(a, FormatError)]
        return any(a == b for a, b in zip(actions, actions[1:]))

    return {
        "tasks": float(n),
        "scored": float(scored),
        "success_rate": sum(1 for r in records if r["success"]) / len(records) if records else 0.0,
        "mean_reward": sum(r["reward"] for r in records) / len(records) if records else 0.0,
        "format_error_rate": share(lambda r: r["reward_details"]["format_errors"] > 0),
        "repeated_action_rate": share(repeats),
        "turn_limit_rate": share(lambda r: r["reward_details"]["termination"] == "max_turns"),
        "mean_turns": sum(r["num_turns"] for r in records) / len(records) if records else 0.0,
    }


def overlapping_tasks(tasks: Sequence[Task], split: str, train: Sequence[Path]) -> dict[str, str]:
    """Evaluation tasks the training data holds, by task id, with where: the same task id in the same split, or
    text shared by the decontamination check (13-word n-grams; a task shorter than that as a whole phrase).

    Example:
        >>> import json
        >>> _ = Path("train.jsonl").write_text(json.dumps({"id": "kg_0", "split": "kg", "task_id": "q9",
        ...     "instruction": "Tell me: what are the films made in Ombria?"}) + "\\n")
        >>> tasks = [Task("q1", "What are the films made in Ombria?", "package"), Task("q2", "Who is Ada?", "package")]
        >>> overlapping_tasks(tasks, "kg", [Path("train.jsonl")])
        {'q1': 'train.jsonl: kg_0 shares 7 words'}
    """
    from agentinstruct.filters.decontam import DEFAULT_N, Decontaminator, EvalSet
    from agentinstruct.records.recordio import read_entries

    texts, ids = [], []
    found: dict[str, str] = {}
    wanted = {t.task_id for t in tasks}
    for path in train:
        for entry in read_entries(Path(path)):
            if entry.error:
                raise ValueError(f"--train {path}: {entry.label}: {entry.error}")
            record = entry.record if isinstance(entry.record, dict) else {}
            where = f"{path}: {record.get('id', entry.label)}"
            if record.get("split") == split and record.get("task_id") in wanted:
                found.setdefault(record["task_id"], f"{where} is the same task")
            text = record.get("instruction")
            if not isinstance(text, str):
                text = "\n".join(t.get("value", "") for t in record.get("conversations") or []
                                 if isinstance(t, dict) and t.get("from") in ("human", "user"))
            texts.append(text)
            ids.append(where)
    if not texts or not tasks:
        return found
    check = Decontaminator([EvalSet(f"{split} evaluation", "instruction", "", [t.task_id for t in tasks],
                                    [t.instruction for t in tasks])], n=DEFAULT_N, min_words=OVERLAP_MIN_WORDS)
    for where, match in zip(ids, check.scan(texts)):
        if match is not None:
            found.setdefault(match.eval_id, f"{where} shares {len(match.ngram.split())} words")
    return found


async def evaluate_heldin(
    split: str,
    agent: Any,
    out: Path,
    *,
    source: str | None = None,
    builder: str | None = None,
    limit: int | None = None,
    concurrency: int = 4,
    retries: int = DEFAULT_RETRIES,
    train: Sequence[Path] = (),
    allow_overlap: bool = False,
    max_turns: int | None = None,
    progress: bool = True,
) -> Result:
    """Evaluate ``agent`` on one split's evaluation tasks (journal and ``eval-SPLIT.jsonl`` in ``out``).

    ``max_turns`` caps each episode's agent turns (``cap_turns``; recorded in ``settings["max_turns"]``).

    Errored episodes are retried through the journal up to ``retries`` times; the rest count as failures.
    With ``train`` dirs, tasks they hold are refused (``ValueError`` naming them), or with ``allow_overlap``
    listed in ``settings["train_overlap"]``.

    Example (needs a model server; tests/test_evaluate.py runs it on scripted ones):
        >>> asyncio.run(evaluate_heldin("kg", agent, Path("eval-out"))).value  # doctest: +SKIP
        0.125
    """
    from agentinstruct.collection.collect import select
    from agentinstruct.collection.evaluate import evaluate_split

    made = make_builder(split, builder)
    turns = cap_turns(made, max_turns)
    spec = SPECS[split]
    src = source or spec.source
    tasks = made.load_tasks(src)
    chosen = [e.task for e in select(tasks, limit=limit)]
    if not chosen:
        raise ValueError(f"{split} tasks {src}: no tasks to evaluate")
    settings: dict[str, Any] = {
        "tasks": src, "builder": f"{type(made).__module__}:{type(made).__qualname__}",
        "builder_options": {k: _plain(v) for k, v in dataclasses.asdict(made.options).items()}
        if dataclasses.is_dataclass(made.options) else {},
        "limit": limit, "backend": made.backend, "sampling": getattr(agent, "sampling", None), "max_turns": turns,
    }
    _check_turn_limit(out, made, turns)
    if train:
        overlap = overlapping_tasks(chosen, split, train)
        if overlap and not allow_overlap:
            first = next(iter(overlap.items()))
            raise ValueError(f"{split} evaluation tasks {src}: {len(overlap)} of {len(chosen)} tasks are in the "
                             f"training data (first: task {first[0]}: {first[1]}); evaluate on other tasks, or give "
                             "--allow-overlap to run them flagged")
        settings["train"] = [str(p) for p in train]
        settings["train_overlap"] = {"tasks": len(overlap), "found": dict(list(overlap.items())[:20])}
    for attempt in range(retries + 1):
        _, outcome = await evaluate_split(made, tasks, agent, out=out, concurrency=concurrency, limit=limit,
                                          progress=progress, config=settings)
        if not outcome.errors:
            break
        if attempt < retries:
            print(f"{split}: {len(outcome.errors)} episodes errored; retrying them ({attempt + 1} of {retries})",
                  file=sys.stderr)
    settings["attempts"] = attempt + 1
    by_task = {episode[0]["task_id"]: episode for episode in outcome.per_episode if episode}
    values = [episode_value(spec, by_task[t.task_id]) if t.task_id in by_task else 0.0 for t in chosen]
    errors = sum(1 for t in chosen if t.task_id not in by_task)
    if errors:
        settings["errored"] = dict(list(outcome.errors.items())[:20])
    details = episode_details(made, [by_task[t.task_id] for t in chosen if t.task_id in by_task], len(chosen))
    binary = spec.rate and all(v in (0.0, 1.0) for v in values)
    make = rate_result if binary else mean_result
    scores = [v == 1.0 for v in values] if binary else values
    return make(split, "held-in", spec.metric, scores, errors=errors, settings=settings, details=details)


def _plain(value: Any) -> Any:
    """An option value as JSON holds it (paths as strings)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def parse_assignments(values: Sequence[str], flag: str) -> dict[str, str]:
    """``SPLIT=VALUE`` flags (``--tasks``, ``--builder``) as a dict; a split without an evaluation is refused.

    Example:
        >>> parse_assignments(["os=dev.json", "kg=embedded-eval"], "--tasks")
        {'os': 'dev.json', 'kg': 'embedded-eval'}
        >>> parse_assignments(["dev.json"], "--tasks")
        Traceback (most recent call last):
        ...
        ValueError: --tasks dev.json: expected SPLIT=VALUE, e.g. os=dev.json
    """
    out: dict[str, str] = {}
    for value in values:
        split, sep, rest = value.partition("=")
        if not sep or not rest:
            raise ValueError(f"{flag} {value}: expected SPLIT=VALUE, e.g. os=dev.json")
        if split not in SPECS:
            raise ValueError(f"{flag} {value}: unknown split {split!r} (known: {', '.join(SPECS)})")
        out[split] = rest
    return out

