"""The AgentTuning mixture: agent trajectories and general chat sampled by ratio, written as a training set.

The paper's objective is J = eta * E_agent + (1 - eta) * E_general, realised by
sampling: each training example is drawn from the agent data with probability
eta and from the general data otherwise (eta = 0.2 for AgentLM).

Several sources per side (``Source``, ``mixconfig``): within its side, a
source is drawn with probability proportional to its weight; eta stays the
agent side's share. The manifest states each source's draws and repeats and
warns about sources repeated more than ``max_repeats`` times.

Repetition rule (default): each source is read through a shuffled order; when
it runs out it is reshuffled and read again, so every row is used k or k+1
times before any is used k+2 times. With 1,866 agent rows and eta = 0.2 the
agent rows repeat; the ``epoch`` column says which pass a row came from.

``oversample=False`` is the TRL-style alternative (TRL's mixture ``fraction``
never repeats a row): every row is used at most once, exactly round(eta * n)
rows come from the agent data, and the total n shrinks to what the smaller
side allows.

The output is a dataset dir that ``load_dataset(DIR, split="train")`` and the
SFT entry point (``--dataset_name DIR``) read: ``data/train-{hash}.parquet``,
``mixture.json`` (the manifest: sources with revisions and hashes, counts
drawn, effective eta in examples and in trained tokens) and a ``README.md``.
Rows keep ``loss`` per turn: agent rows as recorded, general rows null on
human turns and true on gpt turns.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from agentinstruct import __version__
from agentinstruct.datasetdir.fileutil import sha256_file
from agentinstruct.datasetdir.layout import MANIFEST, data_files, iter_records, read_manifest
from agentinstruct.training.datadir import read_train_rows, write_train_dir
from agentinstruct.training.mixconfig import MixtureSpec
from agentinstruct.training.sharegpt import DEFAULT_MAX_TURNS, read_general, require_hub_id

MIXTURE_MANIFEST = "mixture.json"
RULE = ("each example is drawn from the agent data with probability eta, else from the general data; each source is "
        "read in a shuffled order that is reshuffled when exhausted, so rows repeat as evenly as possible")
RULE_NO_OVERSAMPLE = ("every row is used at most once: round(eta * n) agent rows and n - round(eta * n) general rows, "
                      "n = min(samples, agent rows / eta, general rows / (1 - eta)), in shuffled order")

TURN = pa.struct([("from", pa.string()), ("value", pa.string()), ("loss", pa.bool_())])
ARROW_SCHEMA = pa.schema([
    ("id", pa.string()), ("source", pa.string()), ("source_name", pa.string()), ("source_split", pa.string()),
    ("source_id", pa.string()),
    ("epoch", pa.int32()), ("conversations", pa.list_(TURN)),
])


def _has_trained_turn(conv: list[dict[str, Any]]) -> bool:
    return any(t.get("from") == "gpt" and t.get("loss") is True for t in conv)


def load_agent(src: str, revision: str | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Agent rows (``id``, ``split``, ``conversations``) of the ``default`` config of a dataset dir or Hub repo.

    Returns the rows and a source description with the revision and hashes
    the manifest records. Rows without a ``loss: true`` turn are skipped and
    counted (the THUDM release has none).

    Example (a dataset dir made from the THUDM sample shipped with the package):
        >>> from importlib import resources
        >>> from agentinstruct.records.thudm import import_thudm
        >>> sample = resources.files("agentinstruct.records").joinpath("samples/thudm_sample.jsonl")
        >>> written = import_thudm(str(sample), Path("out"))
        >>> rows, source = load_agent("out")
        >>> source["kind"], len(rows) == source["rows"] == sum(written.values()), source["skipped_no_trained_turn"]
        ('dir', True, 0)
    """
    path = Path(src)
    if path.is_dir():
        manifest = read_manifest(path)
        if manifest is None:
            raise FileNotFoundError(f"{path}: not a dataset dir (no {MANIFEST}); make one with "
                                    "`agentinstruct import-thudm` or `agentinstruct build`")
        records = [{"id": r["id"], "split": r["split"], "conversations": r["conversations"]} for r in iter_records(path, "default")]
        source = {"kind": "dir", "path": str(path), "manifest_sha256": sha256_file(path / MANIFEST),
                  "schema_version": manifest.get("schema_version"),
                  "data_files": [{"path": f.path, "sha256": f.sha256, "rows": f.rows} for f in data_files(path) if f.config == "default"]}
    elif path.exists():
        raise ValueError(f"{path}: --agent takes a dataset dir or a Hub dataset id, not a file "
                         "(convert files with `agentinstruct import-thudm`)")
    else:
        import datasets
        from huggingface_hub import HfApi

        require_hub_id(src)
        sha = HfApi().dataset_info(src, revision=revision).sha
        loaded = datasets.load_dataset(src, revision=sha)
        records = [{"id": r["id"], "split": r.get("split", name), "conversations": r["conversations"]}
                   for name, ds in loaded.items() for r in ds]
        source = {"kind": "hub", "repo_id": src, "revision": sha, "requested_revision": revision}
    rows = [r for r in records if _has_trained_turn(r["conversations"])]
    source["rows"] = len(rows)
    source["skipped_no_trained_turn"] = len(records) - len(rows)
    if not rows:
        raise ValueError(f"{src}: no agent rows with a trained (loss: true) turn")
    return rows, source


