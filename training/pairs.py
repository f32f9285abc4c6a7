"""Preference pairs for DPO from a dataset dir's ``all`` config: a kept trajectory against a failed one of one task.

ETO (Song et al. 2024, "Trial and Error") trains an agent with DPO on
failure/success pairs: the same task, a successful trajectory preferred to a
failed one whose reward is lower, ties skipped, both ending on an agent turn.
``build_pairs`` does this over every scored trajectory of a dataset dir (the
``all`` config, which keeps the failures with their filter decision; several
attempts per task come from ``agentinstruct build ... --attempts N`` or from
several named builds of a split, e.g. a reference build and a model build).

Who may pair with whom:

- chosen: a trajectory the filters kept (``filter.kept``) that succeeded;
- rejected: a trajectory that failed (``success`` false) and was not kept;
- only when the rejected reward is strictly lower than the chosen one;
- only within one group: the same split, the same ``task_id`` and the same
  opening (the turns before the first trained turn). On ReAct splits every
  attempt at a task has the same opening (instructions, one-shot, the task
  turn), so a group is a task; on query splits (mind2web: one record per
  question, a human turn holding the whole question and one reply) the
  opening is the question, so records of one question pair with each other
  and never with another question of the same task. No split is named here.

Each pair is written in TRL's conversational preference format: ``prompt`` is
the longest common prefix of the two conversations, cut back to end on a
human turn, and ``chosen`` / ``rejected`` are the rest of each, trailing
environment turns dropped so both end on an agent turn (as ETO does), all as
role/content messages. ``chosen_loss`` / ``rejected_loss`` hold the per-turn
loss of each completion message (true exactly on the agent turns the record
trains; observations are false), which the DPO entry point turns into its
token mask. A group yields at most ``max_pairs_per_task`` pairs (ETO: one),
drawn with a seeded generator that uses every trajectory once before any
twice, so the output is a function of the input and the seed.

The output dir loads with ``load_dataset(DIR, split="train")``:
``data/train-{hash}.parquet``, ``manifest.json`` (the source dir's manifest
hash, schema and builder versions and data file hashes; counts per split) and
a ``README.md``.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa

from agentinstruct import __version__
from agentinstruct.datasetdir.fileutil import sha256_file
from agentinstruct.datasetdir.layout import MANIFEST, data_files, iter_records, read_manifest
from agentinstruct.records.record import content_hash
from agentinstruct.schemas import SPLITS
from agentinstruct.training.datadir import read_train_rows, write_train_dir

PAIRS_FORMAT = "agentinstruct-pairs"
ROLE = {"human": "user", "gpt": "assistant"}
RULE = ("per split, task_id and opening (the turns before the first trained turn: the task on ReAct splits, the "
        "question on query splits), a kept successful trajectory (chosen) against a failed, not kept one with a "
        "strictly lower reward (rejected); prompt = their longest common prefix ending on a human turn; completions "
        "end on an agent turn; at most max_pairs_per_task pairs per group, each trajectory used once before any twice")

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
ARROW_SCHEMA = pa.schema([
    ("id", pa.string()), ("split", pa.string()), ("task_id", pa.string()),
    ("prompt", pa.list_(MESSAGE)), ("chosen", pa.list_(MESSAGE)), ("rejected", pa.list_(MESSAGE)),
    ("chosen_loss", pa.list_(pa.bool_())), ("rejected_loss", pa.list_(pa.bool_())),
    ("chosen_id", pa.string()), ("rejected_id", pa.string()),
    ("chosen_reward", pa.float64()), ("rejected_reward", pa.float64()),
])


def _trained(turn: dict[str, Any]) -> bool:
    return turn.get("from") == "gpt" and turn.get("loss") is True


def opening(conversations: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The turns before the first trained turn (what every attempt at the same task or question shares); None when
    the conversation trains nothing.

    Example:
        >>> conv = [{"from": "human", "value": "Q", "loss": None}, {"from": "gpt", "value": "A", "loss": True}]
        >>> opening(conv)
        [{'from': 'human', 'value': 'Q', 'loss': None}]
        >>> opening(conv[:1]) is None
        True
    """
    first = next((i for i, t in enumerate(conversations) if _trained(t)), None)
    return None if first is None else conversations[:first]


