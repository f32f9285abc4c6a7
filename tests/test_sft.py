"""The SFT entry point: recipe parsing, packing without cross-contamination, refusing bad masks, and (slow) the CPU
recipe end to end: loss goes down on a tiny overfit set, the checkpoint reloads and generates, the push reaches the
local Hub."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from agentinstruct.records.thudm import import_thudm
from agentinstruct.training import sft
from agentinstruct.training.base import EMBEDDED_GGUF, load_tokenizer, plain_checkpoint
from agentinstruct.training.mixconfig import MixtureSpec, SourceSpec
from agentinstruct.training.mixture import Mixture, build_mixture, write_mixture

REPO = Path(__file__).resolve().parents[1]
CPU_RECIPE = REPO / "training" / "recipes" / "smollm2-135m-cpu.yaml"
# the SFT recipes; the DPO ones (dpo-*.yaml) are walked by tests/test_pairs.py
RECIPES = sorted(p for p in (REPO / "training" / "recipes").glob("*.yaml") if not p.stem.startswith("dpo"))
# the GPU recipes ask for bf16, which transformers refuses to even configure without a GPU
NO_GPU = [] if torch.cuda.is_available() else ["--bf16", "false", "--use_cpu", "true"]


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_parses_and_cli_flags_override_it(recipe: Path) -> None:
    script_args, training_args, model_args = sft.make_parser().parse_args_and_config(
        ["--config", str(recipe), "--max_steps", "3", "--dataset_name", "somewhere", "--output_dir", "/tmp/x", *NO_GPU])
    assert training_args.max_steps == 3 and script_args.dataset_name == "somewhere"
    assert script_args.chat_format in ("llama2-chat", "model") and model_args.model_name_or_path
    assert training_args.packing and training_args.packing_strategy == "bfd" and training_args.max_length


def test_agentlm_recipes_follow_the_paper() -> None:
    for size, lr in (("7b", 5e-5), ("13b", 5e-5), ("70b", 1e-5)):
        _, args, model = sft.make_parser().parse_args_and_config(
            ["--config", str(REPO / f"training/recipes/agentlm-{size}.yaml"), *NO_GPU])
        assert model.model_name_or_path == f"meta-llama/Llama-2-{size}-chat-hf"
        assert args.max_steps == 2000 and args.learning_rate == lr and args.max_length == 4096 and args.packing
        world = 8  # the batch of 64 assumes 8 GPUs (see the recipe)
        assert args.per_device_train_batch_size * args.gradient_accumulation_steps * world == 64


def test_packed_examples_do_not_attend_to_each_other_on_cpu_sdpa() -> None:
    from transformers import AutoModelForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    model = AutoModelForCausalLM.from_pretrained(plain_checkpoint(EMBEDDED_GGUF), attn_implementation="sdpa").eval()
    a, b = list(range(100, 112)), list(range(300, 309))
    # what TRL's bfd packing and padding-free collator hand the model (SFTTrainer also sets use_cache=False)
    collator = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)
    batch = collator([{"input_ids": a + b, "labels": a + b, "seq_lengths": [len(a), len(b)]}])
    assert batch["position_ids"].tolist() == [list(range(12)) + list(range(9))]
    assert "attention_mask" not in batch and batch["labels"][0, 12].item() == -100
    with torch.no_grad():
        packed = model(**{k: v for k, v in batch.items() if k != "labels"}, use_cache=False).logits[0]
        alone_a = model(torch.tensor([a])).logits[0]
        alone_b = model(torch.tensor([b])).logits[0]
        leaked = model(torch.tensor([a + b])).logits[0]
    assert torch.allclose(packed[:12], alone_a, atol=1e-4)
    assert torch.allclose(packed[12:], alone_b, atol=1e-4)
    assert not torch.allclose(leaked[12:], alone_b, atol=1e-2)  # the check can fail: plain concatenation leaks


def _mix_dir(tmp_path: Path, eta: float, samples: int) -> Path:
    import_thudm(str(REPO / "agentinstruct" / "records" / "samples" / "thudm_sample.jsonl"), tmp_path / "agent")
    general = tmp_path / "general.jsonl"
    general.write_text(json.dumps({"id": "g0", "conversations": [{"from": "human", "value": "Say hi."},
                                                                  {"from": "gpt", "value": "Hi!"}]}) + "\n")
    spec = MixtureSpec(agent=[SourceSpec(str(tmp_path / "agent"))], general=[SourceSpec(str(general))], eta=eta,
                       samples=samples, oversample=False)
    build_mixture(spec, tmp_path / "mix", load_tokenizer(EMBEDDED_GGUF))
    return tmp_path / "mix"


def test_training_refuses_to_start_on_a_set_with_nothing_to_train(tmp_path: Path, capsys) -> None:
    rows = [{"id": "mix_0", "source": "agent", "source_split": "os", "source_id": "os_0", "epoch": 0, "conversations": [
        {"from": "human", "value": "hi", "loss": None}, {"from": "gpt", "value": "Ok.", "loss": False}]}]
    write_mixture(tmp_path / "mix", Mixture(rows, {}, "r"), {
        "eta": 1.0, "agentinstruct_version": "x", "rule": "r", "drawn": {"samples": 1, "agent": 1, "general": 0},
        "effective_eta": {"examples": 1.0, "trained_tokens": 0.0}})
    code = sft.main(["--config", str(CPU_RECIPE), "--dataset_name", str(tmp_path / "mix"), "--output_dir", str(tmp_path / "out")])
    assert code == 1 and "refusing to train: no examples left" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    code = sft.main(["--config", str(CPU_RECIPE), "--dataset_name", str(tmp_path / "nowhere"), "--output_dir", str(tmp_path / "out")])
    assert code == 2 and "nowhere: no such file or directory" in capsys.readouterr().err


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CPU recipe run for 8 steps on the three embedded AgentInstruct rows (an overfit set)."""
    tmp = tmp_path_factory.mktemp("sft")
    mix = _mix_dir(tmp, eta=1.0, samples=3)
    out = tmp / "out"
    code = sft.main(["--config", str(CPU_RECIPE), "--dataset_name", str(mix), "--output_dir", str(out),
                     "--max_steps", "8", "--learning_rate", "2e-4", "--warmup_steps", "0", "--lr_scheduler_type", "constant"])
    assert code == 0
    return out


