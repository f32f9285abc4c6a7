"""The dataset card (README.md): YAML front matter generated from the data, and a body that explains it."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import datasets
import yaml

from agentinstruct.datasetdir.layout import CONFIGS, PLOTS, REPORTS, data_files, read_manifest
from agentinstruct.datasetdir.stats import SplitStats, split_stats
from agentinstruct.records.schema import features
from agentinstruct.schemas import (INSTRUCTION_SOURCE_MEANINGS, INSTRUCTION_SOURCES, SPLIT_ENVIRONMENTS, SPLITS,
                                   load_schema)


def front_matter(root: Path) -> dict[str, Any]:
    """The card's YAML: ``configs`` (data files per split) and ``dataset_info`` (features, row counts).

    Example (a dir made from the THUDM sample shipped with the package):
        >>> from importlib import resources
        >>> from agentinstruct.records.thudm import import_thudm
        >>> sample = resources.files("agentinstruct.records").joinpath("samples/thudm_sample.jsonl")
        >>> import_thudm(str(sample), Path("out"))
        {'os': 1, 'db': 1, 'alfworld': 2, 'webshop': 2, 'mind2web': 1}
        >>> [c["config_name"] for c in front_matter(Path("out"))["configs"]]
        ['default', 'all']
        >>> front_matter(Path("out"))["configs"][0]["data_files"][0]
        {'split': 'os', 'path': 'data/default/os-....parquet'}
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


CITATION = """@misc{zeng2023agenttuning,
  title={AgentTuning: Enabling Generalized Agent Abilities for LLMs},
  author={Aohan Zeng and Mingdao Liu and Rui Lu and Bowen Wang and Xiao Liu and Yuxiao Dong and Jie Tang},
  year={2023},
  eprint={2310.12823},
  archivePrefix={arXiv},
  primaryClass={cs.CL}
}"""

REWARD_BANDS = [("0", 0.0, 0.0), ("(0, 0.25)", 0.0, 0.25), ("[0.25, 0.5)", 0.25, 0.5), ("[0.5, 0.75)", 0.5, 0.75),
                ("[0.75, 1)", 0.75, 1.0), ("1", 1.0, 1.0)]


def _counts(counter: Counter, limit: int = 3) -> str:
    top = counter.most_common(limit)
    text = ", ".join(f"{k} ({n})" if len(counter) > 1 else str(k) for k, n in top)
    return text + (f", {len(counter) - limit} more" if len(counter) > limit else "")


def _cell(text: str) -> str:
    return text.replace("|", "/").replace("\n", " ")


def _band(value: float, low: float, high: float) -> bool:
    return value == low if low == high else low < value < high if low == 0.0 else low <= value < high


