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

Everything around training is the SFT entry point's: each recipe field is
applied or refused before any data is read (``fields``, plus the DPO fields
whose TRL processing does not run here), the push is checked at step 0
(``hubaccess``), only the main process writes the curve, recipe, summary
and card and pushes, and no secret reaches a written or pushed file
(``redact``; the same ``push_checkpoint``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentinstruct.training.base import EMBEDDED_GGUF
from agentinstruct.training.card import CURVE, plot_curve
from agentinstruct.training.chat import TemplateError, chat_format
from agentinstruct.training.fields import RecipeError, explicit_fields, review
from agentinstruct.training.hubaccess import PushCheckError, check_push
from agentinstruct.training.masking import MaskError
from agentinstruct.training.pairs import PAIRS_FORMAT, read_pairs
from agentinstruct.training.preference import (COLUMNS, PairEncoder, check_pair_masks, per_turn_collator,
                                               per_turn_trainer_class)
from agentinstruct.training.redact import known_secrets
from agentinstruct.training.sft import AgentLMArguments, _recipe_text, load_model, push_checkpoint
from agentinstruct.training.sharegpt import require_hub_id

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


def review_dpo(explicit: dict[str, Any], training_args: Any, model_args: Any, cuda: bool) -> list[str]:
    """``fields.review`` over the DPO entry point's dataclasses, with ``REFUSED`` refused too (every reason at once).

    Example:
        >>> from types import SimpleNamespace
        >>> from trl import ModelConfig
        >>> review_dpo({"truncation_mode": "keep_end"}, SimpleNamespace(hub_strategy="end"), ModelConfig(), cuda=False)
        Traceback (most recent call last):
        ...
        agentinstruct.training.fields.RecipeError: recipe fields that cannot take effect here:
          - truncation_mode: a pair longer than max_length is dropped and counted, never cut (chosen and rejected
            differ at their ends)
    """
    from trl import DPOConfig, ModelConfig

    problems = [f"{name}: {REFUSED[name]}" for name in explicit if name in REFUSED]
    rest = {k: v for k, v in explicit.items() if k not in REFUSED}
    try:
        warnings = review(rest, training_args, model_args, (PairArguments, DPOConfig, ModelConfig), cuda)
    except RecipeError as exc:
        problems += [line[len("  - "):] for line in str(exc).splitlines()[1:]]
        warnings = []
    if problems:
        raise RecipeError("recipe fields that cannot take effect here:\n" + "\n".join(f"  - {p}" for p in problems))
    return warnings


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
    if not name:
        raise ValueError("no dataset_name: give a dir from `agentinstruct pairs` or a Hub dataset id")
    if Path(name).is_dir():
        rows, manifest = read_pairs(Path(name))
        return rows, manifest, None
    import datasets
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    require_hub_id(name)
    sha = HfApi().dataset_info(name, revision=revision).sha
    try:
        path = hf_hub_download(name, "manifest.json", repo_type="dataset", revision=sha)
        manifest = json.loads(Path(path).read_text(encoding="utf-8"))
    except EntryNotFoundError:
        manifest = None
    if manifest is not None and manifest.get("format") != PAIRS_FORMAT:
        raise ValueError(f"{name}: its manifest.json is not of a pairs set ({manifest.get('format')!r}); make one with "
                         "`agentinstruct pairs`")
    return list(datasets.load_dataset(name, split=split, revision=sha)), manifest, sha


def prepare(script_args: PairArguments, training_args: Any,
            tokenizer: Any) -> tuple[Any, PairEncoder, dict[str, Any] | None, str | None]:
    """Load, encode and check the pairs; returns the tokenized Dataset, the encoder, the manifest and revision."""
    import datasets

    fmt = chat_format(script_args.chat_format, tokenizer, script_args.system_prompt)
    rows, manifest, revision = load_pairs(script_args.dataset_name, script_args.dataset_revision,
                                          script_args.dataset_split)
    if script_args.max_train_examples is not None:
        rows = rows[: script_args.max_train_examples]
    encoder = PairEncoder(tokenizer, fmt, training_args.max_length)
    encoded = encoder.encode(rows)
    check_pair_masks(encoded, encoder.stats)
    tokenizer.chat_template = fmt.template  # the saved tokenizer carries the template the model was trained with
    return datasets.Dataset.from_dict({c: [e[c] for e in encoded] for c in COLUMNS}), encoder, manifest, revision


def main(argv: list[str] | None = None) -> int:
    """Check the recipe and the push, prepare the pairs, train, then (main process only) save the card and push."""
    argv = list(sys.argv[1:] if argv is None else argv)
    script_args, training_args, model_args = make_parser().parse_args_and_config(argv)
    import torch
    from trl import get_peft_config

    from agentinstruct.training.base import load_tokenizer

    hub_token = training_args.hub_token
    training_args.hub_token = None  # pickled into training_args.bin beside the weights: it must not carry the token
    secrets = known_secrets(hub_token)
    cuda = torch.cuda.is_available()
    main_process = training_args.process_index == 0
    out = Path(training_args.output_dir)
    try:
        for warning in review_dpo(explicit_fields(argv), training_args, model_args, cuda):
            if main_process:
                print(f"agentinstruct dpo: warning: {warning}", file=sys.stderr)
        target = (check_push(training_args.hub_model_id or out.name, hub_token).repo_id
                  if training_args.push_to_hub else None)
    except (RecipeError, PushCheckError) as exc:
        print(f"agentinstruct dpo: refusing to train: {exc}", file=sys.stderr)
        return 1
    model_ref = model_args.model_name_or_path or EMBEDDED_GGUF
    try:
        with training_args.main_process_first(desc="loading the tokenizer"):
            tokenizer = load_tokenizer(model_ref, model_args.model_revision, training_args.trust_remote_code)
        train_dataset, encoder, manifest, revision = prepare(script_args, training_args, tokenizer)
    except (MaskError, TemplateError) as exc:
        print(f"agentinstruct dpo: refusing to train: {exc}", file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError, OSError) as exc:
        print(f"agentinstruct dpo: error: {exc}", file=sys.stderr)
        return 2
    stats = encoder.stats.as_dict()
    if main_process:
        print(f"tokenized {stats['kept']} of {stats['pairs']} pairs: {stats['tokens']} tokens, "
              f"{stats['trained_tokens']} trained, {stats['masked_completion_tokens']} completion tokens masked "
              f"(observations); dropped {stats['dropped'] or 'none'}")
    model, attn = load_model(model_ref, model_args, training_args, cuda)
    # the collator is ours, so the pad token TRL would pick (DPOConfig.pad_token, else the tokenizer's, else eos)
    # is set here
    tokenizer.pad_token = training_args.pad_token or tokenizer.pad_token or tokenizer.eos_token
    collator = per_turn_collator(tokenizer.pad_token_id, training_args.max_length, training_args.pad_to_multiple_of)
    push = training_args.push_to_hub
    training_args.push_to_hub = False  # pushed below through agentinstruct.hub, with the card and files
    peft_config = get_peft_config(model_args)
    trainer = per_turn_trainer_class()(model=model, args=training_args, data_collator=collator,
                                       train_dataset=train_dataset, processing_class=tokenizer, peft_config=peft_config)
    result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model(str(out))
    code = 0
    if trainer.is_world_process_zero():
        run = {"script_args": script_args, "model_ref": model_ref, "manifest": manifest, "revision": revision,
               "stats": stats, "attn": attn, "peft": peft_config, "world": training_args.world_size,
               "runtime": result.metrics.get("train_runtime", 0.0)}
        try:
            code = _finish(trainer, out, argv, run, target if push else None, hub_token, secrets)
        except Exception as exc:  # the other processes wait at the barrier below: report, then let them go
            print(f"agentinstruct dpo: error after training: {exc}", file=sys.stderr)
            code = 1
    else:
        print(f"process {training_args.process_index}/{training_args.world_size}: waiting for the main process to "
              "write the card and push")
    trainer.accelerator.wait_for_everyone()
    return code


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


def _finish(trainer: Any, out: Path, argv: list[str], run: dict[str, Any], target: str | None,
            hub_token: str | None, secrets: set[str]) -> int:
    """The main process's part after training: curve, recipe, pairs manifest, summary, card, push."""
    from agentinstruct.hub import PublishError

    script_args, manifest = run["script_args"], run["manifest"]
    curve = plot_curve(trainer.state.log_history, out / CURVE)
    recipe = _recipe_text(argv)
    (out / "recipe.yaml").write_text(recipe, encoding="utf-8")
    if manifest is not None:
        (out / PAIRS_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    history = trainer.state.log_history
    losses = [h["loss"] for h in history if "loss" in h]
    adapter = None
    if run["peft"] is not None:
        p = run["peft"]
        adapter = f"LoRA r={p.r}, alpha={p.lora_alpha}, dropout={p.lora_dropout}"
    summary = {"steps": trainer.state.global_step, "final_loss": losses[-1] if losses else None,
               "runtime_s": round(run["runtime"], 1), "processes": run["world"], "attn_implementation": run["attn"],
               "adapter": adapter, "beta": trainer.args.beta, "losses": losses,
               "reward_accuracies": [h["rewards/accuracies"] for h in history if "rewards/accuracies" in h],
               "encode": run["stats"]}
    (out / "training_summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    name = target or trainer.args.hub_model_id or out.name
    card = render_card({"model_name": name, "base_model": run["model_ref"],
                        "dataset": {"name": script_args.dataset_name, "revision": run["revision"]},
                        "manifest": manifest, "recipe": recipe, "chat_format": script_args.chat_format,
                        "encode": run["stats"], "train": summary, "curve": CURVE if curve else None,
                        "adapter": adapter})
    (out / "README.md").write_text(card, encoding="utf-8")
    print(f"saved to {out} ({summary['steps']} steps, final loss {summary['final_loss']})")
    if target is None:
        return 0
    try:
        published = push_checkpoint(out, target, script_args.hub_version, bool(trainer.args.hub_private_repo),
                                    f"AgentLM DPO checkpoint: {summary['steps']} steps on {script_args.dataset_name}",
                                    token=hub_token, secrets=secrets)
    except PublishError as exc:
        print(f"agentinstruct dpo: push failed (the checkpoint is saved in {out}): {exc}", file=sys.stderr)
        return 3
    print(published.render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