def shared_prefix(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> int:
    """How many leading turns two conversations share, cut back so the shared part ends on a human turn (the
    completions then start with the agent's reply).

    Example:
        >>> h, g = (lambda v: {"from": "human", "value": v}), (lambda v: {"from": "gpt", "value": v})
        >>> shared_prefix([h("task"), g("a"), h("obs 1"), g("b")], [h("task"), g("a"), h("obs 1"), g("c")])
        3
        >>> shared_prefix([h("task"), g("a"), h("obs 1")], [h("task"), g("a"), h("obs 2")])
        1
    """
    n = 0
    while n < min(len(a), len(b)) and a[n]["from"] == b[n]["from"] and a[n]["value"] == b[n]["value"]:
        n += 1
    while n > 0 and a[n - 1]["from"] != "human":
        n -= 1
    return n


def _completion(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The turns up to the last agent turn: an observation after the last reply has nothing to prefer."""
    last = max((i for i, t in enumerate(turns) if t["from"] == "gpt"), default=-1)
    return turns[: last + 1]


def _messages(turns: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"role": ROLE[t["from"]], "content": t["value"]} for t in turns]


def make_pair(chosen: dict[str, Any], rejected: dict[str, Any]) -> dict[str, Any] | None:
    """The preference row of two records of one group (``id`` still unset); None when, once the shared prefix is
    factored out, either side has no trained turn left or both sides are the same.

    Example:
        >>> h = lambda v: {"from": "human", "value": v, "loss": None}
        >>> g = lambda v: {"from": "gpt", "value": v, "loss": True}
        >>> win = {"id": "os_0", "split": "os", "task_id": "t", "reward": 1.0,
        ...        "conversations": [h("Count the files."), g("Act: bash ls"), h("3 files"), g("Act: answer(3)")]}
        >>> lose = {"id": "os_1", "split": "os", "task_id": "t", "reward": 0.0,
        ...         "conversations": [h("Count the files."), g("Act: bash ls"), h("3 files"), g("Act: answer(4)"),
        ...                           h("Wrong.")]}
        >>> row = make_pair(win, lose)
        >>> row["prompt"][-1], row["chosen"], row["rejected"]
        ({'role': 'user', 'content': '3 files'}, [{'role': 'assistant', 'content': 'Act: answer(3)'}],
         [{'role': 'assistant', 'content': 'Act: answer(4)'}])
        >>> row["chosen_loss"], (row["chosen_id"], row["rejected_id"], row["rejected_reward"])
        ([True], ('os_0', 'os_1', 0.0))
    """
    a, b = chosen["conversations"], rejected["conversations"]
    n = shared_prefix(a, b)
    won, lost = _completion(a[n:]), _completion(b[n:])
    if not any(map(_trained, won)) or not any(map(_trained, lost)) or _messages(won) == _messages(lost):
        return None
    return {
        "split": chosen["split"], "task_id": chosen["task_id"], "prompt": _messages(a[:n]),
        "chosen": _messages(won), "rejected": _messages(lost),
        "chosen_loss": [_trained(t) for t in won], "rejected_loss": [_trained(t) for t in lost],
        "chosen_id": chosen["id"], "rejected_id": rejected["id"],
        "chosen_reward": float(chosen["reward"]), "rejected_reward": float(rejected["reward"]),
    }


def draw_pairs(combos: list[tuple[str, str]], k: int | None, rng: random.Random) -> list[int]:
    """Which of ``combos`` ((chosen id, rejected id) pairs) to take, up to ``k`` (None: all), in a seeded order that
    spreads the draws: a combination whose two trajectories are both still unused comes before any that repeats one.

    Example:
        >>> combos = [("a", "x"), ("a", "y"), ("b", "x"), ("b", "y")]
        >>> picked = draw_pairs(combos, 2, random.Random(0))
        >>> len({combos[i][0] for i in picked}), len({combos[i][1] for i in picked})
        (2, 2)
        >>> sorted(draw_pairs(combos, None, random.Random(0)))
        [0, 1, 2, 3]
    """
    order = list(range(len(combos)))
    rng.shuffle(order)
    first, rest, used = [], [], set()
    for i in order:
        c, r = combos[i]
        if ("c", c) in used or ("r", r) in used:
            rest.append(i)
        else:
            first.append(i)
            used |= {("c", c), ("r", r)}
    return (first + rest)[:k]


def _empty_counts() -> dict[str, Any]:
    return {"records": 0, "tasks": 0, "groups": 0, "chosen_candidates": 0, "rejected_candidates": 0,
            "groups_with_both": 0, "tasks_with_both": 0, "pairs": 0,
            "skipped": {"no_reward": 0, "no_trained_turn": 0, "not_a_candidate": 0, "reward_not_lower": 0,
                        "no_distinct_completion": 0}}


def build_pairs(records: Iterable[dict[str, Any]], max_pairs_per_task: int | None = 1,
                seed: int = 0) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Preference rows (see the module docstring) and per-split counts from scored records.

    Counts per split: ``records`` read, ``tasks`` (distinct task ids), ``groups`` (task and opening: one per task on
    ReAct splits, one per question on query splits), ``chosen_candidates`` / ``rejected_candidates``,
    ``groups_with_both`` and ``tasks_with_both`` (a kept and a failed trajectory with a lower reward), ``pairs``
    written, and ``skipped`` by reason: records without a reward or a trained turn, or on neither side (successful
    but dropped by a filter, kept without success); combinations whose rejected reward is not lower, or whose
    completions, once the shared prefix is factored out, are the same or leave a side with nothing trained.

    Example (task t0 has a success and a failure; t1 only successes):
        >>> h = lambda v: {"from": "human", "value": v, "loss": None}
        >>> g = lambda v: {"from": "gpt", "value": v, "loss": True}
        >>> def rec(i, task, ok):
        ...     return {"id": f"os_{i}", "split": "os", "task_id": task, "reward": float(ok), "success": ok,
        ...             "filter": {"kept": ok}, "conversations": [h(f"task {task}"), g(f"answer {i}")]}
        >>> records = [rec(0, "t0", True), rec(1, "t0", False), rec(2, "t1", True), rec(3, "t1", True)]
        >>> rows, counts = build_pairs(records)
        >>> [(r["id"], r["chosen_id"], r["rejected_id"]) for r in rows]
        [('os_pair_0', 'os_0', 'os_1')]
        >>> {k: counts["os"][k] for k in ("records", "tasks", "groups_with_both", "tasks_with_both", "pairs")}
        {'records': 4, 'tasks': 2, 'groups_with_both': 1, 'tasks_with_both': 1, 'pairs': 1}
    """
    if max_pairs_per_task is not None and max_pairs_per_task < 1:
        raise ValueError(f"max_pairs_per_task must be >= 1 (None: every combination), got {max_pairs_per_task}")
    counts: dict[str, dict[str, Any]] = {}
    groups: dict[tuple[str, str, str], dict[str, list[dict[str, Any]]]] = defaultdict(
        lambda: {"chosen": [], "rejected": []})
    tasks: dict[str, set[str]] = defaultdict(set)
    for rec in records:
        split = rec["split"]
        c = counts.setdefault(split, _empty_counts())
        c["records"] += 1
        tasks[split].add(rec["task_id"])
        head = opening(rec["conversations"])
        if head is None:
            c["skipped"]["no_trained_turn"] += 1
            continue
        group = groups[(split, rec["task_id"], content_hash(head))]
        if rec.get("reward") is None or rec.get("success") is None:
            c["skipped"]["no_reward"] += 1
        elif rec["filter"]["kept"] and rec["success"]:
            group["chosen"].append(rec)
        elif not rec["filter"]["kept"] and not rec["success"]:
            group["rejected"].append(rec)
        else:  # successful but dropped by a filter, or kept without success under a lower bar: neither side
            c["skipped"]["not_a_candidate"] += 1
    rows: list[dict[str, Any]] = []
    both: dict[str, set[str]] = defaultdict(set)
    for split in sorted(counts, key=lambda s: (SPLITS.index(s) if s in SPLITS else len(SPLITS), s)):
        c = counts[split]
        c["tasks"] = len(tasks[split])
        n = 0
        for key in sorted(k for k in groups if k[0] == split):
            group = groups[key]
            c["groups"] += 1
            chosen = sorted(group["chosen"], key=lambda r: r["id"])
            rejected = sorted(group["rejected"], key=lambda r: r["id"])
            c["chosen_candidates"] += len(chosen)
            c["rejected_candidates"] += len(rejected)
            combos = [(w, lo) for w in chosen for lo in rejected]
            lower = [(w, lo) for w, lo in combos if lo["reward"] < w["reward"]]
            c["skipped"]["reward_not_lower"] += len(combos) - len(lower)
            if not lower:
                continue
            c["groups_with_both"] += 1
            both[split].add(key[1])
            usable = [(w, lo, row) for w, lo in lower if (row := make_pair(w, lo)) is not None]
            c["skipped"]["no_distinct_completion"] += len(lower) - len(usable)
            rng = random.Random(f"{seed}:{key[0]}:{key[1]}:{key[2]}")
            for i in draw_pairs([(w["id"], lo["id"]) for w, lo, _ in usable], max_pairs_per_task, rng):
                rows.append({"id": f"{split}_pair_{n}", **usable[i][2]})
                n += 1
        c["tasks_with_both"] = len(both[split])
        c["pairs"] = n
    return rows, counts


def _card(manifest: dict[str, Any]) -> str:
    """The pairs dir's README: what the manifest says (a manifest of ``pairs_from_dir`` says it all)."""
    front = ("---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*.parquet\n"
             "tags:\n- agentinstruct\n- agent-tuning\n- dpo\n- preference\n---\n")
    pairs = sum(f["rows"] for f in manifest["data_files"])
    source = (manifest.get("source") or {}).get("path")
    lines = [f"# AgentInstruct preference pairs\n\n{pairs} pairs"
             + (f" from `{source}` (its `all` config), seed {manifest.get('seed')}, at most "
                f"{manifest.get('max_pairs_per_task')} per task (per question on query splits)" if source else "")
             + f". Made by agentinstruct {manifest.get('agentinstruct_version', __version__)}.\n"]
    if manifest.get("rule"):
        lines.append(f"Rule: {manifest['rule']}.\n")
    if manifest.get("splits"):
        lines.append("| split | records | tasks | groups | groups with both | tasks with both | pairs |\n"
                     "|---|---|---|---|---|---|---|\n" + "".join(
                         f"| {split} | {c['records']} | {c['tasks']} | {c['groups']} | {c['groups_with_both']} | "
                         f"{c['tasks_with_both']} | {c['pairs']} |\n" for split, c in manifest["splits"].items()))
    lines.append(
        "Columns: `prompt`, `chosen`, `rejected` (TRL's conversational preference format: role/content messages, "
        "the shared opening factored into `prompt`), `chosen_loss` / `rejected_loss` (per completion message: true "
        "on the agent turns to train, false on environment observations), `id`, `split`, `task_id`, `chosen_id` / "
        "`rejected_id` (record ids in the source's `all` config), `chosen_reward` / `rejected_reward`.\n\n"
        "Sources, hashes and counts: `manifest.json`. Plain TRL `DPOTrainer` trains every completion token, "
        "observations included; agentinstruct's entry point trains only the `loss: true` turns:\n\n"
        "```bash\npython -m agentinstruct.training.dpo --config training/recipes/dpo-cpu.yaml --dataset_name DIR\n```\n")
    return front + "\n".join(lines)


def write_pairs(out: Path, rows: list[dict[str, Any]], manifest: dict[str, Any]) -> dict[str, Any]:
    """Write the pairs, ``manifest.json`` and ``README.md`` to ``out`` (the data file named by its hash, older ones
    removed after the manifest points at the new one); returns the manifest written.

    Example:
        >>> m = write_pairs(Path("pairs"), [], {"format": PAIRS_FORMAT})
        >>> m["data_files"], sorted(p.name for p in Path("pairs").iterdir())
        ([{'path': 'data/train-....parquet', 'sha256': '...', 'rows': 0}], ['README.md', 'data', 'manifest.json'])
    """
    return write_train_dir(out, rows, ARROW_SCHEMA, MANIFEST, manifest, _card)


def read_pairs(root: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rows and manifest of a pairs dir, each data file checked against the manifest's sha256.

    Read with pyarrow, not ``load_dataset(DIR)``, for the reason ``datadir.read_train_rows`` gives (datasets caches a
    local dir by its name).

    Example:
        >>> _ = write_pairs(Path("pairs"), [], {"format": PAIRS_FORMAT})
        >>> read_pairs(Path("pairs"))[1]["format"]
        'agentinstruct-pairs'
        >>> read_pairs(Path("."))
        Traceback (most recent call last):
        ...
        FileNotFoundError: .: not a pairs dir (no manifest.json of format agentinstruct-pairs); make one with
        `agentinstruct pairs`
    """
    root = Path(root)
    manifest = read_manifest(root)
    if manifest is None or manifest.get("format") != PAIRS_FORMAT:
        raise FileNotFoundError(f"{root}: not a pairs dir (no {MANIFEST} of format {PAIRS_FORMAT}); make one with "
                                "`agentinstruct pairs`")
    return read_train_rows(root, manifest, MANIFEST), manifest


def pairs_from_dir(src: Path, out: Path, splits: list[str] | None = None, max_pairs_per_task: int | None = 1,
                   seed: int = 0) -> dict[str, Any]:
    """Read the ``all`` config of dataset dir ``src`` (``splits`` only, when given), build the pairs, write them to
    ``out``; returns the manifest. Raises ``ValueError`` when no pair can be made, naming the counts.

    Example (a dir whose task t0 has a kept and a failed attempt):
        >>> from agentinstruct.datasetdir.release import write_split
        >>> from agentinstruct.records.record import imported_agent, make_record
        >>> def rec(i, ok):
        ...     conv = [{"from": "human", "value": "Count the files.", "loss": None},
        ...             {"from": "gpt", "value": f"Act: answer({i})", "loss": True}]
        ...     return make_record(id=f"os_{i}", split="os", conversations=conv, task_id="t0", instruction="Count.",
        ...         instruction_source="self_instruct", reward=float(ok), success=ok,
        ...         reward_details={"metric": "success", "components": [], "termination": "answered",
        ...                         "format_errors": 0},
        ...         env={"name": "os", "version": "1", "backend": None}, agent=imported_agent(),
        ...         filter={"bar": "reward>=1.0", "kept": ok, "reason": None if ok else "reward 0.0 < 1.0"})
        >>> _ = write_split(Path("built"), "os", [rec(0, True), rec(1, False)])
        >>> m = pairs_from_dir(Path("built"), Path("pairs"))
        >>> m["total"]["pairs"], m["splits"]["os"]["tasks_with_both"], m["source"]["kind"]
        (1, 1, 'dir')
    """
    src, out = Path(src), Path(out)
    manifest = read_manifest(src)
    if manifest is None or manifest.get("format") != "agentinstruct-dataset":
        raise FileNotFoundError(f"{src}: not a dataset dir (no {MANIFEST}); make one with `agentinstruct build`")
    present = [s for s in SPLITS if s in manifest["rows"].get("all", {})]
    for split in splits or []:
        if split not in present:
            raise ValueError(f"{src}: no split {split!r} in its all config (it has {', '.join(present) or 'none'})")
    chosen_splits = [s for s in present if not splits or s in splits]
    records = (r for s in chosen_splits for r in iter_records(src, "all", s))
    rows, counts = build_pairs(records, max_pairs_per_task, seed)
    total = {k: sum(c[k] for c in counts.values()) for k in _empty_counts() if k != "skipped"}
    if not rows:
        raise ValueError(f"{src}: no preference pair: {total['tasks']} tasks, {total['groups_with_both']} with both a "
                         "kept and a failed trajectory of lower reward; pairs need several attempts per task "
                         "(`agentinstruct build ... --attempts N`, or a second build with --name)")
    return write_pairs(out, rows, {
        "format": PAIRS_FORMAT, "agentinstruct_version": __version__, "seed": seed,
        "max_pairs_per_task": max_pairs_per_task, "rule": RULE,
        "source": {"kind": "dir", "path": str(src), "manifest_sha256": sha256_file(src / MANIFEST),
                   "schema_version": manifest.get("schema_version"), "builder_version": manifest.get("builder_version"),
                   "config": "all", "splits": chosen_splits,
                   "data_files": [{"path": f.path, "sha256": f.sha256, "rows": f.rows} for f in data_files(src)
                                  if f.config == "all" and f.split in chosen_splits]},
        "splits": counts, "total": total,
    })