class _Deck:
    """A source read in shuffled order, reshuffled when exhausted (when ``repeat``)."""

    def __init__(self, n: int, rng: random.Random, repeat: bool):
        self.n, self.rng, self.repeat = n, rng, repeat
        self.order: list[int] = []
        self.epoch = -1

    def draw(self) -> tuple[int, int]:
        if not self.order:
            if self.epoch >= 0 and not self.repeat:
                raise IndexError("source exhausted")
            self.epoch += 1
            self.order = list(range(self.n))
            self.rng.shuffle(self.order)
            self.order.reverse()
        return self.order.pop(), self.epoch


@dataclass
class Source:
    """One source of a mixture side: its rows, a name for the manifest, and its weight within its side."""

    name: str
    rows: list[dict[str, Any]]
    weight: float = 1.0


@dataclass
class Mixture:
    """Mixed rows and what was drawn."""

    rows: list[dict[str, Any]]
    drawn: dict[str, Any]
    rule: str


def _as_sources(side: str, given: list[Any]) -> list[Source]:
    if given and all(isinstance(s, Source) for s in given):
        sources = list(given)
    elif any(isinstance(s, Source) for s in given):
        raise TypeError(f"{side}: give rows or Source objects, not both")
    else:
        sources = [Source(side, list(given))] if given else []
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ValueError(f"{side} sources must have distinct names, got {names}")
    for s in sources:
        if not s.weight > 0:
            raise ValueError(f"{side} source {s.name}: weight must be positive, got {s.weight}")
        if not s.rows:
            raise ValueError(f"{side} source {s.name}: no rows")
    return sources


def _counts(total: int, sources: list[Source]) -> list[int]:
    """``total`` split over ``sources`` by weight, largest remainders first, so the counts sum to ``total``."""
    weight = sum(s.weight for s in sources)
    exact = [total * s.weight / weight for s in sources]
    counts = [int(x) for x in exact]
    for i in sorted(range(len(sources)), key=lambda i: counts[i] - exact[i])[: total - sum(counts)]:
        counts[i] += 1
    return counts


