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
scanned for the tokens the process knows. These steps around training are
``run``'s; the DPO entry point (``dpo``) goes through them too.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentinstruct.training.card import render_model_card
from agentinstruct.training.masking import Encoder, check_masks
from agentinstruct.training.mixture import MIXTURE_MANIFEST, read_mixture
# push_checkpoint stays importable from here, where the SFT entry point first offered it
from agentinstruct.training.run import Run, Stage, load_rows, main as run_main, push_checkpoint  # noqa: F401


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
    return load_rows(name, revision, split, read_mixture, MIXTURE_MANIFEST, "agentinstruct mix")


def make_trainer(run: Run, model: Any, peft_config: Any) -> Any:
    """TRL's SFTTrainer over the tokenized ``input_ids`` + ``labels``, which it uses as they are."""
    from trl import SFTTrainer

    return SFTTrainer(model=model, args=run.training_args, train_dataset=run.dataset, processing_class=run.tokenizer,
                      peft_config=peft_config)


STAGE = Stage(name="sft", load=load_training_set, encoder=Encoder, check=check_masks, columns=("input_ids", "labels"),
              trainer=make_trainer, manifest_file=MIXTURE_MANIFEST, render_card=render_model_card,
              commit_title="AgentLM checkpoint")
"""What the SFT entry point has of its own (see ``run.Stage``): ``agentinstruct sft: ...``, its data, its card."""


def main(argv: list[str] | None = None) -> int:
    """Check the recipe and the push, prepare the data, train, then (main process only) save the card and push."""
    return run_main(STAGE, make_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