def _quantiles(values: list[int]) -> str:
    if not values:
        return "- | - | - | -"
    ordered = sorted(values)
    median = ordered[len(ordered) // 2] if len(ordered) % 2 else (ordered[len(ordered) // 2 - 1] + ordered[len(ordered) // 2]) / 2
    return f"{ordered[0]} | {median:g} | {sum(ordered) / len(ordered):.2f} | {ordered[-1]}"


def _overview(stats: list[SplitStats]) -> str:
    rows = ["| split | scored | kept (`default`) | dropped | kept share | mean reward (all) | avg trained turns (kept) |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for s in stats:
        share = f"{s.kept / s.scored:.1%}" if s.scored else "-"
        reward = f"{sum(s.rewards) / len(s.rewards):.3f}" if s.rewards else "not recorded"
        turns = f"{s.mean_turns_kept:.2f}" if s.turns_kept else "-"
        rows.append(f"| {s.split} | {s.scored} | {s.kept} | {s.dropped} | {share} | {reward} | {turns} |")
    total, kept = sum(s.scored for s in stats), sum(s.kept for s in stats)
    rows.append(f"| **all** | **{total}** | **{kept}** | **{total - kept}** | {f'{kept / total:.1%}' if total else '-'} | | |")
    return "\n".join(rows)


def _provenance(stats: list[SplitStats]) -> str:
    rows = ["| split | task source | environment (backend) | model | policy | reward metric | bar for keeping |",
            "|---|---|---|---|---|---|---|"]
    for s in stats:
        cells = [_counts(c) for c in (s.sources, s.envs, s.models, s.policies, s.metrics, s.bars)]
        rows.append(f"| {s.split} | " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(rows)


def _builds(stats: list[SplitStats]) -> str:
    """Per source: a table of each split's builds (task source, policy or model of their own), when records name
    their build."""
    if not any(s.builds for s in stats):
        return ""
    rows = ["\n\nRecords per build (a split may join several builds: other task sources, policies or models; "
            "`build.name` in each row):\n",
            "| split | build | task source | scored | kept | attempts per task |", "|---|---|---|---|---|---|"]
    for s in stats:
        for (name, tasks), (scored, kept, attempts) in s.builds.items():
            rows.append(f"| {s.split} | {_cell(name)} | {_cell(tasks)} | {scored} | {kept} | {attempts} |")
    return "\n".join(rows)


def _components(stats: list[SplitStats], shown: int = 8) -> str:
    """The reward components of each split, each averaged per task then over tasks (for mind2web: the share of
    steps whose positive was among the ranked candidates, and the step metrics)."""
    rows = ["| split | component | mean over tasks | tasks |", "|---|---|---|---|"]
    for s in stats:
        for name, per_task in list(s.components.items())[:shown]:
            means = [sum(v) / len(v) for v in per_task.values()]
            rows.append(f"| {s.split} | `{_cell(name)}` | {sum(means) / len(means):.3f} | {len(means)} |")
        if len(s.components) > shown:
            rows.append(f"| {s.split} | ... and {len(s.components) - shown} more | | |")
    if len(rows) == 2:
        return ""
    return ("\n\nReward components (the parts the environment scored; each averaged over a task's records, then over "
            "the split's tasks):\n\n" + "\n".join(rows))


def _descriptions(stats: list[SplitStats]) -> str:
    """What each split's builder says about how its episodes are posed (``Builder.card_description``)."""
    from agentinstruct.builders import BUILDERS, builder_class  # the registry: the card names no split itself

    lines = []
    for s in stats:
        text = builder_class(s.split).card_description if s.split in BUILDERS else ""
        if text:
            lines.append(f"- `{s.split}`: {text}")
    return ("\n\n" + "\n".join(lines)) if lines else ""


def _drops(stats: list[SplitStats]) -> str:
    if not any(s.dropped for s in stats):
        return "No trajectory was dropped: every scored trajectory is in `default`."
    rows = ["| split | kept | dropped | dropped by kind of reason | most frequent reasons |", "|---|---:|---:|---|---|"]
    for s in stats:
        kinds = ", ".join(f"{k} ({n})" for k, n in s.reason_kinds.most_common()) or "-"
        top = "; ".join(f"`{_cell(r)}` ({n})" for r, n in s.reasons.most_common(3)) or "-"
        rows.append(f"| {s.split} | {s.kept} | {s.dropped} | {_cell(kinds)} | {top} |")
    return "\n".join(rows)


def _reward_table(stats: list[SplitStats]) -> str:
    rewarded = [s for s in stats if s.rewards]
    if not rewarded:
        return ("No reward is recorded: the rows were imported from a release that did not keep rewards "
                "(`reward` is null, which means unknown, not failed).")
    head = "| split | " + " | ".join(name for name, _, _ in REWARD_BANDS) + " | mean |"
    rows = [head, "|---|" + "---:|" * (len(REWARD_BANDS) + 1)]
    for s in rewarded:
        cells = [str(sum(1 for r in s.rewards if _band(r, lo, hi))) for _, lo, hi in REWARD_BANDS]
        rows.append(f"| {s.split} | " + " | ".join(cells) + f" | {sum(s.rewards) / len(s.rewards):.3f} |")
    return "\n".join(rows)


AGENTINSTRUCT_TURNS: dict[str, float] = {"os": 3.85, "db": 2.13, "alfworld": 13.52, "webshop": 3.68, "kg": 6.04,
                                         "mind2web": 1.00}
"""AgentInstruct's mean agent turns per kept trajectory, by split: AgentTuning (arXiv 2310.12823) Table 1 (db: its
self-instruct part; the part derived from BIRD averages 2.03). Reference figures about the released data."""


def _turn_table(stats: list[SplitStats]) -> str:
    rows = ["| split | kept: min | median | mean | max | dropped: min | median | mean | max "
            "| AgentInstruct kept: mean |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in stats:
        rows.append(f"| {s.split} | {_quantiles(s.turns_kept)} | {_quantiles(s.turns_dropped)} "
                    f"| {AGENTINSTRUCT_TURNS[s.split]:.2f} |")
    return "\n".join(rows)


def _skipped(root: Path) -> str:
    report = (_report(root, "skipped") or {}).get("splits", {})
    splits = [(split, report[split]) for split in SPLITS if report.get(split)]
    if not splits:
        return ""
    counts = ", ".join(f"{split} {len(entries)}" for split, entries in splits)
    rows = [f"| {split} | `{e['task_id']}` | {_cell(e['reason'])} |" for split, entries in splits for e in entries[:20]]
    more = sum(max(len(entries) - 20, 0) for _, entries in splits)
    return (f"\n\nTasks skipped for having no reference solution (`--policy reference` derives a trajectory only "
            f"from a solution whose observations show its answer, so these are in neither config): {counts}.\n\n"
            "| split | task | reason |\n|---|---|---|\n" + "\n".join(rows)
            + (f"\n\n... and {more} more (see `reports/skipped.json`)." if more else ""))


def _plots(manifest: dict[str, Any]) -> str:
    alt = {"rewards": "Reward distribution per split, kept and dropped", "turns": "Trained turns per trajectory per split, kept and dropped"}
    images = []
    for asset in manifest.get("assets", []):
        path = asset["path"]
        if path.startswith(f"{PLOTS}/"):
            name = path.split("/")[-1].rsplit("-", 1)[0]
            images.append(f"![{alt.get(name, name)}]({path})")
    return "\n\n".join(images)


# Meanings of the schema's fields that carry no description of their own.
FIELD_NOTES = {
    "conversations[].from": "`human`: the prompt, the task or an environment observation; `gpt`: the agent.",
    "conversations[].value": "The turn's text, exactly as sent to or received from the model.",
    "conversations[].loss": "Whether to train on this turn (see below).",
    "reward_details.components[].name": "Component name.",
    "reward_details.components[].value": "Component value.",
    "env.name": "Environment name (usually the split).",
    "env.version": "Environment version, e.g. the task set or image version; null when not recorded.",
    "agent.model": "Model name as the endpoint reported it; null on imported rows.",
    "agent.sampling": "Sampling settings sent with every request; null where the endpoint default was used.",
    "agent.sampling.temperature": "Sampling temperature.",
    "agent.sampling.top_p": "Nucleus sampling mass.",
    "agent.sampling.max_tokens": "Largest reply, in tokens.",
    "agent.sampling.seed": "Seed sent to the endpoint.",
    "agent.usage": "What the episode cost.",
    "agent.usage.calls": "Model requests made.",
    "agent.usage.prompt_tokens": "Prompt tokens over all requests.",
    "agent.usage.completion_tokens": "Completion tokens over all requests.",
    "agent.usage.cost_usd": "Cost in US dollars; null when no price was given.",
    "filter.kept": "True: in `default` (and `all`); false: only in `all`.",
}


def _field_rows(props: dict[str, Any], prefix: str = "") -> list[str]:
    rows = []
    for name, node in props.items():
        types = node.get("type", [])
        types = "/".join(types) if isinstance(types, list) else types
        if "enum" in node:
            types += ": " + ", ".join(f"`{v}`" for v in node["enum"])
        meaning = node.get("description") or FIELD_NOTES.get(f"{prefix}{name}", "")
        rows.append(f"| `{prefix}{name}` | {types} | {_cell(meaning)} |")
        if "properties" in node:
            rows.extend(_field_rows(node["properties"], f"{prefix}{name}."))
        elif "properties" in node.get("items", {}):
            rows.extend(_field_rows(node["items"]["properties"], f"{prefix}{name}[]."))
    return rows


def _fields_table() -> str:
    return "\n".join(["| field | type | meaning |", "|---|---|---|", *_field_rows(load_schema()["properties"])])


def _report(root: Path, name: str) -> dict[str, Any] | None:
    path = root / REPORTS / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _dropped_as(stats: list[SplitStats], *kinds: str) -> str:
    return ", ".join(f"{s.split} {sum(s.reason_kinds.get(kind, 0) for kind in kinds)}" for s in stats)


def _decontamination(root: Path, stats: list[SplitStats]) -> str:
    report = _report(root, "decontamination")
    if not report:
        return ("Not checked yet: no evaluation set has been compared with these instructions. "
                "`agentinstruct decontaminate DIR` compares them with the AgentBench dev tasks and any JSON/JSONL "
                "eval files, drops contaminated records and records the result here.")
    parts = []
    for run in report["runs"]:
        sets = "\n".join(f"| `{e['name']}` | {e['field']} | {e['instances']} | `{e['sha256'][:12]}` |" for e in run["eval_sets"])
        matches = run["found"]
        listed = "\n".join(f"- `{m['id']}` ({m['field']}) overlaps `{m['eval_id']}`: \"{_cell(m['ngram'])}\"" for m in matches[:20])
        more = f"\n- ... and {len(matches) - 20} more (see `reports/decontamination.json`)" if len(matches) > 20 else ""
        short = (f" {len(run['too_short'])} eval instances are shorter than {run['min_words']} words and were not "
                 f"checked: {', '.join(f'`{i}`' for i in run['too_short'][:10])}." if run["too_short"] else "")
        parts.append(
            f"Method: {run['method']}. Checked {run['checked']} kept records "
            f"(fields: {', '.join(run['fields'])}); dropped {len(matches)} as contaminated.{short}\n\n"
            f"| evaluation set | text field | instances | sha256 |\n|---|---|---:|---|\n{sets}\n\n"
            + (f"Matches:\n\n{listed}{more}" if matches else "No instruction shares an n-gram with these evaluation instances.")
        )
    current = _dropped_as(stats, "contaminated")
    return "\n\n".join(parts) + f"\n\nDropped as `contaminated` in this release: {current}."


def _dedup(root: Path, stats: list[SplitStats]) -> str:
    report = _report(root, "dedup")
    if not report:
        return "Not run yet: `agentinstruct dedup DIR` drops exact and near-duplicate instructions and trajectories."
    parts = []
    for run in report["runs"]:
        pairs = run["found"]
        listed = "\n".join(f"- `{p['id']}`: {p['key']} of `{p['of']}` ({p['how']})" for p in pairs[:20])
        more = f"\n- ... and {len(pairs) - 20} more (see `reports/dedup.json`)" if len(pairs) > 20 else ""
        parts.append(
            f"Method: {run['method']}. Checked {run['checked']} kept records; dropped {len(pairs)}.\n\n"
            + (f"{listed}{more}" if pairs else "No duplicates found.")
        )
    current = _dropped_as(stats, "duplicate", "near-duplicate")
    return "\n\n".join(parts) + f"\n\nDropped as `duplicate` or `near-duplicate` in this release: {current}."


_NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")


def _number(n: int) -> str:
    return _NUMBERS[n] if n < len(_NUMBERS) else str(n)


def _environments() -> str:
    return ", ".join(f"{SPLIT_ENVIRONMENTS[s]} `{s}`" for s in SPLITS)


def _sources() -> str:
    return ", ".join(f"`{s}` = {INSTRUCTION_SOURCE_MEANINGS[s]}" for s in INSTRUCTION_SOURCES)


def render_body(root: Path, manifest: dict[str, Any] | None = None, stats: list[SplitStats] | None = None) -> str:
    """The card's Markdown body: what the data is, how each split was built, distributions, fields, filters, use.

    ``manifest`` defaults to the dir's own (``publish`` passes one stamped with the Hub repo); ``stats`` to the
    numbers of the dir's data files (a caller that already read them passes them).
    """
    manifest = manifest or read_manifest(root) or {}
    stats = split_stats(root, data_files(root)) if stats is None else stats
    repo = manifest.get("hub_repo") or "ORG/NAME"
    first = stats[0].split if stats else "os"
    splits = ", ".join(f"`{s.split}`" for s in stats) or "none yet"
    return f"""# AgentInstruct trajectories

Agent trajectories in the format of [THUDM/AgentInstruct](https://huggingface.co/datasets/THUDM/AgentInstruct),
made with [agentinstruct](https://pypi.org/project/agentinstruct/) {manifest.get('builder_version', '?')}.

**What AgentInstruct is.** AgentTuning ([arXiv 2310.12823](https://arxiv.org/abs/2310.12823)) showed that
fine-tuning an LLM on a small set of high-quality agent trajectories, mixed with general chat data, gives it agent
abilities that carry over to unseen tasks without losing general skills. AgentInstruct is that set: an LLM agent
works on tasks in {_number(len(SPLITS))} environments ({_environments()}) in ReAct style, thinking before each action;
the environment scores every trajectory and only the ones that reach a reward bar are kept.

**What this release adds.** Every row keeps THUDM's `id` and `conversations`, so code written for
THUDM/AgentInstruct works unchanged, and carries what the original did not publish: the reward and how it was
computed, the environment and backend, the model and sampling settings, and the filter decision. Dropped
trajectories are published too (config `all`) for negative samples, DPO or other bars. The rows follow a published
JSON Schema (`trajectory.schema.json`, version {manifest.get('schema_version', '?')}).

Splits in this release: {splits}.

## Configs and counts

- `default`: the kept trajectories of each split, as THUDM released them.
- `all`: every scored trajectory with its filter decision (`filter.kept`, `filter.reason`).

{_overview(stats)}

## How each split was built

Each trajectory comes from one task: its instruction (task source: {_sources()}), an episode in the environment with the agent
(policy `model` = the model chose every action, `reference` = the reference solution was executed and the model
wrote the thoughts), a reward from the environment, and the bar a trajectory must reach to be kept.{_descriptions(stats)}

{_provenance(stats)}{_builds(stats)}{_components(stats)}

## Kept and dropped

Drop reasons have the form `kind: detail` and are counted by kind; the `all` config holds every dropped record
with its full reason.

{_drops(stats)}{_skipped(root)}

## Distributions

{_plots(manifest)}

Reward of every scored trajectory (counts per band):

{_reward_table(stats)}

Trained agent turns (`num_turns`, gpt turns with `loss: true`), beside AgentInstruct's mean per kept trajectory:

{_turn_table(stats)}

AgentInstruct's means are the average turns of its kept trajectories in AgentTuning's Table 1
([arXiv 2310.12823](https://arxiv.org/abs/2310.12823); db: its self-instruct part, the part derived from BIRD
averages 2.03). Both count the agent's own turns after the one-shot: gpt turns with `loss: true`, so neither the
one-shot example nor the "Ok." acknowledgement counts. The paper does not spell its count out, but its figures
fit this one (Mind2Web's rows have a single gpt turn: 1.00), and not one that counts the "Ok." (every db
trajectory that runs a query would then have at least 3 turns, against 2.13).

## Fields

Schema version {manifest.get('schema_version', '?')}; the contract is `trajectory.schema.json` in this repo (JSON
Schema 2020-12). A change to it bumps the version.

{_fields_table()}

**`loss`** says which turns to train on, as in THUDM's release: `null` on every human turn (prompts and
environment observations are never trained), `false` on gpt turns that are scaffolding (the "Ok." acknowledgement
after the task prompt and every gpt turn of the built-in one-shot example), `true` on the agent's own turns of the
real trajectory. `num_turns` counts the `true` turns. Most trainers ignore this field; train on the `true` turns
only to reproduce AgentLM.

## Decontamination

{_decontamination(root, stats)}

## Deduplication

{_dedup(root, stats)}

## Load

Releases are git tags `vX.Y.Z` on this repo and never move; `main` follows the latest release. Pin a tag:

```python
from datasets import load_dataset

kept = load_dataset("{repo}", split="{first}", revision="v1.0.0")          # kept trajectories
every = load_dataset("{repo}", "all", split="{first}", revision="v1.0.0")  # with dropped ones and their reasons
```

## Train

Turn a row into chat messages and train on the turns whose `loss` is true:

```python
def to_messages(row):
    roles = {{"human": "user", "gpt": "assistant"}}
    return [{{"role": roles[t["from"]], "content": t["value"], "train": t["loss"] is True}} for t in row["conversations"]]
```

With agentinstruct, mix the agent data with general chat data as AgentTuning did (agent share eta = 0.2) and
train with TRL; the loss mask follows `loss`:

```bash
agentinstruct mix --agent {repo} --eta 0.2 --samples 100000 --seed 0 --out mix-agentlm   # + ShareGPT
python -m agentinstruct.training.sft --config training/recipes/agentlm-7b.yaml              # TRL SFT
```

## Files

`manifest.json` lists every data file, plot and report with its sha256 and size, the row counts, the schema
version and the agentinstruct version; `agentinstruct publish` checks the files of each tag against it.

## Citation

```bibtex
{CITATION}
```
"""


def render_card(root: Path, manifest: dict[str, Any] | None = None, stats: list[SplitStats] | None = None) -> str:
    """The whole README.md of a dataset dir, front matter and body, from the data alone.

    ``manifest`` defaults to the dir's own; ``publish`` passes the manifest stamped with the Hub repo. ``stats``
    defaults to the numbers of the dir's data files.

    Example (a dir made from the THUDM sample shipped with the package; ``import_thudm`` wrote its card too):
        >>> from importlib import resources
        >>> from agentinstruct.records.thudm import import_thudm
        >>> sample = resources.files("agentinstruct.records").joinpath("samples/thudm_sample.jsonl")
        >>> import_thudm(str(sample), Path("out"))
        {'os': 1, 'db': 1, 'alfworld': 2, 'webshop': 2, 'mind2web': 1}
        >>> render_card(Path("out")).splitlines()[:3]
        ['---', 'configs:', '- config_name: default']
        >>> render_card(Path("out")) == Path("out/README.md").read_text(encoding="utf-8")
        True
    """
    root = Path(root)
    yaml_text = yaml.safe_dump(front_matter(root), sort_keys=False, allow_unicode=True)
    return f"---\n{yaml_text}---\n\n{render_body(root, manifest, stats)}"
