"""DPO on agent preference pairs: ``python -m agentinstruct.training.dpo --config training/recipes/dpo-cpu.yaml``.

The second stage of ETO (SFT on successes, then DPO on failure/success pairs
of the same task): the recipe YAML sets the fields of ``PairArguments``,
TRL's ``DPOConfig`` and ``ModelConfig``; command-line flags override it. The
data is a dir written by ``agentinstruct pairs`` (``pairs``) or a Hub
dataset id of one.

Per-turn loss as SFT has it: only the agent turns a record marks
``loss: true`` are trained; the prompt and the environment observations
inside ``chosen`` / ``rejected`` never are. TRL's ``DPOTrainer`` cannot take
such a mask (it trains every completion token), so the pairs are tokenized
here and the mask applied to its ``completion_mask`` (``preference``).

Everything around training is the SFT entry point's, through the same
``run.Run``: each recipe field is applied or refused before any data is read
(``fields``, plus the DPO fields whose TRL processing does not run here,
``REFUSED``), the push is checked at step 0 (``hubaccess``), only the main
process writes the curve, recipe, summary and card and pushes, and no secret
reaches a written or pushed file (``redact``; the same ``push_checkpoint``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentinstruct.training.pairs import PAIRS_FORMAT, read_pairs
from agentinstruct.training.preference import (COLUMNS, PairEncoder, check_pair_masks, per_turn_collator,
                                               per_turn_trainer_class)
from agentinstruct.training.run import Run, Stage, load_rows, main as run_main
from agentinstruct.training.sft import AgentLMArguments

PAIRS_MANIFEST = "pairs.json"
"""The pairs dir's manifest, saved beside the checkpoint under this name."""

# DPOConfig fields for TRL's own data processing, which never runs here (the pairs come tokenized and masked).
REFUSED = {
    "truncation_mode": "a pair longer than max_length is dropped and counted, never cut (chosen and rejected differ "
                       "at their ends)",
    "padding_free": "TRL's DPOTrainer disables padding-free batches in this version; batches are padded",
    "dataset_num_proc": "the pairs are tokenized by agentinstruct (per-turn loss); TRL's dataset preparation does not "
                        "run",
}


@dataclass
class PairArguments(AgentLMArguments):
    """What to train on and how pairs become tokens (the fields TRL's configs do not have)."""

    dataset_name: str = field(
        default="",
        metadata={"help": "Preference pairs: a dir written by `agentinstruct pairs` or a Hub dataset id of one."},
    )


def make_parser() -> Any:
    """The TrlParser over PairArguments, DPOConfig and ModelConfig.

    Example:
        >>> from importlib import resources
        >>> recipe = resources.files("agentinstruct.training").joinpath("recipes/dpo-cpu.yaml")
        >>> script, args, _ = make_parser().parse_args_and_config(["--config", str(recipe), "--beta", "0.2"])
        >>> args.beta, script.chat_format
        (0.2, 'model')
    """
    from trl import DPOConfig, ModelConfig, TrlParser

    return TrlParser((PairArguments, DPOConfig, ModelConfig))


def load_pairs(name: str, revision: str | None,
               split: str) -> tuple[list[dict[str, Any]], dict[str, Any] | None, str | None]:
    """The preference rows, the pairs manifest (None when a Hub set has none) and the resolved Hub revision.

    Example (a pairs dir; see ``agentinstruct.training.pairs.write_pairs``):
        >>> from agentinstruct.training.pairs import write_pairs
        >>> _ = write_pairs(Path("pairs"), [], {"format": "agentinstruct-pairs"})
        >>> rows, manifest, rev = load_pairs("pairs", None, "train")
        >>> len(rows), manifest["format"], rev
        (0, 'agentinstruct-pairs', None)
    """
    return load_rows(name, revision, split, read_pairs, "manifest.json", "agentinstruct pairs", check=_pairs_set)


def _pairs_set(name: str, manifest: dict[str, Any]) -> None:
    """Refuse a Hub set whose manifest is not of a pairs set (a mixture, a dataset release)."""
    if manifest.get("format") != PAIRS_FORMAT:
        raise ValueError(f"{name}: its manifest.json is not of a pairs set ({manifest.get('format')!r}); make one with "
                         "`agentinstruct pairs`")


