"""Train AgentLM with TRL: ``python -m agentinstruct.training.sft --config training/recipes/NAME.yaml [--key value ...]``.

The recipe YAML sets the fields of ``AgentLMArguments``, TRL's ``SFTConfig``
and ``ModelConfig``; command-line flags override it (TrlParser).

The data is tokenized here, not by TRL: each conversation is rendered in the
chosen chat format, the loss mask covers exactly the ``loss: true`` turns,
over-long conversations are shortened turn by turn, and ``check_masks`` stops
the run before training when a mask is wrong. SFTTrainer receives
``input_ids`` + ``labels``, which it uses as they are (no re-tokenization, no
mask rebuilt; its own truncation is a no-op since every example already
fits). With ``packing`` and ``packing_strategy: bfd`` TRL packs examples
padding-free, with position ids restarting at every example, so attention
never crosses from one packed example into another (FlashAttention varlen on
GPU; on CPU sdpa the mask is built from the position ids).

Before any data is read, every recipe field is checked to take effect
(``fields``: refused with the reason otherwise) and, when pushing, the Hub id
is resolved to the token's user and the token checked for write access
(``hubaccess``), so a push cannot fail at the end for a reason known at step 0.

At the end the checkpoint is saved with its tokenizer (whose chat template is
the training one), the mixture manifest, the recipe, the training curve and a
model card, and pushed to the Hub unless ``--push_to_hub false``. Under
``accelerate launch`` every process trains and takes part in saving, but only
the main one writes these files and pushes; the others wait at a barrier. No
secret reaches these files (``redact``): the recipe is masked, the token is
cleared from the pickled ``training_args.bin``, and every pushed file is
scanned for the tokens the process knows.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentinstruct.training.base import EMBEDDED_GGUF, is_gguf, resolve_model
from agentinstruct.training.card import CURVE, plot_curve, render_model_card
from agentinstruct.training.chat import TemplateError, chat_format
from agentinstruct.training.fields import RecipeError, explicit_fields, resolve_attention, review
from agentinstruct.training.hubaccess import PushCheckError, check_push
from agentinstruct.training.masking import Encoder, MaskError, check_masks
from agentinstruct.training.mixture import MIXTURE_MANIFEST, read_mixture
from agentinstruct.training.redact import find_secrets, known_secrets, redact_args, redact_recipe
from agentinstruct.training.sharegpt import require_hub_id


@dataclass
class AgentLMArguments:
    """What to train on and how conversations become tokens (the fields TRL's configs do not have)."""

    dataset_name: str = field(
        default="",
        metadata={"help": "Training set: a dir written by `agentinstruct mix` or a Hub dataset id of one."},
    )
    dataset_revision: str | None = field(default=None, metadata={"help": "Hub revision of `dataset_name`."})
    dataset_split: str = field(default="train", metadata={"help": "Split of `dataset_name` to train on."})
    chat_format: str = field(
        default="llama2-chat",
        metadata={"help": "`llama2-chat`: Llama-2-chat with AgentLM's system prompt (as AgentLM). `model`: the base "
                          "model's own chat template.", "choices": ["llama2-chat", "model"]},
    )
    system_prompt: str | None = field(
        default=None,
        metadata={"help": "System prompt (llama2-chat default: 'You are a helpful, respectful and honest "
                          "assistant.'; model default: none, the template's own)."},
    )
    max_train_examples: int | None = field(
        default=None, metadata={"help": "Train on the first N rows only (smoke runs, overfit checks)."},
    )
    hub_version: str | None = field(
        default=None, metadata={"help": "Version tag for the pushed checkpoint (e.g. 1.0.0)."},
    )


def make_parser() -> Any:
    """The TrlParser over AgentLMArguments, SFTConfig and ModelConfig.

    Example:
        >>> from importlib import resources
        >>> recipe = resources.files("agentinstruct.training").joinpath("recipes/smollm2-135m-cpu.yaml")
        >>> args = ["--config", str(recipe), "--max_steps", "3"]
        >>> make_parser().parse_args_and_config(args)[1].max_steps
        3
    """
    from trl import ModelConfig, SFTConfig, TrlParser

    return TrlParser((AgentLMArguments, SFTConfig, ModelConfig))


def load_training_set(name: str, revision: str | None, split: str) -> tuple[list[dict[str, Any]], dict[str, Any] | None, str | None]:
    """The training rows, the mixture manifest (None when the set has none) and the resolved Hub revision.

    Example (a mixture dir, here of agent rows only; see ``agentinstruct.training.mixture.write_mixture``):
        >>> from agentinstruct import __version__
        >>> from agentinstruct.training.mixture import mix, write_mixture
        >>> turns = [{"from": "human", "value": "Count the files.", "loss": None}, {"from": "gpt", "value": "3", "loss": True}]
        >>> m = mix([{"id": "os_0", "split": "os", "conversations": turns}], [], eta=1.0, samples=2, seed=0)
        >>> _ = write_mixture(Path("mix"), m, {"eta": 1.0, "rule": m.rule, "drawn": m.drawn, "agentinstruct_version":
        ...                   __version__, "effective_eta": {"examples": 1.0, "trained_tokens": 1.0}})
        >>> rows, manifest, rev = load_training_set("mix", None, "train")
        >>> len(rows), manifest["eta"], rev
        (2, 1.0, None)
    """
    if not name:
        raise ValueError("no dataset_name: give a dir from `agentinstruct mix` or a Hub dataset id")
    if Path(name).is_dir():
        rows, manifest = read_mixture(Path(name))
        return rows, manifest, None
    import datasets
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    require_hub_id(name)
    sha = HfApi().dataset_info(name, revision=revision).sha
    try:
        manifest = json.loads(Path(hf_hub_download(name, MIXTURE_MANIFEST, repo_type="dataset", revision=sha)).read_text())
    except EntryNotFoundError:
        manifest = None
    return list(datasets.load_dataset(name, split=split, revision=sha)), manifest, sha


def _recipe_text(argv: list[str]) -> str:
    """The recipe as run: the YAML and the command-line overrides, with every secret masked."""
    if "--config" in argv:
        recipe = Path(argv[argv.index("--config") + 1]).read_text(encoding="utf-8")
        overrides = [a for i, a in enumerate(argv) if a != "--config" and (i == 0 or argv[i - 1] != "--config")]
    else:
        recipe, overrides = "", list(argv)
    recipe = redact_recipe(recipe)
    if overrides:
        recipe += "\n# command-line overrides: " + " ".join(redact_args(overrides)) + "\n"
    return recipe


def prepare(script_args: AgentLMArguments, training_args: Any, tokenizer: Any) -> tuple[Any, Encoder, dict[str, Any] | None, str | None]:
    """Load, encode and check the training set; returns the tokenized Dataset, the encoder, manifest, revision."""
    import datasets

    fmt = chat_format(script_args.chat_format, tokenizer, script_args.system_prompt)
    data, manifest, revision = load_training_set(script_args.dataset_name, script_args.dataset_revision, script_args.dataset_split)
    if script_args.max_train_examples is not None:
        data = data[: script_args.max_train_examples]
    encoder = Encoder(tokenizer, fmt, training_args.max_length)
    rows = encoder.encode(data)
    check_masks(rows, encoder.stats)
    # the saved tokenizer carries the template the model was trained with
    tokenizer.chat_template = fmt.template
    tokenized = datasets.Dataset.from_dict({"input_ids": [r["input_ids"] for r in rows], "labels": [r["labels"] for r in rows]})
    return tokenized, encoder, manifest, revision


def load_model(model_ref: str, model_args: Any, training_args: Any, cuda: bool) -> tuple[Any, str | None]:
    """The base model as the recipe asks (dtype, attention with its fallback, 4-/8-bit) and the attention used."""
    from transformers import AutoModelForCausalLM
    from trl import get_quantization_config

    attn, _ = resolve_attention(model_args.attn_implementation, cuda)
    kwargs: dict[str, Any] = {"revision": None if is_gguf(model_ref) else model_args.model_revision,
                              "dtype": model_args.dtype or "float32", "attn_implementation": attn,
                              "trust_remote_code": training_args.trust_remote_code}
    quantization = get_quantization_config(model_args)
    if quantization is not None:
        from accelerate import PartialState

        # each process loads its quantized copy onto its own GPU
        kwargs.update(quantization_config=quantization, device_map={"": PartialState().local_process_index})
    return AutoModelForCausalLM.from_pretrained(resolve_model(model_ref), **kwargs), attn


def main(argv: list[str] | None = None) -> int:
    """Check the recipe and the push, prepare the data, train, then (main process only) save the card and push."""
    argv = list(sys.argv[1:] if argv is None else argv)
    script_args, training_args, model_args = make_parser().parse_args_and_config(argv)
    import torch
    from trl import ModelConfig, SFTConfig, SFTTrainer, get_peft_config

    from agentinstruct.training.base import load_tokenizer

    hub_token = training_args.hub_token
    # the Trainer pickles its arguments into training_args.bin beside the weights: it must not carry the token
    training_args.hub_token = None
    secrets = known_secrets(hub_token)
    cuda = torch.cuda.is_available()
    main_process = training_args.process_index == 0
    out = Path(training_args.output_dir)
    try:
        for warning in review(explicit_fields(argv), training_args, model_args,
                              (AgentLMArguments, SFTConfig, ModelConfig), cuda):
            if main_process:
                print(f"agentinstruct sft: warning: {warning}", file=sys.stderr)
        # a push that cannot succeed is found now, not after hours of training
        target = (check_push(training_args.hub_model_id or out.name, hub_token).repo_id
                  if training_args.push_to_hub else None)
    except (RecipeError, PushCheckError) as exc:
        print(f"agentinstruct sft: refusing to train: {exc}", file=sys.stderr)
        return 1
    model_ref = model_args.model_name_or_path or EMBEDDED_GGUF
    try:
        # one process converts a GGUF base while the others wait, then they read the converted copy
        with training_args.main_process_first(desc="loading the tokenizer"):
            tokenizer = load_tokenizer(model_ref, model_args.model_revision, training_args.trust_remote_code)
        train_dataset, encoder, manifest, revision = prepare(script_args, training_args, tokenizer)
    except (MaskError, TemplateError) as exc:
        print(f"agentinstruct sft: refusing to train: {exc}", file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError, OSError) as exc:
        print(f"agentinstruct sft: error: {exc}", file=sys.stderr)
        return 2
    stats = encoder.stats.as_dict()
    if main_process:
        print(f"tokenized {stats['kept']} of {stats['examples']} examples: {stats['tokens']} tokens, "
              f"{stats['trained_tokens']} trained; by source {stats['trained_tokens_by_source']}; "
              f"truncation {stats['truncation'] or 'none'}")
    model, attn = load_model(model_ref, model_args, training_args, cuda)
    push = training_args.push_to_hub
    training_args.push_to_hub = False  # pushed below through agentinstruct.hub, with the card and files
    peft_config = get_peft_config(model_args)
    trainer = SFTTrainer(model=model, args=training_args, train_dataset=train_dataset, processing_class=tokenizer,
                         peft_config=peft_config)
    result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model(str(out))  # every process: FSDP and ZeRO-3 gather the shards; only the main one writes
    code = 0
    if trainer.is_world_process_zero():
        run = {"script_args": script_args, "model_ref": model_ref, "manifest": manifest, "revision": revision,
               "stats": stats, "attn": attn, "peft": peft_config, "world": training_args.world_size,
               "runtime": result.metrics.get("train_runtime", 0.0)}
        try:
            code = _finish(trainer, out, argv, run, target if push else None, hub_token, secrets)
        except Exception as exc:  # the other processes wait at the barrier below: report, then let them go
            print(f"agentinstruct sft: error after training: {exc}", file=sys.stderr)
            code = 1
    else:
        print(f"process {training_args.process_index}/{training_args.world_size}: waiting for the main process to "
              "write the card and push")
    trainer.accelerator.wait_for_everyone()
    return code


def _finish(trainer: Any, out: Path, argv: list[str], run: dict[str, Any], target: str | None,
            hub_token: str | None, secrets: set[str]) -> int:
    """The main process's part after training: curve, recipe, manifest, summary, card, push."""
    from agentinstruct.hub import PublishError

    script_args, manifest = run["script_args"], run["manifest"]
    curve = plot_curve(trainer.state.log_history, out / CURVE)
    recipe = _recipe_text(argv)
    (out / "recipe.yaml").write_text(recipe, encoding="utf-8")
    if manifest is not None:
        (out / MIXTURE_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    adapter = None
    if run["peft"] is not None:
        p = run["peft"]
        targets = sorted(p.target_modules) if p.target_modules else "peft defaults"
        adapter = f"LoRA r={p.r}, alpha={p.lora_alpha}, dropout={p.lora_dropout}, target modules {targets}"
    summary = {"steps": trainer.state.global_step, "final_loss": losses[-1] if losses else None,
               "runtime_s": round(run["runtime"], 1), "processes": run["world"], "attn_implementation": run["attn"],
               "adapter": adapter, "losses": losses, "encode": run["stats"]}
    (out / "training_summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    name = target or trainer.args.hub_model_id or out.name
    card = render_model_card({
        "model_name": name, "base_model": run["model_ref"],
        "dataset": {"name": script_args.dataset_name, "revision": run["revision"]},
        "mixture": manifest, "recipe": recipe, "chat_format": script_args.chat_format, "encode": run["stats"],
        "train": summary, "curve": CURVE if curve else None, "adapter": adapter,
    })
    (out / "README.md").write_text(card, encoding="utf-8")
    print(f"saved to {out} ({summary['steps']} steps, final loss {summary['final_loss']})")
    if target is None:
        return 0
    try:
        published = push_checkpoint(out, target, script_args.hub_version, bool(trainer.args.hub_private_repo),
                                    f"AgentLM checkpoint: {summary['steps']} steps on {script_args.dataset_name}",
                                    token=hub_token, secrets=secrets)
    except PublishError as exc:
        print(f"agentinstruct sft: push failed (the checkpoint is saved in {out}): {exc}", file=sys.stderr)
        return 3
    print(published.render())
    return 0


def push_checkpoint(out: Path, repo_id: str, version: str | None, private: bool, message: str,
                    token: str | None = None, secrets: set[str] | None = None) -> Any:
    """Publish the files at the top of ``out`` (the final checkpoint and its card), not the intermediate
    ``checkpoint-*`` dirs with their optimizer states; files are hard-linked into a staging dir, not copied.
    Refused (``PublishError``, naming the files) when a file holds one of ``secrets`` (default: the ones this
    process knows, see ``redact.known_secrets``).

    Example (needs a Hub server):
        >>> push_checkpoint(Path("out"), "me/agentlm-7b", "1.0.0", False, "AgentLM 7B")  # doctest: +SKIP
    """
    from agentinstruct.hub import PublishError, publish_model

    secrets = known_secrets(token) if secrets is None else secrets
    staging = Path(tempfile.mkdtemp(prefix=".publish-", dir=out))
    try:
        for f in out.iterdir():
            if f.is_file():
                os.link(f, staging / f.name)
        leaks = find_secrets(sorted(staging.iterdir()), secrets)
        if leaks:
            raise PublishError(f"refusing to push: {', '.join(leaks)} in {out} contain a credential "
                               "(a token or key this process knows); remove it and push again")
        return publish_model(staging, repo_id, version=version, private=private, message=message, token=token)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
