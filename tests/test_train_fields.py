"""Before training starts: every recipe field is applied or refused, flash attention falls back, the Hub id resolves
to the token's user and a push that cannot succeed stops the run at step 0 (checked against the local Hub)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import yaml
from trl import ModelConfig, SFTConfig

from agentinstruct.training import fields, sft
from agentinstruct.training.fields import RecipeError, field_status, resolve_attention, review
from agentinstruct.training.hubaccess import PushCheckError, check_push, writable_target

REPO = Path(__file__).resolve().parents[1]
# the SFT recipes; the DPO ones (dpo-*.yaml) are walked by tests/test_pairs.py
RECIPES = sorted(p for p in (REPO / "training" / "recipes").glob("*.yaml") if not p.stem.startswith("dpo"))
CPU_RECIPE = REPO / "training" / "recipes" / "smollm2-135m-cpu.yaml"
TYPES = (sft.AgentLMArguments, SFTConfig, ModelConfig)
NO_GPU = ["--bf16", "false", "--use_cpu", "true"]


def _parse(recipe: Path, *extra: str):
    return sft.make_parser().parse_args_and_config(["--config", str(recipe), *NO_GPU, *extra])


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_every_field_of_the_shipped_recipes_is_applied(recipe: Path, monkeypatch) -> None:
    keys = yaml.safe_load(recipe.read_text())
    statuses = {k: field_status(k, TYPES) for k in keys}
    assert all(s.startswith("applied: ") for s in statuses.values()), statuses
    _, training_args, model_args = _parse(recipe)
    # on the GPU machine the recipes are meant for (flash-attn installed), nothing is refused or changed
    monkeypatch.setattr(fields, "_installed", lambda module: True)
    assert review(keys, training_args, model_args, TYPES, cuda=True) == []
    if training_args.push_to_hub:
        assert training_args.hub_strategy == "end" and "/" not in training_args.hub_model_id


@pytest.mark.parametrize(("extra", "message"), [
    (["--assistant_only_loss", "true"], "assistant_only_loss: the loss mask is the records' per-turn loss"),
    (["--hub_strategy", "every_save"], "hub_strategy: every_save is not supported"),
    (["--load_in_4bit", "true", "--use_peft", "true"], "load_in_4bit: 4-/8-bit loading (bitsandbytes) needs a CUDA GPU"),
    (["--load_in_8bit", "true"], "a 8-bit model can only be trained through adapters"),
    (["--lora_r", "8"], "lora_r: a LoRA setting has no effect without use_peft: true"),
    (["--bnb_4bit_quant_type", "nf4"], "a 4-bit setting has no effect without load_in_4bit"),
    (["--dataset_text_field", "messages"], "dataset_text_field: the data is tokenized by agentinstruct"),
])
def test_fields_that_cannot_take_effect_stop_the_run_at_step_0(extra: list[str], message: str, tmp_path: Path,
                                                                capsys) -> None:
    code = sft.main(["--config", str(CPU_RECIPE), "--dataset_name", str(tmp_path / "nowhere"),
                     "--output_dir", str(tmp_path / "out"), *extra])
    err = capsys.readouterr().err
    assert code == 1 and "refusing to train: recipe fields that cannot take effect here" in err and message in err
    assert not (tmp_path / "out").exists()


def test_qlora_is_applied_where_a_gpu_and_bitsandbytes_exist(monkeypatch) -> None:
    _, training_args, model_args = _parse(CPU_RECIPE, "--load_in_4bit", "true", "--use_peft", "true")
    monkeypatch.setattr(fields, "_installed", lambda module: True)
    assert review({"load_in_4bit": True, "use_peft": True}, training_args, model_args, TYPES, cuda=True) == []
    monkeypatch.setattr(fields, "_installed", lambda module: module != "bitsandbytes")
    with pytest.raises(RecipeError, match="needs bitsandbytes"):
        review({"load_in_4bit": True, "use_peft": True}, training_args, model_args, TYPES, cuda=True)


def test_flash_attention_falls_back_to_sdpa_or_the_kernels_build(monkeypatch) -> None:
    assert resolve_attention("flash_attention_2", cuda=False)[0] == "sdpa"
    monkeypatch.setattr(fields, "_installed", lambda module: False)
    impl, warning = resolve_attention("flash_attention_2", cuda=True)
    assert impl == "sdpa" and "neither flash-attn nor kernels is installed" in warning
    monkeypatch.setattr(fields, "_installed", lambda module: module == "kernels")
    assert resolve_attention("flash_attention_2", cuda=True) == ("kernels-community/flash-attn2", None)
    monkeypatch.setattr(fields, "_installed", lambda module: module == "flash_attn")
    assert resolve_attention("flash_attention_2", cuda=True) == ("flash_attention_2", None)
    assert resolve_attention("eager", cuda=True) == ("eager", None)


def test_writable_target_reads_whoami_like_the_hub() -> None:
    fine = {"name": "ada", "orgs": [], "auth": {"accessToken": {"role": "fineGrained", "fineGrained": {
        "global": [], "scoped": [{"entity": {"type": "user", "name": "ada"}, "permissions": ["repo.write"]}]}}}}
    assert writable_target(fine, "AgentLM").repo_id == "ada/AgentLM"
    fine["auth"]["accessToken"]["fineGrained"]["scoped"][0]["permissions"] = ["repo.content.read"]
    with pytest.raises(PushCheckError, match="no repo.write permission on ada"):
        writable_target(fine, "AgentLM")
    with pytest.raises(PushCheckError, match="neither the token's user ada nor one of its orgs"):
        writable_target({"name": "ada", "auth": {"accessToken": {"role": "write"}}}, "meta-llama/AgentLM")


def test_hub_id_without_namespace_resolves_to_the_token_user(local_hub) -> None:
    assert check_push("AgentLM-7b-agentinstruct", None).repo_id == "local-tester/AgentLM-7b-agentinstruct"
    assert check_push("agentinstruct-test/AgentLM", None).repo_id == "agentinstruct-test/AgentLM"
    with pytest.raises(PushCheckError, match="someone-else is neither the token's user local-tester"):
        check_push("someone-else/AgentLM", None)
    with pytest.raises(PushCheckError, match="the token is invalid or expired"):
        check_push("AgentLM", "hf_not_the_servers_token_at_all")


def test_a_push_that_would_fail_stops_training_at_step_0(local_hub, tmp_path: Path, monkeypatch, capsys) -> None:
    from hub_server import LocalHub

    run = ["--config", str(CPU_RECIPE), "--dataset_name", str(tmp_path / "nowhere"), "--output_dir",
           str(tmp_path / "out"), "--push_to_hub", "true"]
    monkeypatch.delenv("HF_TOKEN")
    assert sft.main(run) == 1 and "push_to_hub is on but there is no Hugging Face token" in capsys.readouterr().err
    read_token = f"hf_read{secrets.token_hex(12)}"
    with LocalHub(tmp_path / "store", token=local_hub.token, read_token=read_token) as hub:
        monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", hub.endpoint)
        assert sft.main([*run, "--hub_token", read_token]) == 1
        err = capsys.readouterr().err
        assert "the Hugging Face token of local-tester is read-only" in err and read_token not in err
    assert not (tmp_path / "out").exists()