def make_trainer(run: Run, model: Any, peft_config: Any) -> Any:
    """``PerTurnDPOTrainer`` over the encoded pairs, with the per-turn collator."""
    tokenizer, args = run.tokenizer, run.training_args
    # the collator is ours, so the pad token TRL would pick (DPOConfig.pad_token, else the tokenizer's, else eos)
    # is set here
    tokenizer.pad_token = args.pad_token or tokenizer.pad_token or tokenizer.eos_token
    collator = per_turn_collator(tokenizer.pad_token_id, args.max_length, args.pad_to_multiple_of)
    return per_turn_trainer_class()(model=model, args=args, data_collator=collator, train_dataset=run.dataset,
                                    processing_class=tokenizer, peft_config=peft_config)


def render_card(info: dict[str, Any]) -> str:
    """The README.md of a DPO checkpoint: base model, pairs and their source, masking, training, recipe.

    Example:
        >>> card = render_card({"model_name": "m", "base_model": "b", "dataset": {"name": "pairs", "revision": None},
        ...     "manifest": None, "recipe": "", "chat_format": "model", "encode": {}, "train": {}, "curve": None})
        >>> "DPO" in card and "loss: true" in card
        True
    """
    manifest = info.get("manifest") or {}
    base, dataset = info["base_model"], info["dataset"]
    front = ["---", f"library_name: {'peft' if info.get('adapter') else 'transformers'}", "tags:", "- agentlm",
             "- agent-tuning", "- trl", "- dpo"]
    if "/" in base and not base.endswith(".gguf") and not Path(base).exists():
        front.append(f"base_model: {base}")
    if "/" in dataset["name"] and not Path(dataset["name"]).exists():
        front += ["datasets:", f"- {dataset['name']}"]
    front.append("---")
    lines = ["\n".join(front), "", f"# {info['model_name']}", "",
             f"`{base}` trained with TRL's DPO on agent preference pairs (ETO: a successful trajectory preferred to a "
             "failed one of the same task), with loss only on the agent turns marked `loss: true`: the prompt and "
             "the environment observations inside the completions are masked out of the log-probabilities.", "",
             "## Training data", "", f"- Pairs: `{dataset['name']}`"
             + (f" at revision `{dataset['revision']}`" if dataset.get("revision") else "")]
    source, total = manifest.get("source") or {}, manifest.get("total") or {}
    if source:
        lines.append(f"- Made from the `all` config of `{source.get('path')}` (manifest sha256 "
                     f"`{source.get('manifest_sha256')}`, schema {source.get('schema_version')}): {total.get('pairs')} "
                     f"pairs, {total.get('tasks_with_both')} of {total.get('tasks')} tasks with both a kept and a "
                     f"failed trajectory (`{PAIRS_MANIFEST}` in this repo).")
    enc = info.get("encode") or {}
    if enc:
        lines.append(f"- After tokenization ({info['chat_format']} format): {enc.get('kept')} of {enc.get('pairs')} "
                     f"pairs, {enc.get('trained_tokens')} trained tokens, {enc.get('masked_completion_tokens')} "
                     f"completion tokens masked (observations); dropped: {json.dumps(enc.get('dropped', {}))}")
    train = info.get("train") or {}
    lines += ["", "## Training", ""]
    if train:
        lines.append(f"{train.get('steps')} steps, final DPO loss {train.get('final_loss')}, {train.get('runtime_s')} s"
                     + (f" on {train['processes']} processes." if train.get("processes") else "."))
    if info.get("adapter"):
        lines += ["", f"A LoRA adapter ({info['adapter']}) for `{base}`."]
    if info.get("curve"):
        lines += ["", f"![training loss]({info['curve']})"]
    lines += ["", "Recipe (`recipe.yaml` in this repo):", "", "```yaml", info.get("recipe", "").rstrip(), "```", ""]
    return "\n".join(lines)


def _summary_extra(trainer: Any) -> dict[str, Any]:
    """The DPO fields of ``training_summary.json``: beta and the reward accuracies logged."""
    history = trainer.state.log_history
    return {"beta": trainer.args.beta,
            "reward_accuracies": [h["rewards/accuracies"] for h in history if "rewards/accuracies" in h]}


STAGE = Stage(name="dpo", load=load_pairs, encoder=PairEncoder, check=check_pair_masks, columns=COLUMNS,
              trainer=make_trainer, manifest_file=PAIRS_MANIFEST, render_card=render_card,
              commit_title="AgentLM DPO checkpoint", refused=REFUSED, adapter_targets=False,
              summary_extra=_summary_extra)
"""What the DPO entry point has of its own (see ``run.Stage``): ``agentinstruct dpo: ...``, its pairs, its card."""


def main(argv: list[str] | None = None) -> int:
    """Check the recipe and the push, prepare the pairs, train, then (main process only) save the card and push."""
    return run_main(STAGE, make_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
