"""What the SFT and DPO entry points do alike around training, so that each holds only what is its own.

``sft.main`` and ``dpo.main`` are ``main`` with their ``Stage`` (what each
has of its own): it parses the recipe, then goes through one ``Run``:

1. ``Run(...)`` takes the Hub token out of the training arguments (the
   Trainer pickles them into ``training_args.bin`` beside the weights).
2. ``Run.start`` reviews every recipe field set (``fields.review``: applied
   or refused, with the reason) and, when pushing, checks the push
   (``hubaccess``) before any data is read, so a push cannot fail at the end
   for a reason known at step 0; then it loads the tokenizer and prepares the
   data as the entry point's ``Stage`` says (load, encode, check the masks).
3. ``Run.load_model`` loads the base model as the recipe asks and takes the
   push away from the Trainer: it is done here, once, with the card.
4. ``Run.train`` trains and saves on every process; the main one then writes
   the curve, the recipe, the data's manifest, ``training_summary.json`` and
   the card and pushes (``Run.finish``), while the others wait at a barrier.

Every message starts ``agentinstruct NAME:`` (``Stage.name``). Exit codes: 1
refused before training (a recipe field, the push check, a mask or template)
or failed after it, 2 the data cannot be read, 3 the push failed (the
checkpoint is saved). No secret reaches a written or pushed file
(``redact``): the recipe is masked and every pushed file is scanned.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentinstruct.training.base import EMBEDDED_GGUF, is_gguf, load_tokenizer, resolve_model
from agentinstruct.training.card import CURVE, plot_curve
from agentinstruct.training.chat import TemplateError, chat_format
from agentinstruct.training.fields import RecipeError, explicit_fields, resolve_attention, review
from agentinstruct.training.hubaccess import PushCheckError, check_push
from agentinstruct.training.masking import MaskError
from agentinstruct.training.redact import find_secrets, known_secrets, redact_args, redact_recipe
from agentinstruct.training.sharegpt import require_hub_id


@dataclass(frozen=True)
class Stage:
    """What an entry point has of its own: its name, its data and how it becomes tokens, its trainer, its outputs.

    ``name`` starts every message (``agentinstruct NAME: ...``); ``refused``
    names the recipe fields it refuses beyond ``fields.review``'s, with the
    reason. The data: ``load(dataset_name, revision, split)`` gives the rows,
    their manifest and the Hub revision (see ``load_rows``);
    ``encoder(tokenizer, chat_format, max_length)`` tokenizes them (its
    ``encode``, and ``stats`` with ``as_dict()`` and the ``report()`` line
    printed), ``check`` refuses a wrong mask before training, and ``columns``
    are what the trainer gets of each encoded row. ``trainer(run, model,
    peft_config)`` makes the trainer. The outputs: the data's manifest is saved
    beside the checkpoint as ``manifest_file``; ``render_card`` writes the
    README.md from the info ``Run.finish`` gathers; the push's commit message
    starts with ``commit_title``; ``adapter_targets`` says whether the LoRA
    description names the target modules; ``summary_extra`` adds the stage's
    own fields to ``training_summary.json`` from the trainer.

    Example:
        >>> stage = Stage(name="sft", load=None, encoder=None, check=None, columns=(), trainer=None,
        ...               manifest_file="mixture.json", render_card=None, commit_title="AgentLM checkpoint")
        >>> stage.message("error: no data")
        'agentinstruct sft: error: no data'
    """

    name: str
    load: Callable[[str, str | None, str], tuple[list[dict[str, Any]], dict[str, Any] | None, str | None]]
    encoder: Callable[[Any, Any, int | None], Any]
    check: Callable[[list[dict[str, Any]], Any], None]
    columns: tuple[str, ...]
    trainer: Callable[[Run, Any, Any], Any]
    manifest_file: str
    render_card: Callable[[dict[str, Any]], str]
    commit_title: str
    refused: dict[str, str] = field(default_factory=dict)
    adapter_targets: bool = True
    summary_extra: Callable[[Any], dict[str, Any]] | None = None

    def message(self, text: str) -> str:
        """``text`` as this entry point says it."""
        return f"agentinstruct {self.name}: {text}"


def main(stage: Stage, parser: Any, argv: list[str] | None = None) -> int:
    """An entry point's main: parse the recipe with ``parser`` (a ``TrlParser``), check it and the push, prepare
    the data, train, then (main process only) save the card and push; the exit code.

    Example (needs a model):
        >>> main(sft.STAGE, sft.make_parser(), ["--config", "training/recipes/smollm2-135m-cpu.yaml"])  # doctest: +SKIP
        0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    script_args, training_args, model_args = parser.parse_args_and_config(argv)
    run = Run(stage, argv, script_args, training_args, model_args)
    code = run.start(tuple(parser.dataclass_types))
    if code:
        return code
    model, peft_config = run.load_model()
    return run.train(stage.trainer(run, model, peft_config))