@pytest.mark.slow
def test_cpu_recipe_overfits_saves_a_card_and_reloads(trained: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    summary = json.loads((trained / "training_summary.json").read_text())
    losses = summary["losses"]
    assert summary["steps"] == 8 and len(losses) == 8
    assert sum(losses[-2:]) / 2 < 0.6 * sum(losses[:2]) / 2, losses
    assert summary["encode"]["examples_by_source"] == {"agent": 3}
    for name in ("README.md", "training_curve.png", "mixture.json", "recipe.yaml", "model.safetensors", "config.json"):
        assert (trained / name).exists(), name
    assert (trained / "training_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = (trained / "README.md").read_text()
    assert "![training loss](training_curve.png)" in card and "eta = 1.0" in card and "--max_steps 8" in card
    assert "sharegpt" not in card.lower() or "general.jsonl" in card
    tok = AutoTokenizer.from_pretrained(trained)
    model = AutoModelForCausalLM.from_pretrained(trained)
    assert getattr(model, "hf_quantizer", None) is None
    prompt = tok.apply_chat_template([{"role": "user", "content": "Which city has the most stores?"}],
                                     add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**prompt, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > prompt["input_ids"].shape[1]
    assert tok.decode(out[0, prompt["input_ids"].shape[1]:]).strip()


@pytest.mark.slow
def test_push_reaches_the_local_hub(trained: Path, local_hub, tmp_path: Path) -> None:
    from huggingface_hub import HfApi, hf_hub_download

    (trained / "checkpoint-4").mkdir(exist_ok=True)
    (trained / "checkpoint-4" / "optimizer.pt").write_bytes(b"not for the Hub")
    result = sft.push_checkpoint(trained, "agentinstruct-test/agentlm-tiny", "0.1.0", False, "AgentLM tiny")
    assert result.status == "published" and result.tag == "v0.1.0"
    files = set(HfApi().list_repo_files("agentinstruct-test/agentlm-tiny", revision="v0.1.0"))
    assert {"README.md", "model.safetensors", "training_curve.png", "mixture.json", "recipe.yaml"} <= files
    assert not any(f.startswith("checkpoint-") or f.startswith(".publish") for f in files)
    card = hf_hub_download("agentinstruct-test/agentlm-tiny", "README.md", revision="v0.1.0", cache_dir=tmp_path / "dl")
    assert Path(card).read_text() == (trained / "README.md").read_text()
    assert not any(p.name.startswith(".publish") for p in trained.iterdir())