def mix(agent: list[Any], general: list[Any], eta: float, samples: int, seed: int, oversample: bool = True) -> Mixture:
    """Sample ``samples`` training examples, each from the agent side with probability ``eta``, else from the general
    side; within a side, from each source with probability proportional to its weight.

    ``agent`` and ``general`` are row lists (one source each) or lists of ``Source``.

    Example:
        >>> a = [{"id": "os_0", "split": "os", "conversations": []}]
        >>> g = [{"id": f"g{i}", "conversations": []} for i in range(10)]
        >>> m = mix(a, g, eta=0.5, samples=8, seed=0)
        >>> m.drawn["agent"] + m.drawn["general"], m.drawn["agent_max_uses"] > 1
        (8, True)
        >>> m = mix(a, [Source("chat", g, 3.0), Source("code", g[:2], 1.0)], eta=0.0, samples=400, seed=0)
        >>> m.drawn["by_source"]["chat"]["drawn"] > 2 * m.drawn["by_source"]["code"]["drawn"]
        True
    """
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be in [0, 1], got {eta}")
    if samples <= 0:
        raise ValueError(f"samples must be positive, got {samples}")
    sides = {"agent": _as_sources("agent", agent), "general": _as_sources("general", general)}
    if eta > 0 and not sides["agent"]:
        raise ValueError("eta > 0 but there is no agent data")
    if eta < 1 and not sides["general"]:
        raise ValueError("eta < 1 but there is no general data")
    rng = random.Random(seed)
    if oversample:
        side_of = ["agent" if rng.random() < eta else "general" for _ in range(samples)]
        picks = []
        for side in side_of:
            sources = sides[side]
            k = 0 if len(sources) == 1 else rng.choices(range(len(sources)), [s.weight for s in sources])[0]
            picks.append((side, k))
    else:
        share = {"agent": eta, "general": 1 - eta}
        caps = [samples]
        for side, sources in sides.items():
            weight = sum(s.weight for s in sources)
            caps += [int(len(s.rows) / (share[side] * s.weight / weight)) for s in sources if share[side] > 0]
        total = min(caps)
        n_agent = round(eta * total)
        picks = []
        for side, n in (("agent", n_agent), ("general", total - n_agent)):
            if n:
                picks += [(side, k) for k, c in enumerate(_counts(n, sides[side])) for _ in range(c)]
        rng.shuffle(picks)
    decks = {(side, k): _Deck(len(s.rows), rng, oversample) for side, sources in sides.items() for k, s in enumerate(sources)}
    uses: dict[tuple[str, int], Counter] = {key: Counter() for key in decks}
    rows = []
    for n, (side, k) in enumerate(picks):
        idx, epoch = decks[side, k].draw()
        uses[side, k][idx] += 1
        source = sides[side][k]
        src = source.rows[idx]
        rows.append({
            "id": f"mix_{n}", "source": side, "source_name": source.name,
            "source_split": src.get("split") or "general", "source_id": src["id"], "epoch": epoch,
            "conversations": [{"from": t["from"], "value": t["value"], "loss": t["loss"]} for t in src["conversations"]],
        })
    by_split = Counter(r["source_split"] for r in rows if r["source"] == "agent")
    side_uses = {side: [u for (s, _), u in uses.items() if s == side] for side in sides}
    by_source = {}
    for (side, k), u in uses.items():
        source = sides[side][k]
        drawn_n = sum(u.values())
        by_source[source.name] = {"side": side, "weight": source.weight, "rows": len(source.rows), "drawn": drawn_n,
                                  "unique": len(u), "max_uses": max(u.values(), default=0),
                                  "mean_repeats": round(drawn_n / len(source.rows), 4)}
    drawn = {
        "samples_requested": samples, "samples": len(rows),
        "agent": sum(sum(u.values()) for u in side_uses["agent"]),
        "general": sum(sum(u.values()) for u in side_uses["general"]),
        "agent_by_split": dict(sorted(by_split.items())),
        "agent_unique": sum(len(u) for u in side_uses["agent"]),
        "general_unique": sum(len(u) for u in side_uses["general"]),
        "agent_max_uses": max((max(u.values(), default=0) for u in side_uses["agent"]), default=0),
        "general_max_uses": max((max(u.values(), default=0) for u in side_uses["general"]), default=0),
        "by_source": by_source,
    }
    return Mixture(rows, drawn, RULE if oversample else RULE_NO_OVERSAMPLE)


def repeat_warnings(drawn: dict[str, Any], max_repeats: int) -> list[str]:
    """One warning per source whose rows are used more than ``max_repeats`` times each.

    Example:
        >>> repeat_warnings({"by_source": {"sharegpt": {"max_uses": 5, "mean_repeats": 4.8, "rows": 16528}}}, 4)
        ['source sharegpt: its 16528 rows are used up to 5 times each (4.8 on average), more than max_repeats 4; add data or lower samples']
    """
    return [f"source {name}: its {s['rows']} rows are used up to {s['max_uses']} times each ({s['mean_repeats']:g} on "
            f"average), more than max_repeats {max_repeats}; add data or lower samples"
            for name, s in drawn.get("by_source", {}).items() if s["max_uses"] > max_repeats]