def load_rows(name: str, revision: str | None, split: str,
              read_dir: Callable[[Path], tuple[list[dict[str, Any]], dict[str, Any]]], manifest_file: str, made_by: str,
              check: Callable[[str, dict[str, Any]], None] | None = None
              ) -> tuple[list[dict[str, Any]], dict[str, Any] | None, str | None]:
    """The rows of a training set, its manifest (None when a Hub set has none) and the resolved Hub revision.

    ``name`` is a dir (read by ``read_dir``) or a Hub dataset id, whose
    ``manifest_file`` is read at the resolved revision and passed to ``check``
    with the name (it raises ``ValueError`` when the set is not of the kind)
    before any row is downloaded; ``made_by`` is the command that writes such
    a set, for errors.

    Example:
        >>> load_rows("", None, "train", read_dir=None, manifest_file="mixture.json", made_by="agentinstruct mix")
        Traceback (most recent call last):
        ...
        ValueError: no dataset_name: give a dir from `agentinstruct mix` or a Hub dataset id
        >>> _ = Path("set").mkdir()
        >>> load_rows("set", None, "train", lambda root: ([{"id": "a"}], {}), "m.json", "agentinstruct mix")
        ([{'id': 'a'}], {}, None)
    """
    if not name:
        raise ValueError(f"no dataset_name: give a dir from `{made_by}` or a Hub dataset id")
    if Path(name).is_dir():
        rows, manifest = read_dir(Path(name))
        return rows, manifest, None
    import datasets
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    require_hub_id(name)
    sha = HfApi().dataset_info(name, revision=revision).sha
    try:
        path = hf_hub_download(name, manifest_file, repo_type="dataset", revision=sha)
        manifest = json.loads(Path(path).read_text(encoding="utf-8"))
    except EntryNotFoundError:
        manifest = None
    if manifest is not None and check is not None:
        check(name, manifest)
    return list(datasets.load_dataset(name, split=split, revision=sha)), manifest, sha


def recipe_text(argv: list[str]) -> str:
    """The recipe as run: the YAML and the command-line overrides, with every secret masked.

    Example:
        >>> _ = Path("r.yaml").write_text("learning_rate: 1.0e-5\\n", encoding="utf-8")
        >>> print(recipe_text(["--config", "r.yaml", "--max_steps", "3", "--hub_token", "hf_abcdefghijklmnop"]))
        learning_rate: 1.0e-5
        <BLANKLINE>
        # command-line overrides: --max_steps 3 --hub_token <redacted>
        <BLANKLINE>
    """
    if "--config" in argv:
        recipe = Path(argv[argv.index("--config") + 1]).read_text(encoding="utf-8")
        overrides = [a for i, a in enumerate(argv) if a != "--config" and (i == 0 or argv[i - 1] != "--config")]
    else:
        recipe, overrides = "", list(argv)
    recipe = redact_recipe(recipe)
    if overrides:
        recipe += "\n# command-line overrides: " + " ".join(redact_args(overrides)) + "\n"
    return recipe


def describe_adapter(peft_config: Any, targets: bool = True) -> str | None:
    """The LoRA adapter as the summary and the card name it; None when the whole model is trained.

    Example:
        >>> from types import SimpleNamespace
        >>> lora = SimpleNamespace(r=4, lora_alpha=8, lora_dropout=0.0, target_modules={"v_proj", "q_proj"})
        >>> describe_adapter(lora)
        "LoRA r=4, alpha=8, dropout=0.0, target modules ['q_proj', 'v_proj']"
        >>> describe_adapter(lora, targets=False), describe_adapter(None)
        ('LoRA r=4, alpha=8, dropout=0.0', None)
    """
    if peft_config is None:
        return None
    p = peft_config
    text = f"LoRA r={p.r}, alpha={p.lora_alpha}, dropout={p.lora_dropout}"
    if targets:
        text += f", target modules {sorted(p.target_modules) if p.target_modules else 'peft defaults'}"
    return text


