"""The AgentLM model card and training curve written beside a checkpoint before it is saved or pushed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CURVE = "training_curve.png"


def plot_curve(log_history: list[dict[str, Any]], path: Path) -> bool:
    """Draw training loss against step as a PNG; False when the run logged no loss.

    Example:
        >>> plot_curve([{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}], Path("/tmp/curve.png"))
        True
    """
    points = [(h["step"], h["loss"]) for h in log_history if "loss" in h and "step" in h]
    if not points:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o" if len(points) < 30 else None)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (trained tokens)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def _link_source(source: dict[str, Any]) -> str:
    if source.get("kind") == "hub":
        repo, rev = source["repo_id"], source["revision"]
        return f"[{repo}](https://huggingface.co/datasets/{repo}/tree/{rev}) at revision `{rev}`"
    if source.get("kind") == "dir":
        return f"local dataset dir `{source['path']}` (manifest sha256 `{source.get('manifest_sha256', '?')}`)"
    if source.get("kind") == "embedded":
        return f"`{source['file']}` from the `{source['package']}` {source['version']} package (sha256 `{source['sha256']}`)"
    return f"`{source.get('path', source)}`"


def _as_list(descs: Any) -> list[dict[str, Any]]:
    # mixture.json lists several sources per side; manifests written before that held one dict per side
    if not descs:
        return []
    return list(descs) if isinstance(descs, list) else [descs]


def render_model_card(info: dict[str, Any]) -> str:
    """The README.md of an AgentLM checkpoint.

    ``info`` carries: ``model_name``, ``base_model``, ``dataset`` (``name``,
    ``revision``), ``manifest`` (the mixture manifest or None), ``recipe``
    (YAML text), ``chat_format``, ``encode`` (EncodeStats.as_dict()),
    ``train`` (steps, final loss, runtime, processes), ``curve`` (file name or None), ``adapter`` (a LoRA
    description when the checkpoint is a peft adapter, else absent). The caller redacts secrets from ``recipe``.

    Example:
        >>> "AgentLM" in render_model_card({"model_name": "m", "base_model": "b", "dataset": {"name": "d", "revision": None},
        ...     "manifest": None, "recipe": "", "chat_format": "llama2-chat", "encode": {}, "train": {}, "curve": None})
        True
    """
    mixture = info.get("manifest") or {}
    dataset = info["dataset"]
    datasets_yaml = []
    if "/" in dataset["name"] and not Path(dataset["name"]).exists():
        datasets_yaml.append(dataset["name"])
    sources = mixture.get("sources") or {}
    agents, generals = _as_list(sources.get("agent")), _as_list(sources.get("general"))
    datasets_yaml += [a["repo_id"] for a in agents if a.get("kind") == "hub"]
    base = info["base_model"]
    adapter = info.get("adapter")
    front = ["---", f"library_name: {'peft' if adapter else 'transformers'}", "tags:", "- agentlm", "- agent-tuning",
             "- trl", "- sft"] + (["- lora"] if adapter else [])
    if "/" in base and not base.endswith(".gguf") and not Path(base).exists():
        front.append(f"base_model: {base}")
    if datasets_yaml:
        front += ["datasets:"] + [f"- {d}" for d in datasets_yaml]
    front.append("---")

    lines = ["\n".join(front), "", f"# {info['model_name']}", "",
             f"An AgentLM-style model (AgentTuning, arXiv 2310.12823): `{base}` fine-tuned with TRL SFT on agent "
             "trajectories mixed with general chat data, with loss only on the turns marked `loss: true`.", ""]
    rev = dataset.get("revision")
    lines += ["## Training data", "",
              f"- Training set: `{dataset['name']}`" + (f" at revision `{rev}`" if rev else "")]
    if mixture:
        drawn, eff = mixture["drawn"], mixture["effective_eta"]
        by_source = drawn.get("by_source", {})
        for side, descs in (("Agent", agents), ("General", generals)):
            for d in descs:
                link = _link_source(d.get("source", d) if side == "General" else d)
                used = by_source.get(d.get("name"), {})
                extra = (f" (weight {d['weight']:g}, {used['drawn']} drawn, {used['mean_repeats']:g} uses per row)"
                         if used and "weight" in d else "")
                lines.append(f"- {side} data: {link}{extra}")
        lines += [f"- Mixture (`mixture.json` in this repo): eta = {mixture['eta']}, {drawn['samples']} examples, "
                  f"{drawn['agent']} agent / {drawn['general']} general; effective eta {eff['examples']:.4f} in examples, "
                  f"{eff['trained_tokens']:.4f} in trained tokens. Rule: {mixture['rule']}."]
    enc = info.get("encode") or {}
    if enc:
        by_source = enc.get("trained_tokens_by_source", {})
        total = sum(by_source.values()) or 1
        share = ", ".join(f"{k} {v / total:.4f}" for k, v in sorted(by_source.items()))
        lines += [f"- After tokenization ({info['chat_format']} format): {enc.get('kept')} of {enc.get('examples')} examples, "
                  f"{enc.get('tokens')} tokens, {enc.get('trained_tokens')} trained; trained-token share by source: {share}.",
                  f"- Truncation (the task and the final round are always kept; observations shortened, then middle "
                  f"rounds dropped, then examples that still do not fit dropped): {json.dumps(enc.get('truncation', {}))}"]
    train = info.get("train") or {}
    lines += ["", "## Training", ""]
    if train:
        lines.append(f"{train.get('steps')} steps, final training loss {train.get('final_loss')}, "
                     f"{train.get('runtime_s')} s" + (f" on {train['processes']} processes." if train.get("processes") else "."))
    if adapter:
        lines += ["", f"A LoRA adapter ({adapter}) for `{base}`: load it with `peft.AutoPeftModelForCausalLM` or "
                      "`AutoModelForCausalLM.from_pretrained` with peft installed."]
    if info.get("curve"):
        lines += ["", f"![training loss]({info['curve']})"]
    lines += ["", "Recipe (`recipe.yaml` in this repo):", "", "```yaml", info.get("recipe", "").rstrip(), "```", "",
              "## Use", "", "```python",
              "from transformers import AutoModelForCausalLM, AutoTokenizer",
              f'tok = AutoTokenizer.from_pretrained("{info["model_name"]}")',
              f'model = AutoModelForCausalLM.from_pretrained("{info["model_name"]}")',
              'ids = tok.apply_chat_template([{"role": "user", "content": "..."}], add_generation_prompt=True, return_tensors="pt")',
              "```", "",
              "The tokenizer's chat template is the one the model was trained with.", ""]
    return "\n".join(lines)
