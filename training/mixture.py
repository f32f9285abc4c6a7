"""The AgentTuning mixture: agent trajectories and general chat sampled by ratio, written as a training set.

The paper's objective is J = eta * E_agent + (1 - eta) * E_general, realised by
sampling: each training example is drawn from the agent data with probability
eta and from the general data otherwise (eta = 0.2 for AgentLM).

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
import pyarrow.parquet as pq

from agentinstruct import __version__
from agentinstruct.datasetdir.fileutil import atomic_write_text, sha256_file
from agentinstruct.datasetdir.layout import MANIFEST, data_files, iter_records, read_manifest, write_parquet_by_hash
from agentinstruct.training.sharegpt import DEFAULT_MAX_TURNS, read_general, require_hub_id

MIXTURE_MANIFEST = "mixture.json"
RULE = ("each example is drawn from the agent data with probability eta, else from the general data; each source is "
        "read in a shuffled order that is reshuffled when exhausted, so rows repeat as evenly as possible")
RULE_NO_OVERSAMPLE = ("every row is used at most once: round(eta * n) agent rows and n - round(eta * n) general rows, "
                      "n = min(samples, agent rows / eta, general rows / (1 - eta)), in shuffled order")

TURN = pa.struct([("from", pa.string()), ("value", pa.string()), ("loss", pa.bool_())])
ARROW_SCHEMA = pa.schema([
    ("id", pa.string()), ("source", pa.string()), ("source_split", pa.string()), ("source_id", pa.string()),
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
        >>> import_thudm(str(sample), Path("out"))
        {'os': 1, 'db': 1, 'mind2web': 1}
        >>> rows, source = load_agent("out")
        >>> source["kind"], [r["split"] for r in rows], source["skipped_no_trained_turn"]
        ('dir', ['os', 'db', 'mind2web'], 0)
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
class Mixture:
    """Mixed rows and what was drawn."""

    rows: list[dict[str, Any]]
    drawn: dict[str, Any]
    rule: str


def mix(agent: list[dict[str, Any]], general: list[dict[str, Any]], eta: float, samples: int, seed: int,
        oversample: bool = True) -> Mixture:
    """Sample ``samples`` training examples, each from ``agent`` with probability ``eta``, else from ``general``.

    Example:
        >>> a = [{"id": "os_0", "split": "os", "conversations": []}]
        >>> g = [{"id": f"g{i}", "conversations": []} for i in range(10)]
        >>> m = mix(a, g, eta=0.5, samples=8, seed=0)
        >>> m.drawn["agent"] + m.drawn["general"], m.drawn["agent_max_uses"] > 1
        (8, True)
    """
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be in [0, 1], got {eta}")
    if samples <= 0:
        raise ValueError(f"samples must be positive, got {samples}")
    if eta > 0 and not agent:
        raise ValueError("eta > 0 but there is no agent data")
    if eta < 1 and not general:
        raise ValueError("eta < 1 but there is no general data")
    rng = random.Random(seed)
    if oversample:
        picks = ["agent" if rng.random() < eta else "general" for _ in range(samples)]
    else:
        caps = [samples] + ([int(len(agent) / eta)] if eta > 0 else []) + ([int(len(general) / (1 - eta))] if eta < 1 else [])
        total = min(caps)
        n_agent = round(eta * total)
        picks = ["agent"] * n_agent + ["general"] * (total - n_agent)
        rng.shuffle(picks)
    decks = {"agent": _Deck(len(agent), rng, oversample), "general": _Deck(len(general), rng, oversample)}
    uses: dict[str, Counter] = {"agent": Counter(), "general": Counter()}
    rows = []
    for n, which in enumerate(picks):
        idx, epoch = decks[which].draw()
        uses[which][idx] += 1
        src = (agent if which == "agent" else general)[idx]
        rows.append({
            "id": f"mix_{n}", "source": which, "source_split": src.get("split") or "general", "source_id": src["id"],
            "epoch": epoch, "conversations": [{"from": t["from"], "value": t["value"], "loss": t["loss"]} for t in src["conversations"]],
        })
    by_split = Counter(r["source_split"] for r in rows if r["source"] == "agent")
    drawn = {
        "samples_requested": samples, "samples": len(rows),
        "agent": sum(uses["agent"].values()), "general": sum(uses["general"].values()),
        "agent_by_split": dict(sorted(by_split.items())),
        "agent_unique": len(uses["agent"]), "general_unique": len(uses["general"]),
        "agent_max_uses": max(uses["agent"].values(), default=0), "general_max_uses": max(uses["general"].values(), default=0),
    }
    return Mixture(rows, drawn, RULE if oversample else RULE_NO_OVERSAMPLE)


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


def _card(manifest: dict[str, Any]) -> str:
    eff = manifest["effective_eta"]
    drawn = manifest["drawn"]
    front = (
        "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*.parquet\n"
        "tags:\n- agentinstruct\n- agent-tuning\n- mixture\n---\n"
    )
    return front + (
        "# AgentTuning training mixture\n\n"
        f"{drawn['samples']} examples: {drawn['agent']} agent, {drawn['general']} general "
        f"(eta requested {manifest['eta']}, effective {eff['examples']:.4f} in examples, "
        f"{eff['trained_tokens']:.4f} in trained tokens). Made by agentinstruct {manifest['agentinstruct_version']}.\n\n"
        f"Rule: {manifest['rule']}.\n\n"
        "Columns: `id`, `source` (agent | general), `source_split`, `source_id`, `epoch` (pass through the source "
        "the row came from), `conversations` (`from`, `value`, `loss`: only `loss: true` turns are trained).\n\n"
        "Sources, revisions, hashes and counts: `mixture.json`.\n\n"
        "```bash\npython -m agentinstruct.training.sft --config training/recipes/agentlm-7b.yaml --dataset_name DIR\n```\n"
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
    out = Path(out)
    table = pa.Table.from_pylist(mixture.rows, schema=ARROW_SCHEMA)
    final, digest = write_parquet_by_hash(out / "data", "train", table)
    manifest = {**manifest, "data_files": [{"path": final.relative_to(out).as_posix(), "sha256": digest, "rows": len(mixture.rows)}]}
    atomic_write_text(out / MIXTURE_MANIFEST, json.dumps(manifest, indent=2) + "\n")
    atomic_write_text(out / "README.md", _card(manifest))
    for stale in (out / "data").glob("train-*.parquet"):
        if stale != final:
            stale.unlink()
    return manifest


def read_mixture(root: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rows and manifest of a mixture dir, each data file checked against the manifest's sha256.

    Read with pyarrow rather than ``load_dataset(DIR)``: datasets 5.2 caches a
    local dir by its name and config, not its files, so two dirs named ``mix``
    would silently share the first one's rows.

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
    rows: list[dict[str, Any]] = []
    for f in manifest["data_files"]:
        file = root / f["path"]
        if not file.exists():
            raise FileNotFoundError(f"{root}: {f['path']} listed in {MIXTURE_MANIFEST} is missing")
        if sha256_file(file) != f["sha256"]:
            raise ValueError(f"{root}: {f['path']} does not match its sha256 in {MIXTURE_MANIFEST}")
        rows.extend(pq.read_table(file).to_pylist())
    return rows, manifest


def build_mixture(agent_src: str, general_src: str | None, eta: float, samples: int, seed: int, out: Path,
                  tokenizer: Any, oversample: bool = True, max_turns: int | None = None,
                  agent_revision: str | None = None, general_revision: str | None = None) -> dict[str, Any]:
    """Read both sources, sample the mixture, count trained tokens with ``tokenizer``, write it to ``out``.

    Example (needs a model's tokenizer):
        >>> build_mixture("demo-out", None, 0.2, 1000, 0, Path("mix"), tok)["drawn"]["agent"]  # doctest: +SKIP
        196
    """
    agent, agent_source = load_agent(agent_src, agent_revision)
    general, general_stats = read_general(general_src, max_turns or DEFAULT_MAX_TURNS, general_revision)
    mixture = mix(agent, general, eta, samples, seed, oversample)
    tokens = trained_tokens(mixture.rows, tokenizer)
    total_tokens = sum(tokens.values())
    manifest = {
        "format": "agentinstruct-mixture",
        "agentinstruct_version": __version__,
        "eta": eta, "seed": seed, "oversample": oversample, "rule": mixture.rule,
        "sources": {"agent": agent_source, "general": general_stats.as_dict()},
        "drawn": mixture.drawn,
        "effective_eta": {
            "examples": mixture.drawn["agent"] / max(mixture.drawn["samples"], 1),
            "trained_tokens": tokens["agent"] / total_tokens if total_tokens else 0.0,
            "trained_tokens_by_source": dict(tokens),
            "tokenizer": getattr(tokenizer, "name_or_path", None) or type(tokenizer).__name__,
            "note": "tokens of loss:true turn texts, chat-template markup not counted",
        },
    }
    return write_mixture(out, mixture, manifest)