def trained_tokens(rows: list[dict[str, Any]], tokenizer: Any, batch_size: int = 1024) -> Counter:
    """Tokens of the trained (loss: true) turn texts, by ``source``; template markup is not counted.

    Example (needs a model's tokenizer):
        >>> trained_tokens(rows, tok)  # doctest: +SKIP
        Counter({'general': 9312871, 'agent': 2043311})
    """
    texts, sources = [], []
    for r in rows:
        for t in r["conversations"]:
            if t["from"] == "gpt" and t["loss"] is True:
                texts.append(t["value"])
                sources.append(r["source"])
    counts: Counter = Counter()
    for start in range(0, len(texts), batch_size):
        ids = tokenizer(texts[start:start + batch_size], add_special_tokens=False, return_attention_mask=False)["input_ids"]
        for source, seq in zip(sources[start:start + batch_size], ids):
            counts[source] += len(seq)
    return counts


MESSAGES_MAP = ('ds = ds.map(lambda r: {"messages": [{"role": {"human": "user", "gpt": "assistant"}[t["from"]], '
                '"content": t["value"]} for t in r["conversations"]]})')
"""The one line that gives a loaded mixture (or dataset dir split) a role/content ``messages`` column for TRL."""


def _card(manifest: dict[str, Any]) -> str:
    eff = manifest["effective_eta"]
    drawn = manifest["drawn"]
    front = (
        "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*.parquet\n"
        "tags:\n- agentinstruct\n- agent-tuning\n- mixture\n---\n"
    )
    sources = "".join(f"- {s['side']}: `{name}`, weight {s['weight']:g}, {s['rows']} rows, {s['drawn']} drawn "
                      f"({s['mean_repeats']:g} uses per row on average, at most {s['max_uses']})\n"
                      for name, s in drawn.get("by_source", {}).items())
    warnings = "".join(f"- warning: {w}\n" for w in manifest.get("warnings", []))
    return front + (
        "# AgentTuning training mixture\n\n"
        f"{drawn['samples']} examples: {drawn['agent']} agent, {drawn['general']} general "
        f"(eta requested {manifest['eta']}, effective {eff['examples']:.4f} in examples, "
        f"{eff['trained_tokens']:.4f} in trained tokens). Made by agentinstruct {manifest['agentinstruct_version']}.\n\n"
        f"Rule: {manifest['rule']}.\n\n"
        + (f"Sources:\n\n{sources}{warnings}\n" if sources else "")
        + "Columns: `id`, `source` (agent | general), `source_name`, `source_split`, `source_id`, `epoch` (pass through "
        "the source the row came from), `conversations` (`from`, `value`, `loss`: only `loss: true` turns are "
        "trained).\n\nSources, revisions, hashes and counts: `mixture.json`.\n\n"
        "```bash\npython -m agentinstruct.training.sft --config training/recipes/agentlm-7b.yaml --dataset_name DIR\n```\n\n"
        "Role/content messages for TRL's `SFTTrainer` or a chat template (`conversations` and its `loss` stay beside "
        "them; TRL then trains every assistant turn, agentinstruct's entry point only the `loss: true` ones):\n\n"
        f"```python\nfrom datasets import load_dataset\nds = load_dataset(\"DIR\", split=\"train\")\n{MESSAGES_MAP}\n```\n"
    )


def write_mixture(out: Path, mixture: Mixture, manifest: dict[str, Any]) -> dict[str, Any]:
    """Write the mixed rows, ``mixture.json`` and ``README.md`` to ``out``; returns the manifest written.

    Example (agent rows only: with eta 1 both effective etas are 1, no tokens need counting):
        >>> turns = [{"from": "human", "value": "Count the files.", "loss": None}, {"from": "gpt", "value": "3", "loss": True}]
        >>> m = mix([{"id": "os_0", "split": "os", "conversations": turns}], [], eta=1.0, samples=2, seed=0)
        >>> manifest = {"eta": 1.0, "rule": m.rule, "drawn": m.drawn, "agentinstruct_version": __version__,
        ...             "effective_eta": {"examples": 1.0, "trained_tokens": 1.0}}
        >>> write_mixture(Path("mix"), m, manifest)["data_files"]
        [{'path': 'data/train-....parquet', 'sha256': '...', 'rows': 2}]
        >>> sorted(p.name for p in Path("mix").iterdir())
        ['README.md', 'data', 'mixture.json']
    """
    return write_train_dir(out, mixture.rows, ARROW_SCHEMA, MIXTURE_MANIFEST, manifest, _card)


