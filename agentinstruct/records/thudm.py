"""THUDM/AgentInstruct compatibility: import released rows into our records, export them back unchanged."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from agentinstruct.datasetdir.fileutil import atomic_write
from agentinstruct.datasetdir.layout import iter_records
from agentinstruct.datasetdir.release import write_splits
from agentinstruct.records.record import imported_agent, make_record
from agentinstruct.records.recordio import Entry, read_entries
from agentinstruct.records.schema import THUDM_TURN_FIELDS, Problem, id_split
from agentinstruct.records.validation import InvalidRecords, Report
from agentinstruct.schemas import SPLITS

THUDM_TURN_KEYS = set(THUDM_TURN_FIELDS)


def _hub_entries(repo_id: str, split: str | None) -> Iterator[Entry]:
    import datasets

    splits = [split] if split else None
    loaded = datasets.load_dataset(repo_id, split=splits) if splits else datasets.load_dataset(repo_id)
    parts = dict(zip(splits, loaded)) if splits else dict(loaded)
    for name, ds in parts.items():
        for n, row in enumerate(ds):
            yield Entry(Path(f"{repo_id}[{name}]"), f"row {n}", row)


def thudm_entries(src: str, split: str | None = None) -> Iterator[Entry]:
    """THUDM-shaped rows from a JSON/JSONL/Parquet file, a folder of them, or a Hub dataset id.

    Example (the sample of the THUDM release shipped with the package):
        >>> from importlib import resources
        >>> sample = resources.files("agentinstruct.records").joinpath("samples/thudm_sample.jsonl")
        >>> [e.record["id"] for e in thudm_entries(str(sample))]
        ['os_0', 'db_0', 'alfworld_0', 'alfworld_1', 'webshop_0', 'webshop_1', 'mind2web_0']
    """
    path = Path(src)
    if path.exists():
        yield from read_entries(path)
    else:
        yield from _hub_entries(src, split)


def _thudm_problems(row: Any) -> list[Problem]:
    if not isinstance(row, dict):
        return [Problem("", f"expected an object with id and conversations, got {type(row).__name__}")]
    problems = []
    if not isinstance(row.get("id"), str):
        problems.append(Problem("/id", "missing or not a string"))
    conv = row.get("conversations")
    if not isinstance(conv, list) or not conv:
        return problems + [Problem("/conversations", "missing or not a non-empty list")]
    for i, turn in enumerate(conv):
        if not isinstance(turn, dict) or set(turn) != THUDM_TURN_KEYS:
            got = sorted(turn) if isinstance(turn, dict) else type(turn).__name__
            problems.append(Problem(f"/conversations/{i}", f"expected keys from, value, loss; got {got}"))
    return problems


def split_of(row_id: str, forced: str | None = None) -> str | None:
    """The split of a THUDM row: ``forced`` if given, else the id prefix (``os_12`` -> ``os``).

    Example:
        >>> split_of("mind2web_3")
        'mind2web'
    """
    # One prefix rule for import and `validate --contract thudm`, so validate accepts every row import does.
    return forced or id_split(row_id)


def instruction_of(conversations: list[dict[str, Any]]) -> str:
    """The task text of a THUDM conversation: the last human turn before the first trained gpt turn.

    THUDM rows do not store the instruction apart; in every split that turn is
    the one that poses the task (after the prompt, acknowledgement and one-shot).
    """
    last_human = ""
    for turn in conversations:
        if turn["from"] == "human":
            last_human = turn["value"]
        elif turn["loss"] is True:
            break
    return last_human


def from_thudm(row: dict[str, Any], split: str, created_at: str | None = None) -> dict[str, Any]:
    """One THUDM row as our record: conversations untouched, provenance marked ``imported``, reward null.

    Null reward, success and reward_details mean "the release did not record
    them", not "failed"; ``filter.kept`` is true because THUDM released only
    kept trajectories.

    Example:
        >>> rec = from_thudm({"id": "os_0", "conversations": [{"from": "human", "value": "q", "loss": None},
        ...     {"from": "gpt", "value": "a", "loss": True}]}, "os")
        >>> rec["instruction_source"], rec["reward"]
        ('imported', None)
    """
    return make_record(
        id=row["id"],
        split=split,
        conversations=row["conversations"],
        task_id=row["id"],
        instruction=instruction_of(row["conversations"]),
        instruction_source="imported",
        reward=None,
        success=None,
        reward_details=None,
        env={"name": split, "version": None, "backend": None},
        agent=imported_agent(),
        filter={"bar": None, "kept": True, "reason": None},
        created_at=created_at,
    )


def to_thudm(record: dict[str, Any]) -> dict[str, Any]:
    """Our record back in THUDM's shape: ``id`` and ``conversations`` only.

    Example:
        >>> to_thudm({"id": "os_0", "conversations": [], "reward": 1.0})
        {'id': 'os_0', 'conversations': []}
    """
    return {"id": record["id"], "conversations": record["conversations"]}


def import_thudm(src: str, out: Path, split: str | None = None, created_at: str | None = None) -> dict[str, int]:
    """Convert THUDM rows into a dataset dir; returns rows per split. Nothing is written if any row is bad.

    Example:
        >>> from importlib import resources
        >>> sample = resources.files("agentinstruct.records").joinpath("samples/thudm_sample.jsonl")
        >>> import_thudm(str(sample), Path("out"))
        {'os': 1, 'db': 1, 'alfworld': 2, 'webshop': 2, 'mind2web': 1}
    """
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    report = Report()
    by_split: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in thudm_entries(src, split):
        problems = [Problem("", entry.error)] if entry.error else _thudm_problems(entry.record)
        row_split = None
        if not problems:
            row_split = split_of(entry.record["id"], split)
            if row_split is None:
                problems = [Problem("/id", f"no split in id prefix; expected one of {', '.join(SPLITS)} or pass --split")]
        report.add(entry.label, problems)
        if not problems:
            by_split[row_split].append(from_thudm(entry.record, row_split, created_at))
    if not report.ok:
        raise InvalidRecords(report)
    if not by_split:
        raise ValueError(f"{src}: no rows found")
    write_splits(out, by_split)  # one commit of the dir for every split imported
    return {name: len(records) for name, records in by_split.items()}


def export_thudm(root: Path, out: Path, split: str | None = None, config: str = "default") -> int:
    """Write a dataset dir's rows in THUDM's shape to ``out`` (.json, .jsonl or .parquet); returns the row count.

    Example:
        >>> from importlib import resources
        >>> sample = resources.files("agentinstruct.records").joinpath("samples/thudm_sample.jsonl")
        >>> import_thudm(str(sample), Path("out"))
        {'os': 1, 'db': 1, 'alfworld': 2, 'webshop': 2, 'mind2web': 1}
        >>> export_thudm(Path("out"), Path("os.jsonl"), split="os")
        1
        >>> Path("os.jsonl").read_text().startswith('{"id": "os_0", "conversations": [{"from": "human"')
        True
    """
    rows = [to_thudm(r) for r in iter_records(root, config, split)]
    if out.suffix == ".jsonl":
        atomic_write(out, lambda tmp: tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"))
    elif out.suffix == ".json":
        atomic_write(out, lambda tmp: tmp.write_text(json.dumps(rows, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"))
    elif out.suffix == ".parquet":
        turn = pa.struct([("from", pa.string()), ("value", pa.string()), ("loss", pa.bool_())])
        schema = pa.schema([("id", pa.string()), ("conversations", pa.list_(turn))])
        atomic_write(out, lambda tmp: pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp))
    else:
        raise ValueError(f"{out}: unknown output type; use .json, .jsonl or .parquet")
    return len(rows)
