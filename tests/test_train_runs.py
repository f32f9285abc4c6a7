"""The SFT entry point run for real on a tiny Llama (the embedded SmolLM2 tokenizer, a model made from a config):
LoRA through peft on CPU, no planted secret in any written or pushed file, ``--hub_token`` honoured, a Hub id
without a namespace pushed under the token's user, and (slow) two processes under ``accelerate launch`` where only
the main one writes and pushes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentinstruct.records.thudm import import_thudm
from agentinstruct.training import sft
from agentinstruct.training.base import EMBEDDED_GGUF, load_tokenizer
from agentinstruct.training.mixconfig import MixtureSpec, SourceSpec
from agentinstruct.training.mixture import build_mixture

REPO = Path(__file__).resolve().parents[1]
CPU_RECIPE = REPO / "training" / "recipes" / "smollm2-135m-cpu.yaml"
PLANTED_HUB = "hf_PLANTEDinTheCommandLine0123456789"
PLANTED_ENV = "sk-PLANTEDinTheRecipeEnv0123456789"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 2-layer Llama with the embedded tokenizer, and a mixture of the embedded AgentInstruct sample rows."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tmp = tmp_path_factory.mktemp("tiny")
    tok = load_tokenizer(EMBEDDED_GGUF)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                         tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(tmp / "model")
    tok.save_pretrained(tmp / "model")
    import_thudm(str(REPO / "agentinstruct" / "records" / "samples" / "thudm_sample.jsonl"), tmp / "agent")
    build_mixture(MixtureSpec(agent=[SourceSpec(str(tmp / "agent"))], eta=1.0, samples=4), tmp / "mix", tok)
    return {"model": tmp / "model", "mix": tmp / "mix"}


def _args(tiny: dict[str, Path], out: Path, *extra: str, recipe: Path = CPU_RECIPE) -> list[str]:
    return ["--config", str(recipe), "--model_name_or_path", str(tiny["model"]), "--dataset_name", str(tiny["mix"]),
            "--output_dir", str(out), "--max_steps", "2", *extra]


@pytest.mark.slow
def test_lora_trains_on_cpu_and_saves_an_adapter_with_its_card(tiny: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "lora"
    assert sft.main(_args(tiny, out, "--use_peft", "true", "--lora_r", "4", "--lora_alpha", "8",
                          "--lora_target_modules", "q_proj", "v_proj")) == 0
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["lora_alpha"] == 8 and sorted(config["target_modules"]) == ["q_proj", "v_proj"]
    assert (out / "adapter_model.safetensors").exists() and not (out / "model.safetensors").exists()
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["steps"] == 2 and summary["adapter"].startswith("LoRA r=4, alpha=8")
    card = (out / "README.md").read_text()
    assert "library_name: peft" in card and "A LoRA adapter (LoRA r=4" in card
    from peft import AutoPeftModelForCausalLM

    model = AutoPeftModelForCausalLM.from_pretrained(out)
    assert model.peft_config["default"].r == 4


@pytest.mark.slow
def test_no_planted_secret_lands_in_any_written_or_pushed_file(tiny: dict[str, Path], local_hub, tmp_path: Path,
                                                               monkeypatch, capsys) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(CPU_RECIPE.read_text() + f"env:\n  OPENAI_API_KEY: {PLANTED_ENV}\n")
    # the environment's token is not the server's: the push only works if --hub_token is the one used
    monkeypatch.setenv("HF_TOKEN", PLANTED_HUB)
    out = tmp_path / "AgentLM-tiny"
    code = sft.main(_args(tiny, out, "--push_to_hub", "true", "--hub_token", local_hub.token, "--hub_version", "0.1.0",
                          "--hub_model_id", "AgentLM-tiny", recipe=recipe))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "published local-tester/AgentLM-tiny v0.1.0" in captured.out
    planted = [PLANTED_HUB, PLANTED_ENV, local_hub.token]
    written = [p for p in out.rglob("*") if p.is_file()]
    assert {"recipe.yaml", "README.md", "training_summary.json", "training_args.bin"} <= {p.name for p in written}
    for path in written:
        data = path.read_bytes()
        assert not any(s.encode() in data for s in planted), path
    assert "--hub_token <redacted>" in (out / "recipe.yaml").read_text()
    assert "OPENAI_API_KEY: <redacted>" in (out / "recipe.yaml").read_text()
    pushed = list((local_hub.store.root / "objects").rglob("*"))
    assert pushed and not any(s.encode() in p.read_bytes() for p in pushed if p.is_file() for s in planted)
    assert not any(s in captured.out + captured.err for s in planted)
    from huggingface_hub import HfApi

    files = set(HfApi(token=local_hub.token).list_repo_files("local-tester/AgentLM-tiny", revision="v0.1.0"))
    assert {"README.md", "recipe.yaml", "training_summary.json", "model.safetensors"} <= files


def test_a_file_holding_a_known_token_is_never_pushed(tiny: dict[str, Path], local_hub, tmp_path: Path) -> None:
    from agentinstruct.hub import PublishError

    out = tmp_path / "ckpt"
    out.mkdir()
    (out / "README.md").write_text("# tiny\n")
    (out / "notes.txt").write_text(f"my token is {local_hub.token}\n")
    with pytest.raises(PublishError, match="refusing to push: notes.txt in .* contain a credential"):
        sft.push_checkpoint(out, "local-tester/leaky", None, False, "leak")
    assert "POST /api/repos/create" not in local_hub.requests


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_train_and_only_the_main_one_writes(tiny: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    accelerate = Path(sys.executable).with_name("accelerate")
    # --multi_gpu picks accelerate's torchrun launcher; the recipe's use_cpu makes the processes talk over gloo
    cmd = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "--main_process_port", str(_free_port()), "-m", "agentinstruct.training.sft",
           *_args(tiny, out, "--logging_steps", "1")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    elapsed = time.monotonic() - start
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert log.count("saved to ") == 1 and "process 1/2: waiting for the main process" in log
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 2
    assert {"README.md", "recipe.yaml", "training_curve.png", "model.safetensors"} <= {p.name for p in out.iterdir()}
    print(f"two-process CPU run: {elapsed:.1f} s")
