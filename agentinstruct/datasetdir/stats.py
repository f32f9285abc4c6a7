"""What each split of a dataset dir holds, read from its ``all`` config: counts, provenance, rewards, turns.

The card's tables and the plots are drawn from these numbers, so both always
describe the same data.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from agentinstruct.datasetdir.layout import ROW_GROUP_ROWS, DataFile
from agentinstruct.schemas import SPLITS

COLUMNS = ["task_id", "filter", "reward", "num_turns", "instruction_source", "env", "agent", "reward_details", "build"]


def reason_kind(reason: str) -> str:
    """The kind of a drop reason, so reasons can be counted by kind.

    A reason written as ``kind: detail`` has the kind before the colon; in any
    other reason the numbers are replaced by ``N`` (``reward 0.5 < 1.0`` and
    ``reward 0.2 < 1.0`` are both ``reward N < N``).

    Example:
        >>> reason_kind("contaminated: 13-gram overlap with os/dev.json#3"), reason_kind("reward 0.5 < 1.0")
        ('contaminated', 'reward N < N')
    """
    if ":" in reason:
        return reason.split(":", 1)[0].strip()
    return re.sub(r"\d+(\.\d+)?", "N", reason)


@dataclass
class SplitStats:
    """One split's numbers: scored and kept counts, drop reasons, provenance counts, rewards and trained turns."""

    split: str
    scored: int = 0
    kept: int = 0
    reasons: Counter = field(default_factory=Counter)
    sources: Counter = field(default_factory=Counter)
    envs: Counter = field(default_factory=Counter)
    models: Counter = field(default_factory=Counter)
    policies: Counter = field(default_factory=Counter)
    bars: Counter = field(default_factory=Counter)
    metrics: Counter = field(default_factory=Counter)
    rewards_kept: list[float] = field(default_factory=list)
    rewards_dropped: list[float] = field(default_factory=list)
    turns_kept: list[int] = field(default_factory=list)
    turns_dropped: list[int] = field(default_factory=list)
    components: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    """Reward component -> task_id -> its values over the task's scored records (attempts, a query task's
    questions), so a component is averaged per task first."""
    builds: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    """(build name, task source) -> [scored, kept, most attempts at one task], for records that name their build."""

    @property
    def dropped(self) -> int:
        return self.scored - self.kept

    @property
    def reason_kinds(self) -> Counter:
        kinds: Counter = Counter()
        for reason, n in self.reasons.items():
            kinds[reason_kind(reason)] += n
        return kinds

    @property
    def rewards(self) -> list[float]:
        return self.rewards_kept + self.rewards_dropped

    @property
    def mean_turns_kept(self) -> float | None:
        """Mean trained agent turns (``num_turns``) of the kept trajectories; None when none is kept.

        Example:
            >>> SplitStats("os", turns_kept=[2, 2, 3]).mean_turns_kept, SplitStats("db").mean_turns_kept
            (2.3333333333333335, None)
        """
        return sum(self.turns_kept) / len(self.turns_kept) if self.turns_kept else None


def _env_label(env: dict) -> str:
    version = f" {env['version']}" if env.get("version") else ""
    backend = env.get("backend") or "not recorded"
    return f"{env['name']}{version} ({backend})"


def split_stats(root: Path, files: Iterable[DataFile]) -> list[SplitStats]:
    """Numbers per split from the ``all`` data files among ``files``, in THUDM's split order.

    Example (a dir made from the THUDM sample shipped with the package):
        >>> from importlib import resources
        >>> from agentinstruct.datasetdir.layout import data_files
        >>> from agentinstruct.records.thudm import import_thudm
        >>> sample = resources.files("agentinstruct.records").joinpath("samples/thudm_sample.jsonl")
        >>> import_thudm(str(sample), Path("out"))
        {'os': 1, 'db': 1, 'alfworld': 2, 'webshop': 2, 'mind2web': 1}
        >>> [(s.split, s.scored, s.kept, s.turns_kept) for s in split_stats(Path("out"), data_files(Path("out")))]
        [('os', 1, 1, [2]), ('db', 1, 1, [2]), ('alfworld', 2, 2, [5, 4]), ('webshop', 2, 2, [5, 3]), ('mind2web', 1, 1, [1])]
    """
    stats: dict[str, SplitStats] = {}
    for f in files:
        if f.config != "all":
            continue
        s = stats.setdefault(f.split, SplitStats(f.split))
        path = Path(root) / f.path
        present = set(pq.read_schema(path).names)  # files written before schema 1.2 have no `build` column
        # Row group by row group: these columns as Python objects are far larger than the file, so never all at once.
        columns = [c for c in COLUMNS if c in present]
        batches = pq.ParquetFile(path).iter_batches(batch_size=ROW_GROUP_ROWS, columns=columns)
        for row in (row for batch in batches for row in batch.to_pylist()):
            kept = row["filter"]["kept"]
            s.scored += 1
            s.kept += kept
            if not kept:
                s.reasons[row["filter"]["reason"]] += 1
            s.sources[row["instruction_source"]] += 1
            s.envs[_env_label(row["env"])] += 1
            agent = row["agent"]
            s.models[agent["model"] or "not recorded"] += 1
            s.policies[agent["policy"]] += 1
            s.bars[row["filter"]["bar"] or "not recorded"] += 1
            details = row["reward_details"]
            s.metrics[details["metric"] if details else "not recorded"] += 1
            for c in details["components"] if details else []:
                s.components.setdefault(c["name"], {}).setdefault(row["task_id"], []).append(c["value"])
            if row["reward"] is not None:
                (s.rewards_kept if kept else s.rewards_dropped).append(row["reward"])
            (s.turns_kept if kept else s.turns_dropped).append(row["num_turns"])
            if row.get("build"):
                b = row["build"]
                counts = s.builds.setdefault((b["name"], b["tasks"] or "not recorded"), [0, 0, 0])
                counts[0] += 1
                counts[1] += kept
                counts[2] = max(counts[2], b["attempt"] + 1)
    return sorted(stats.values(), key=lambda s: SPLITS.index(s.split))