def read_mixture(root: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rows and manifest of a mixture dir, each data file checked against the manifest's sha256.

    Read with pyarrow rather than ``load_dataset(DIR)`` (see ``datadir.read_train_rows``).

    Example (a mixture of agent rows only, written as ``write_mixture`` shows):
        >>> turns = [{"from": "human", "value": "Count the files.", "loss": None}, {"from": "gpt", "value": "3", "loss": True}]
        >>> m = mix([{"id": "os_0", "split": "os", "conversations": turns}], [], eta=1.0, samples=2, seed=0)
        >>> _ = write_mixture(Path("mix"), m, {"eta": 1.0, "rule": m.rule, "drawn": m.drawn, "agentinstruct_version":
        ...                   __version__, "effective_eta": {"examples": 1.0, "trained_tokens": 1.0}})
        >>> rows, manifest = read_mixture(Path("mix"))
        >>> [(r["id"], r["source_id"], r["epoch"]) for r in rows], rows[0]["conversations"][0]["from"]
        ([('mix_0', 'os_0', 0), ('mix_1', 'os_0', 1)], 'human')
        >>> read_mixture(Path("."))
        Traceback (most recent call last):
        ...
        FileNotFoundError: .: not a mixture dir (no mixture.json); make one with `agentinstruct mix`
    """
    root = Path(root)
    path = root / MIXTURE_MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{root}: not a mixture dir (no {MIXTURE_MANIFEST}); make one with `agentinstruct mix`")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    return read_train_rows(root, manifest, MIXTURE_MANIFEST), manifest


def build_mixture(spec: MixtureSpec, out: Path, tokenizer: Any) -> dict[str, Any]:
    """Read every source, sample the mixture, count trained tokens with ``tokenizer``, write it to ``out``.

    The manifest lists each source (revision or hashes, rows, weight) and what
    was drawn from it; ``warnings`` names any source whose rows are used more
    than ``spec.max_repeats`` times.

    Example (needs a model's tokenizer):
        >>> spec = MixtureSpec(agent=[SourceSpec("demo-out")], eta=0.2, samples=1000)  # doctest: +SKIP
        >>> build_mixture(spec, Path("mix"), tok)["drawn"]["agent"]  # doctest: +SKIP
        196
    """
    if spec.samples <= 0:
        raise ValueError(f"samples must be positive, got {spec.samples}")
    agent, agent_desc = [], []
    for s in spec.agent:
        if s.path is None:
            raise ValueError("an agent source needs a path (dataset dir or Hub id)")
        rows, desc = load_agent(s.path, s.revision)
        agent.append(Source(s.name, rows, s.weight))
        agent_desc.append({"name": s.name, "weight": s.weight, **desc})
    general, general_desc = [], []
    if spec.eta < 1:
        for s in spec.general:
            rows, stats = read_general(s.path, spec.max_turns or DEFAULT_MAX_TURNS, s.revision)
            general.append(Source(s.name, rows, s.weight))
            general_desc.append({"name": s.name, "weight": s.weight, **stats.as_dict()})
    mixture = mix(agent, general, spec.eta, spec.samples, spec.seed, spec.oversample)
    tokens = trained_tokens(mixture.rows, tokenizer)
    total_tokens = sum(tokens.values())
    manifest = {
        "format": "agentinstruct-mixture",
        "agentinstruct_version": __version__,
        "eta": spec.eta, "seed": spec.seed, "oversample": spec.oversample, "rule": mixture.rule,
        "sources": {"agent": agent_desc, "general": general_desc},
        "drawn": mixture.drawn,
        "max_repeats": spec.max_repeats,
        "warnings": repeat_warnings(mixture.drawn, spec.max_repeats),
        "effective_eta": {
            "examples": mixture.drawn["agent"] / max(mixture.drawn["samples"], 1),
            "trained_tokens": tokens["agent"] / total_tokens if total_tokens else 0.0,
            "trained_tokens_by_source": dict(tokens),
            "tokenizer": getattr(tokenizer, "name_or_path", None) or type(tokenizer).__name__,
            "note": "tokens of loss:true turn texts, chat-template markup not counted",
        },
    }
    return write_mixture(out, mixture, manifest)
