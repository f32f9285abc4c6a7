"""Running a filter step over a dataset dir that is already written (``agentinstruct dedup``, ``decontaminate``).

Only records still kept are checked; a record the step drops stays in the
``all`` config with ``filter.kept`` false and the step's reason, and every
record's ``filter.bar`` gains the step's condition. What the step found is
written to ``DIR/reports/{name}.json`` (the card shows it, ``publish`` ships it),
merged with earlier runs of the same settings so a rerun after a crash loses
nothing. Then each split is rewritten through ``write_split`` (validated,
atomic).
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentinstruct.datasetdir.fileutil import atomic_write_text
from agentinstruct.datasetdir.layout import REPORTS, data_files, iter_records
from agentinstruct.datasetdir.release import write_splits
from agentinstruct.filters.base import Filter
from agentinstruct.schemas import SPLITS


class BatchFilter(Filter):
    """A filter that can decide many records at once (dedup needs their order, decontamination batches for speed).

    ``settings`` names the run (same settings = same run, merged in the
    report); ``found`` lists what it dropped, one dict per record with its ``id``.
    """

    def decide_all(self, records: Sequence[dict[str, Any]]) -> list[tuple[bool, str | None]]:
        """Decisions for ``records`` in order (the default asks ``filter`` one record at a time).

        Example:
            >>> from agentinstruct.filters.dedup import Deduplicator
            >>> records = [{"id": "os_0", "split": "os", "instruction": "Count the files in /tmp."},
            ...            {"id": "os_1", "split": "os", "instruction": "count the files in /tmp"}]
            >>> Deduplicator(keys=["instruction"]).decide_all(records)
            [(True, None), (False, 'duplicate: instruction of os_0')]
        """
        return [self(r) for r in records]

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """What identifies this run: method and parameters, as JSON."""

    @abstractmethod
    def found(self) -> list[dict[str, Any]]:
        """One entry per dropped record: its ``id`` and what it matched."""


def _with_bar(bar: str | None, step: str) -> str:
    if bar and step in bar.split(" and "):
        return bar
    return f"{bar} and {step}" if bar else step


def _merge_report(path: Path, run: dict[str, Any]) -> dict[str, Any]:
    runs = json.loads(path.read_text(encoding="utf-8"))["runs"] if path.exists() else []
    settings = {k: v for k, v in run.items() if k not in ("checked", "found")}
    for old in runs:
        if {k: v for k, v in old.items() if k not in ("checked", "found")} == settings:
            ids = {f["id"] for f in run["found"]}
            earlier = [f for f in old["found"] if f["id"] not in ids]
            # Records an earlier run dropped are not checked again; count them as checked once.
            old["found"], old["checked"] = earlier + run["found"], run["checked"] + len(earlier)
            break
    else:
        runs.append(run)
    return {"runs": runs}


def filter_dir(root: Path, step: BatchFilter, report: str) -> dict[str, int]:
    """Apply ``step`` to the kept records of every split of a dataset dir; returns records dropped per split.

    Example (the THUDM sample shipped with the package, plus a copy of its os row as ``os_1``):
        >>> from importlib import resources
        >>> from agentinstruct.filters.dedup import Deduplicator
        >>> from agentinstruct.records.thudm import import_thudm
        >>> sample = resources.files("agentinstruct.records").joinpath("samples/thudm_sample.jsonl")
        >>> lines = sample.read_text().splitlines()
        >>> _ = Path("rows.jsonl").write_text("\\n".join(lines + [lines[0].replace('"os_0"', '"os_1"', 1)]))
        >>> import_thudm("rows.jsonl", Path("out"))
        {'os': 2, 'db': 1, 'alfworld': 2, 'webshop': 2, 'mind2web': 1}
        >>> filter_dir(Path("out"), Deduplicator(), "dedup")
        {'os': 1, 'db': 0, 'alfworld': 0, 'webshop': 0, 'mind2web': 0}
        >>> [(r["id"], r["filter"]["reason"]) for r in iter_records(Path("out"), "all", "os")]
        [('os_0', None), ('os_1', 'duplicate: instruction of os_0')]
        >>> sorted(p.name for p in Path("out/reports").iterdir())
        ['dedup.json']
    """
    root = Path(root)
    present = {f.split for f in data_files(root) if f.config == "all"}
    splits = [s for s in SPLITS if s in present]
    if not splits:
        raise FileNotFoundError(f"{root}: no data files (expected a dataset dir with an all config)")
    records = {s: list(iter_records(root, "all", s)) for s in splits}
    kept = [r for s in splits for r in records[s] if r["filter"]["kept"]]
    dropped: Counter = Counter()
    for record, (keep, reason) in zip(kept, step.decide_all(kept)):
        if not keep:
            record["filter"] = {**record["filter"], "kept": False, "reason": reason}
            dropped[record["split"]] += 1
    for s in splits:
        for record in records[s]:
            record["filter"] = {**record["filter"], "bar": _with_bar(record["filter"]["bar"], step.bar)}
    run = {**step.settings(), "checked": len(kept), "found": step.found()}
    path = root / REPORTS / f"{report}.json"
    # The report first: the dir's one commit lists it in the manifest and shows it on the card.
    atomic_write_text(path, json.dumps(_merge_report(path, run), indent=1, ensure_ascii=False) + "\n")
    write_splits(root, records)
    return {s: dropped[s] for s in splits}