def load_model(model_ref: str, model_args: Any, training_args: Any, cuda: bool) -> tuple[Any, str | None]:
    """The base model as the recipe asks (dtype, attention with its fallback, 4-/8-bit) and the attention used.

    Example (needs a model):
        >>> model, attn = load_model(EMBEDDED_GGUF, model_args, training_args, cuda=False)  # doctest: +SKIP
        >>> attn  # doctest: +SKIP
        'sdpa'
    """
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


class Run:
    """One run of an entry point, from the parsed recipe to the pushed checkpoint (see the module's steps).

    Example:
        >>> from types import SimpleNamespace
        >>> from trl import ModelConfig
        >>> stage = Stage(name="sft", load=None, encoder=None, check=None, columns=(), trainer=None,
        ...               manifest_file="mixture.json", render_card=None, commit_title="AgentLM checkpoint")
        >>> args = SimpleNamespace(hub_token="hf_abcdefghijklmnop", process_index=0, output_dir="out")
        >>> run = Run(stage, [], SimpleNamespace(), args, ModelConfig())
        >>> args.hub_token, run.model_ref == EMBEDDED_GGUF, run.out
        (None, True, PosixPath('out'))
    """

    def __init__(self, stage: Stage, argv: list[str], script_args: Any, training_args: Any, model_args: Any):
        import torch

        self.stage, self.argv = stage, argv
        self.script_args, self.training_args, self.model_args = script_args, training_args, model_args
        self.hub_token = training_args.hub_token
        # the Trainer pickles its arguments into training_args.bin beside the weights: it must not carry the token
        training_args.hub_token = None
        self.secrets = known_secrets(self.hub_token)
        self.cuda = torch.cuda.is_available()
        self.main_process = training_args.process_index == 0
        self.out = Path(training_args.output_dir)
        self.model_ref = model_args.model_name_or_path or EMBEDDED_GGUF
        self.target: str | None = None
        self.tokenizer: Any = None
        self.dataset: Any = None
        self.manifest: dict[str, Any] | None = None
        self.revision: str | None = None
        self.stats: dict[str, Any] = {}
        self.attn: str | None = None
        self.peft_config: Any = None

    def say(self, line: str) -> None:
        """Print ``line`` on the main process only (every process would print it once)."""
        if self.main_process:
            print(line)

    def _stderr(self, text: str) -> None:
        """Print ``text`` as the entry point says it, on stderr."""
        print(self.stage.message(text), file=sys.stderr)

    def start(self, dataclass_types: tuple[type, ...]) -> int:
        """Review the recipe (``fields.review`` over ``dataclass_types``, with the stage's ``refused`` fields),
        check the push, load the tokenizer, ``prepare`` the data and report it; 0 when training may go on, else
        the exit code, with the reason printed."""
        try:
            for warning in review(explicit_fields(self.argv), self.training_args, self.model_args, dataclass_types,
                                  self.cuda, self.stage.refused):
                if self.main_process:
                    self._stderr(f"warning: {warning}")
            # a push that cannot succeed is found now, not after hours of training
            if self.training_args.push_to_hub:
                self.target = check_push(self.training_args.hub_model_id or self.out.name, self.hub_token).repo_id
        except (RecipeError, PushCheckError) as exc:
            self._stderr(f"refusing to train: {exc}")
            return 1
        try:
            # one process converts a GGUF base while the others wait, then they read the converted copy
            with self.training_args.main_process_first(desc="loading the tokenizer"):
                self.tokenizer = load_tokenizer(self.model_ref, self.model_args.model_revision,
                                                self.training_args.trust_remote_code)
            report = self.prepare()
        except (MaskError, TemplateError) as exc:
            self._stderr(f"refusing to train: {exc}")
            return 1
        except (FileNotFoundError, ValueError, OSError) as exc:
            self._stderr(f"error: {exc}")
            return 2
        self.say(report)
        return 0

    def prepare(self) -> str:
        """Load, encode and check the data as the stage says: sets ``dataset`` (the tokenized Dataset),
        ``manifest``, ``revision`` and ``stats``, and the tokenizer's chat template to the one trained with;
        returns the line that reports the tokenization."""
        import datasets

        stage, script_args, tokenizer = self.stage, self.script_args, self.tokenizer
        fmt = chat_format(script_args.chat_format, tokenizer, script_args.system_prompt)
        rows, self.manifest, self.revision = stage.load(script_args.dataset_name, script_args.dataset_revision,
                                                        script_args.dataset_split)
        if script_args.max_train_examples is not None:
            rows = rows[: script_args.max_train_examples]
        encoder = stage.encoder(tokenizer, fmt, self.training_args.max_length)
        encoded = encoder.encode(rows)
        stage.check(encoded, encoder.stats)
        tokenizer.chat_template = fmt.template  # the saved tokenizer carries the template the model was trained with
        self.dataset = datasets.Dataset.from_dict({c: [e[c] for e in encoded] for c in stage.columns})
        self.stats = encoder.stats.as_dict()
        return encoder.stats.report()

    def load_model(self) -> tuple[Any, Any]:
        """The base model (``load_model``) and the peft config (None without ``use_peft``); the Trainer is left
        no push of its own, since ``finish`` pushes once, with the card and files."""
        from trl import get_peft_config

        model, self.attn = load_model(self.model_ref, self.model_args, self.training_args, self.cuda)
        self.training_args.push_to_hub = False
        self.peft_config = get_peft_config(self.model_args)
        return model, self.peft_config

    def train(self, trainer: Any) -> int:
        """Train, save on every process, then finish on the main one while the others wait; the exit code."""
        args = self.training_args
        result = trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
        trainer.save_model(str(self.out))  # every process: FSDP and ZeRO-3 gather the shards; only the main one writes
        code = 0
        if trainer.is_world_process_zero():
            try:
                code = self.finish(trainer, result.metrics.get("train_runtime", 0.0))
            except Exception as exc:  # the other processes wait at the barrier below: report, then let them go
                self._stderr(f"error after training: {exc}")
                code = 1
        else:
            print(f"process {args.process_index}/{args.world_size}: waiting for the main process to write the card "
                  "and push")
        trainer.accelerator.wait_for_everyone()
        return code

    def finish(self, trainer: Any, runtime: float) -> int:
        """The main process's part after training: curve, recipe, manifest, summary, card, push (exit 3 when the
        push fails: the checkpoint stays saved)."""
        from agentinstruct.hub import PublishError

        stage, script_args, out = self.stage, self.script_args, self.out
        history = trainer.state.log_history
        curve = plot_curve(history, out / CURVE)
        recipe = recipe_text(self.argv)
        (out / "recipe.yaml").write_text(recipe, encoding="utf-8")
        if self.manifest is not None:
            (out / stage.manifest_file).write_text(json.dumps(self.manifest, indent=2) + "\n", encoding="utf-8")
        losses = [h["loss"] for h in history if "loss" in h]
        adapter = describe_adapter(self.peft_config, stage.adapter_targets)
        summary = {"steps": trainer.state.global_step, "final_loss": losses[-1] if losses else None,
                   "runtime_s": round(runtime, 1), "processes": self.training_args.world_size,
                   "attn_implementation": self.attn, "adapter": adapter, "losses": losses,
                   **(stage.summary_extra(trainer) if stage.summary_extra else {}), "encode": self.stats}
        (out / "training_summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        card = stage.render_card({
            "model_name": self.target or trainer.args.hub_model_id or out.name, "base_model": self.model_ref,
            "dataset": {"name": script_args.dataset_name, "revision": self.revision}, "manifest": self.manifest,
            "recipe": recipe, "chat_format": script_args.chat_format, "encode": self.stats, "train": summary,
            "curve": CURVE if curve else None, "adapter": adapter,
        })
        (out / "README.md").write_text(card, encoding="utf-8")
        print(f"saved to {out} ({summary['steps']} steps, final loss {summary['final_loss']})")
        if self.target is None:
            return 0
        try:
            published = push_checkpoint(out, self.target, script_args.hub_version, bool(trainer.args.hub_private_repo),
                                        f"{stage.commit_title}: {summary['steps']} steps on {script_args.dataset_name}",
                                        token=self.hub_token, secrets=self.secrets)
        except PublishError as exc:
            self._stderr(f"push failed (the checkpoint is saved in {out}): {exc}")
            return 3
        print(published.render())
        return 0
