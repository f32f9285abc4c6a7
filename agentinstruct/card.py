"""The dataset card (README.md): YAML front matter generated from the data, and a body that explains it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import datasets
import pyarrow.parquet as pq
import yaml

from agentinstruct import SPLITS
from agentinstruct.datasetdir import CONFIGS, data_files, read_manifest
from agentinstruct.schema import load_schema, features


def front_matter(root: Path) -> dict[str, Any]:
    """The card's YAML: ``configs`` (data files per split) and ``dataset_info`` (features, row counts).

    Example:
        >>> front_matter(Path("out"))["configs"][0]["config_name"]  # doctest: +SKIP
        'default'
    """
    files = data_files(root)
    configs, infos = [], []
    for config in CONFIGS:
        mine = [f for f in files if f.config == config]
        if not mine:
            continue
        configs.append({"config_name": config, "data_files": [{"split": f.split, "path": f.path} for f in mine]})
        splits = datasets.SplitDict()
        for f in mine:
            splits.add(datasets.SplitInfo(name=f.split, num_bytes=f.bytes, num_examples=f.rows))
        info = datasets.DatasetInfo(features=features(), splits=splits)
        infos.append({"config_name": config, **info._to_yaml_dict()})
    return {
        "configs": configs,
        "dataset_info": infos,
        "language": ["en"],
        "license": "apache-2.0",
        "task_categories": ["text-generation"],
        "tags": ["agent", "agent-tuning", "trajectories", "agentinstruct"],
        "pretty_name": "AgentInstruct trajectories (agentinstruct)",
    }


def _split_stats(root: Path) -> list[dict[str, Any]]:
    stats = []
    for f in data_files(root):
        if f.config != "all":
            continue
        table = pq.read_table(root / f.path, columns=["filter", "reward", "num_turns", "instruction_source"])
        rows = table.to_pylist()
        kept = [r for r in rows if r["filter"]["kept"]]
        stats.append({
            "split": f.split,
            "scored": len(rows),
            "kept": len(kept),
            "reasons": Counter(r["filter"]["reason"] for r in rows if not r["filter"]["kept"]),
            "sources": Counter(r["instruction_source"] for r in rows),
            "avg_turns": sum(r["num_turns"] for r in kept) / len(kept) if kept else 0.0,
        })
    return sorted(stats, key=lambda s: SPLITS.index(s["split"]))


def _fields_table() -> str:
    lines = ["| field | meaning |", "|---|---|"]
    for name, node in load_schema()["properties"].items():
        lines.append(f"| `{name}` | {node.get('description', '').replace('|', '/')} |")
    return "\n".join(lines)


def render_body(root: Path) -> str:
    """The card's Markdown body: what the data is, counts per split, fields, how to load."""
    manifest = read_manifest(root) or {}
    stats = _split_stats(root)
    rows = ["| split | scored | kept | kept share | avg trained turns (kept) | sources | dropped because |", "|---|---|---|---|---|---|---|"]
    for s in stats:
        share = f"{s['kept'] / s['scored']:.1%}" if s["scored"] else "-"
        reasons = ", ".join(f"{r} ({n})" for r, n in s["reasons"].most_common()) or "-"
        sources = ", ".join(f"{k} ({n})" for k, n in s["sources"].most_common())
        rows.append(f"| {s['split']} | {s['scored']} | {s['kept']} | {share} | {s['avg_turns']:.2f} | {sources} | {reasons} |")
    first = stats[0]["split"] if stats else "os"
    return f"""# AgentInstruct trajectories

Agent trajectories in the format of [THUDM/AgentInstruct](https://huggingface.co/datasets/THUDM/AgentInstruct)
(AgentTuning, arXiv 2310.12823), made by [agentinstruct](https://pypi.org/project/agentinstruct/): an LLM agent
acts in a real environment, every trajectory is scored by the environment, filtered, validated against a
published JSON Schema, and carries its reward and provenance.

Every row keeps THUDM's `id` and `conversations`, so code written for THUDM/AgentInstruct works unchanged.

## Configs

- `default`: the kept trajectories of each split, as THUDM released them.
- `all`: every scored trajectory with its filter decision (`filter.kept`, `filter.reason`), for negative samples, DPO or other bars.

## Splits

{chr(10).join(rows)}

## Fields

Schema version {manifest.get('schema_version', '?')} (`trajectory.schema.json` in this repo).

{_fields_table()}

`loss` follows THUDM: null on human turns, false on gpt turns that must not be trained (the acknowledgement after
the task prompt and the turns of the built-in one-shot example), true on the agent's own turns.

## Load

```python
from datasets import load_dataset

kept = load_dataset("ORG/NAME", split="{first}")             # or a local dir: load_dataset("path/to/dir", split="{first}")
every = load_dataset("ORG/NAME", "all", split="{first}")     # with dropped trajectories and their reasons
```

## Files

`manifest.json` lists every data file with its sha256 and row count, the schema version and the builder version
(agentinstruct {manifest.get('builder_version', '?')}).
"""


def render_card(root: Path) -> str:
    """The whole README.md of a dataset dir, front matter and body, from the data alone.

    Example:
        >>> render_card(Path("out")).startswith("---")  # doctest: +SKIP
        True
    """
    root = Path(root)
    yaml_text = yaml.safe_dump(front_matter(root), sort_keys=False, allow_unicode=True)
    return f"---\n{yaml_text}---\n\n{render_body(root)}"
