"""Every recipe field is applied or refused with a message, never silently ignored.

The entry point hands TRL pre-tokenized ``input_ids`` + ``labels`` and pushes
the checkpoint itself, so some fields of TRL's ``SFTConfig`` and of
``TrainingArguments`` would do nothing if passed on (TRL's own chat template,
truncation and completion masks; the Trainer's push strategies). Those are
refused when a recipe or the command line sets them. Fields that need hardware
or packages (4-/8-bit loading: bitsandbytes and a GPU; LoRA: peft) are
refused where they cannot apply; ``attn_implementation: flash_attention_2``
falls back to sdpa with a warning when flash-attn is missing (or uses the
``kernels`` package's Hub build of it when that is installed).

``field_status`` names, for any field, who applies it or why it is refused;
tests walk every field of the shipped recipes through it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from typing import Any

import yaml

# SFTConfig fields for TRL's own data processing, which never runs here (the data comes tokenized, masked and fitted).
BYPASSED = {
    "dataset_text_field": "the data is tokenized by agentinstruct (per-turn loss), not from a text field",
    "dataset_kwargs": "the data is tokenized by agentinstruct; TRL's dataset preparation does not run",
    "chat_template_path": "the template comes from chat_format (llama2-chat or the model's own)",
    "eos_token": "the end-of-turn token comes from the chat format's template",
    "truncation_mode": "conversations are fitted turn-aware by agentinstruct before TRL sees them",
    "completion_only_loss": "the loss mask is the records' per-turn loss",
    "assistant_only_loss": "the loss mask is the records' per-turn loss (every loss: true turn, only those)",
    "model_init_kwargs": "the model is loaded by agentinstruct (dtype, attn_implementation, quantization fields)",
    "eval_packing": "no evaluation set is passed to the trainer",
    "hub_always_push": "the checkpoint is pushed once, after training, as one commit (hub_strategy: end)",
    "hub_revision": "the checkpoint is pushed to main, tagged with hub_version",
}
# Fields agentinstruct reads itself, beyond what TRL and the Trainer do with the rest.
OURS = {
    "model_name_or_path": "loaded by agentinstruct (GGUF files converted first)",
    "model_revision": "loaded by agentinstruct",
    "dtype": "passed to from_pretrained",
    "attn_implementation": "passed to from_pretrained (flash_attention_2 falls back when unavailable)",
    "trust_remote_code": "passed to the tokenizer's and the model's from_pretrained",
    "use_peft": "LoRA through peft (get_peft_config)",
    "load_in_4bit": "bitsandbytes 4-bit loading on a GPU (QLoRA with use_peft)",
    "load_in_8bit": "bitsandbytes 8-bit loading on a GPU",
    "max_length": "agentinstruct's turn-aware fitting, then TRL's packing length",
    "push_to_hub": "pushed by agentinstruct after training: one commit, checked before training starts",
    "hub_model_id": "resolved to the token's user before training when it has no namespace",
    "hub_private_repo": "applies when the repo is created",
    "hub_token": "used for the push check and the push; never written to any output file",
    "hub_strategy": "only `end` (one push after training) is supported",
}
LORA_PREFIX, BNB_PREFIX = ("lora_", "use_rslora", "use_dora"), ("bnb_4bit_", "use_bnb_nested_quant")


class RecipeError(ValueError):
    """Recipe fields that cannot take effect here; raised before training."""


def field_status(name: str, dataclass_types: tuple[type, ...]) -> str:
    """``applied: ...`` or ``refused: ...`` for a field of the entry point's dataclasses; ``unknown`` otherwise.

    Example:
        >>> from trl import ModelConfig, SFTConfig
        >>> field_status("learning_rate", (SFTConfig, ModelConfig)), field_status("assistant_only_loss", (SFTConfig,))[:8]
        ('applied: by the Trainer', 'refused:')
    """
    if name in BYPASSED:
        return f"refused: {BYPASSED[name]}"
    if name in OURS:
        return f"applied: {OURS[name]}"
    if name.startswith(LORA_PREFIX):
        return "applied: LoRA settings, with use_peft"
    if name.startswith(BNB_PREFIX):
        return "applied: 4-bit settings, with load_in_4bit"
    for cls in dataclass_types:
        if name in {f.name for f in dataclasses.fields(cls)}:
            return "applied: by the Trainer" if cls.__module__.startswith(("transformers", "trl")) else "applied: by agentinstruct"
    return "unknown"


def explicit_fields(argv: list[str]) -> dict[str, Any]:
    """The fields a run sets itself: the recipe's keys (``--config``) and the command-line flags, with their values.

    Example:
        >>> _ = Path("r.yaml").write_text("max_steps: 10\\nhub_strategy: end\\n")
        >>> explicit_fields(["--config", "r.yaml", "--max_steps", "3", "--no_packing", "--lr=1e-4"])
        {'max_steps': '3', 'hub_strategy': 'end', 'packing': False, 'lr': '1e-4'}
    """
    fields: dict[str, Any] = {}
    if "--config" in argv:
        config = yaml.safe_load(Path(argv[argv.index("--config") + 1]).read_text(encoding="utf-8")) or {}
        fields.update({k: v for k, v in config.items() if k != "env"})
    for i, arg in enumerate(argv):
        if not arg.startswith("--") or arg == "--config":
            continue
        name, eq, value = arg[2:].partition("=")
        if not eq:
            value = argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("--") else True
        if name.startswith("no_") and value is True:
            name, value = name[3:], False
        fields[name] = value
    return fields


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def resolve_attention(requested: str | None, cuda: bool) -> tuple[str | None, str | None]:
    """The attention implementation to load and a warning when it is not the one requested.

    Example:
        >>> resolve_attention("flash_attention_2", cuda=False)
        ('sdpa', 'attn_implementation flash_attention_2 needs a CUDA GPU; using sdpa')
        >>> resolve_attention("sdpa", cuda=False)
        ('sdpa', None)
    """
    if not requested or not requested.startswith("flash_attention"):
        return requested, None
    if not cuda:
        return "sdpa", f"attn_implementation {requested} needs a CUDA GPU; using sdpa"
    if requested == "flash_attention_2" and _installed("flash_attn"):
        return requested, None
    if _installed("kernels"):
        from transformers.modeling_flash_attention_utils import FLASH_ATTN_KERNEL_FALLBACK

        if requested in FLASH_ATTN_KERNEL_FALLBACK:
            return FLASH_ATTN_KERNEL_FALLBACK[requested], None
    return "sdpa", (f"attn_implementation {requested}: neither flash-attn nor kernels is installed "
                    "(pip install 'agentinstruct[gpu]'); using sdpa, slower with packing")


def review(explicit: dict[str, Any], training_args: Any, model_args: Any, dataclass_types: tuple[type, ...],
           cuda: bool, refused: dict[str, str] | None = None) -> list[str]:
    """Refuse (``RecipeError``, every reason at once) the fields that cannot take effect; return warnings.

    ``refused`` names the fields of ``dataclass_types`` an entry point refuses beyond these, each with its
    reason; they are listed first.

    Example:
        >>> from types import SimpleNamespace
        >>> from trl import ModelConfig, SFTConfig
        >>> m, args = ModelConfig(load_in_4bit=True), SimpleNamespace(hub_strategy="every_save")
        >>> review({"load_in_4bit": True}, args, m, (SFTConfig, ModelConfig), cuda=False)
        Traceback (most recent call last):
        ...
        agentinstruct.training.fields.RecipeError: recipe fields that cannot take effect here:
          - load_in_4bit: 4-/8-bit loading (bitsandbytes) needs a CUDA GPU; none is visible
          - load_in_4bit: a 4-bit model can only be trained through adapters: set use_peft: true (QLoRA)
        >>> review({"padding_free": True}, args, ModelConfig(), (SFTConfig, ModelConfig), cuda=False,
        ...        refused={"padding_free": "batches are padded here"})
        Traceback (most recent call last):
        ...
        agentinstruct.training.fields.RecipeError: recipe fields that cannot take effect here:
          - padding_free: batches are padded here
    """
    refused = refused or {}
    problems = [f"{name}: {refused[name]}" for name in explicit if name in refused]
    warnings: list[str] = []
    explicit = {k: v for k, v in explicit.items() if k not in refused}
    for name in explicit:
        status = field_status(name, dataclass_types)
        if status.startswith("refused"):
            problems.append(f"{name}: {status[len('refused: '):]}")
        elif status == "unknown":
            problems.append(f"{name}: not a field of the recipe")
    if "hub_strategy" in explicit and getattr(training_args.hub_strategy, "value", training_args.hub_strategy) != "end":
        problems.append(f"hub_strategy: {explicit['hub_strategy']} is not supported: the checkpoint is pushed once, "
                        "after training, as one tagged commit (use end)")
    quantized = model_args.load_in_4bit or model_args.load_in_8bit
    if quantized:
        which = "load_in_4bit" if model_args.load_in_4bit else "load_in_8bit"
        if not cuda:
            problems.append(f"{which}: 4-/8-bit loading (bitsandbytes) needs a CUDA GPU; none is visible")
        elif not _installed("bitsandbytes"):
            problems.append(f"{which}: needs bitsandbytes (pip install 'agentinstruct[gpu]')")
        if not model_args.use_peft:
            problems.append(f"{which}: a {which[8]}-bit model can only be trained through adapters: set use_peft: true "
                            "(QLoRA)")
    if model_args.use_peft and not _installed("peft"):
        problems.append("use_peft: needs the peft package (pip install peft)")
    for name in explicit:
        if name.startswith(LORA_PREFIX) and not model_args.use_peft:
            problems.append(f"{name}: a LoRA setting has no effect without use_peft: true")
        if name.startswith(BNB_PREFIX) and not model_args.load_in_4bit:
            problems.append(f"{name}: a 4-bit setting has no effect without load_in_4bit: true")
    if problems:
        raise RecipeError("recipe fields that cannot take effect here:\n" + "\n".join(f"  - {p}" for p in problems))
    _, warning = resolve_attention(model_args.attn_implementation, cuda)
    if warning:
        warnings.append(warning)
    return warnings
