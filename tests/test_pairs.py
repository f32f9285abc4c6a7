"""Preference pairs from a dataset dir's ``all`` config and the DPO path that trains them with per-turn loss.

Pairs: the shared prefix goes into ``prompt``; tasks with only successes or only failures give none; a query split
pairs per question; the draw is seeded and spreads over trajectories; the CLI writes a loadable dir with a manifest;
real builds (a reference build and a scripted model's build of the counter builder) pair up. DPO: the loss mask
trains agent turns only, the trainer's loss ignores observation tokens (checked against a hand computation), the
recipe's fields all apply, and a few steps run on a tiny Llama."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentinstruct.cli import main
from agentinstruct.datasetdir.release import write_splits
from agentinstruct.records.record import make_record
from agentinstruct.training.base import EMBEDDED_GGUF, load_tokenizer
from agentinstruct.training.pairs import build_pairs, pairs_from_dir, read_pairs

REPO = Path(__file__).resolve().parents[1]
DPO_RECIPE = REPO / "training" / "recipes" / "dpo-cpu.yaml"
OPENING = [
    {"from": "human", "value": "You act in a Linux shell. Reply with Act: bash or Act: answer(...).", "loss": None},
    {"from": "gpt", "value": "Ok.", "loss": False},
]


def h(value: str) -> dict[str, Any]:
    return {"from": "human", "value": value, "loss": None}


def g(value: str, loss: bool = True) -> dict[str, Any]:
    return {"from": "gpt", "value": value, "loss": loss}


def rec(n: int, task: str, conv: list[dict[str, Any]], ok: bool, split: str = "os", reward: float | None = None,
        kept: bool | None = None) -> dict[str, Any]:
    """A scored record of ``task``: kept when it succeeded unless ``kept`` says otherwise."""
    kept = ok if kept is None else kept
    reward = float(ok) if reward is None else reward
    return make_record(
        id=f"{split}_{n}", split=split, conversations=conv, task_id=task, instruction=task,
        instruction_source="train_split", reward=reward, success=ok,
        reward_details={"metric": "success", "components": [], "termination": "answered", "format_errors": 0},
        env={"name": split, "version": "1", "backend": "in-process"},
        agent={"model": "stub", "endpoint_kind": "openai-compatible", "policy": "model",
               "sampling": {"temperature": 0.7, "top_p": None, "max_tokens": 512, "seed": n},
               "usage": {"calls": 2, "prompt_tokens": 10, "completion_tokens": 5, "cost_usd": None}},
        filter={"bar": "reward>=1.0", "kept": kept, "reason": None if kept else f"reward {reward} < 1.0"},
        created_at="2026-12-01T00:00:00Z")


def task_conv(task: str, first: str, obs: str, last: str, tail: list[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    return [*OPENING, h(f"Now, a new problem: {task}"), g(first), h(obs), g(last), *tail]


@pytest.fixture
def built(tmp_path: Path) -> Path:
    """An os split: t0 has a kept and a failed attempt sharing their first round; t1 only successes; t2 only
    failures; t3 a success and a dropped success (not a candidate)."""
    records = [
        rec(0, "t0", task_conv("count files", "Act: bash ls | wc -l", "The output of the OS: 3", "Act: answer(3)"),
            True),
        rec(1, "t0", task_conv("count files", "Act: bash ls | wc -l", "The output of the OS: 3", "Act: answer(4)",
                               [h("That is not the answer.")]), False),
        rec(2, "t1", task_conv("disk usage", "Act: bash du -s", "The output of the OS: 12", "Act: answer(12)"), True),
        rec(3, "t1", task_conv("disk usage", "Act: bash du -sh", "The output of the OS: 12K", "Act: answer(12)"), True),
        rec(4, "t2", task_conv("whoami", "Act: bash id", "The output of the OS: uid=0", "Act: answer(1)"), False),
        rec(5, "t2", task_conv("whoami", "Act: bash whoami", "The output of the OS: root", "Act: answer(r)"), False),
        rec(6, "t3", task_conv("uptime", "Act: bash uptime", "The output of the OS: up", "Act: answer(up)"), True),
        rec(7, "t3", task_conv("uptime", "Act: bash w", "The output of the OS: up", "Act: answer(up)"), True,
            kept=False),
    ]
    write_splits(tmp_path / "built", {"os": records})
    return tmp_path / "built"


def test_the_shared_prefix_is_factored_out_and_completions_end_on_an_agent_turn(built: Path, tmp_path: Path) -> None:
    manifest = pairs_from_dir(built, tmp_path / "pairs")
    rows, _ = read_pairs(tmp_path / "pairs")
    assert [(r["task_id"], r["chosen_id"], r["rejected_id"]) for r in rows] == [("t0", "os_0", "os_1")]
    row = rows[0]
    # the opening, the task, the shared first action and its observation are the prompt
    assert [m["role"] for m in row["prompt"]] == ["user", "assistant", "user", "assistant", "user"]
    assert row["prompt"][-1]["content"] == "The output of the OS: 3"
    assert row["chosen"] == [{"role": "assistant", "content": "Act: answer(3)"}]
    # the observation after the failed answer is dropped: a completion ends on the agent's turn (as ETO does)
    assert row["rejected"] == [{"role": "assistant", "content": "Act: answer(4)"}]
    assert row["chosen_loss"] == [True] and row["rejected_loss"] == [True]
    assert (row["chosen_reward"], row["rejected_reward"]) == (1.0, 0.0)
    counts = manifest["splits"]["os"]
    assert {k: counts[k] for k in ("records", "tasks", "groups", "groups_with_both", "tasks_with_both", "pairs")} == {
        "records": 8, "tasks": 4, "groups": 4, "groups_with_both": 1, "tasks_with_both": 1, "pairs": 1}
    assert counts["skipped"]["not_a_candidate"] == 1  # t3's dropped success is neither chosen nor rejected


def test_diverging_rounds_keep_the_observations_in_the_completion_with_loss_false() -> None:
    win = rec(0, "t", task_conv("q", "Act: bash ls", "3 files", "Act: answer(3)"), True)
    lose = rec(1, "t", task_conv("q", "Act: bash pwd", "/root", "Act: answer(1)"), False)
    (row,), _ = build_pairs([win, lose])
    assert row["prompt"][-1]["content"] == "Now, a new problem: q"
    assert [m["role"] for m in row["chosen"]] == ["assistant", "user", "assistant"]
    assert row["chosen_loss"] == [True, False, True] and row["rejected_loss"] == [True, False, True]


def test_tasks_with_only_successes_or_only_failures_give_no_pair(tmp_path: Path, capsys) -> None:
    only = [rec(0, "t1", task_conv("a", "x", "o", "y"), True), rec(1, "t1", task_conv("a", "x", "o", "z"), True),
            rec(2, "t2", task_conv("b", "x", "o", "y"), False), rec(3, "t2", task_conv("b", "x", "o", "z"), False),
            # a failure whose reward is not lower than the success's: not a preference
            rec(4, "t3", task_conv("c", "x", "o", "y"), True, reward=0.5, kept=True),
            rec(5, "t3", task_conv("c", "x", "o", "z"), False, reward=0.5)]
    rows, counts = build_pairs(only)
    assert rows == [] and counts["os"]["tasks"] == 3 and counts["os"]["tasks_with_both"] == 0
    assert counts["os"]["skipped"]["reward_not_lower"] == 1
    write_splits(tmp_path / "built", {"os": only})
    assert main(["pairs", str(tmp_path / "built"), "--out", str(tmp_path / "pairs")]) == 2
    err = capsys.readouterr().err
    assert "no preference pair: 3 tasks, 0 with both a kept and a failed trajectory" in err and "--attempts N" in err
    assert not (tmp_path / "pairs").exists()


def question(page: str) -> list[dict[str, Any]]:
    return [h(f"'''<html> {page} </html>'''\nBased on the HTML webpage above, what should be the next action?\n"
              "A. None of the above\nB. <button id=0> Search </button>\nC. <a id=1> Deals </a>")]


def test_a_query_split_pairs_records_of_one_question_only(tmp_path: Path) -> None:
    # one mind2web task (a step) posed as three questions (rounds); each record is one question and one answer
    q1, q2, q3 = question("round one"), question("round two"), question("round three")
    records = [
        rec(0, "ann/step", [*q1, g("Answer: B.\nAction: CLICK")], True, split="mind2web"),
        rec(1, "ann/step", [*q1, g("Answer: C.\nAction: CLICK")], False, split="mind2web"),
        rec(2, "ann/step", [*q2, g("Answer: A.")], False, split="mind2web"),
        rec(3, "ann/step", [*q3, g("Answer: B.\nAction: CLICK")], True, split="mind2web"),
        rec(4, "ann/step", [*q3, g("Answer: A.")], False, split="mind2web"),
        rec(5, "ann/step", [*q3, g("Answer: C.\nAction: CLICK")], False, split="mind2web"),
    ]
    rows, counts = build_pairs(records, max_pairs_per_task=None)
    pairs = {(r["chosen_id"], r["rejected_id"]) for r in rows}
    # never mind2web_0 (question one) against mind2web_2 (question two), though they share the task id
    assert pairs == {("mind2web_0", "mind2web_1"), ("mind2web_3", "mind2web_4"), ("mind2web_3", "mind2web_5")}
    assert all(r["prompt"] == [{"role": "user", "content": r_q[0]["value"]}] for r, r_q in zip(
        sorted(rows, key=lambda r: r["chosen_id"]), [q1, q3, q3]))
    c = counts["mind2web"]
    assert (c["tasks"], c["groups"], c["groups_with_both"], c["tasks_with_both"], c["pairs"]) == (1, 3, 2, 1, 3)


def test_the_draw_is_seeded_spreads_over_trajectories_and_the_cli_writes_a_loadable_dir(tmp_path: Path,
                                                                                        capsys) -> None:
    won = [rec(i, "t", task_conv("q", "x", "o", f"win {i}"), True) for i in range(2)]
    lost = [rec(i, "t", task_conv("q", "x", "o", f"lose {i}"), False) for i in range(2, 5)]
    rows, _ = build_pairs(won + lost, max_pairs_per_task=2, seed=3)
    assert len({r["chosen_id"] for r in rows}) == 2 and len({r["rejected_id"] for r in rows}) == 2
    assert build_pairs(won + lost, max_pairs_per_task=2, seed=3)[0] == rows
    assert len(build_pairs(won + lost, max_pairs_per_task=None)[0]) == 6
    write_splits(tmp_path / "built", {"os": won + lost, "db": [rec(0, "d", task_conv("q", "x", "o", "y"), True,
                                                                  split="db")]})
    out = tmp_path / "pairs"
    args = ["pairs", str(tmp_path / "built"), "--out", str(out), "--max-pairs-per-task", "0", "--seed", "1"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "os: 5 records, 1 tasks (1 groups), 1 tasks with both a kept and a failed trajectory, 6 pairs" in printed
    first = (out / "manifest.json").read_bytes()
    assert main(args) == 0 and (out / "manifest.json").read_bytes() == first  # deterministic, byte for byte
    manifest = json.loads(first)
    source = json.loads((tmp_path / "built" / "manifest.json").read_text())
    assert manifest["source"]["schema_version"] == source["schema_version"] == "1.2.0"
    assert manifest["source"]["builder_version"] == source["builder_version"]
    assert {f["sha256"] for f in manifest["source"]["data_files"]} == {
        f["sha256"] for f in source["data_files"] if f["config"] == "all"}
    assert manifest["splits"]["db"]["pairs"] == 0 and manifest["total"]["pairs"] == 6
    import datasets

    ds = datasets.load_dataset(str(out), split="train")
    assert ds.num_rows == 6 and {"prompt", "chosen", "rejected", "chosen_loss", "rejected_loss"} <= set(ds.column_names)
    assert ds[0]["chosen"][0]["role"] == "assistant" and ds[0]["prompt"][-1]["role"] == "user"
    assert main(["pairs", str(tmp_path / "built"), "--out", str(tmp_path / "p2"), "--splits", "db"]) == 2
    assert main(["pairs", str(tmp_path / "built"), "--out", str(tmp_path / "p3"), "--splits", "kg"]) == 2
    assert "no split 'kg' in its all config (it has os, db)" in capsys.readouterr().err


def test_a_reference_build_and_a_model_build_pair_up(tmp_path: Path, capsys, monkeypatch) -> None:
    from counter_builder import respond
    from openai_stub import OpenAIStub

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-pairs-0123456789")
    out = tmp_path / "runs"
    common = ["build", "os", "--builder", "counter_builder:CounterBuilder", "--tasks", "gen:8", "--out", str(out)]
    assert main(common + ["--policy", "reference", "--name", "reference"]) == 0
    with OpenAIStub(respond) as stub:
        assert main(common + ["--model", "stub", "--base-url", stub.url, "--attempts", "2", "--name", "stub"]) == 0
    capsys.readouterr()
    manifest = pairs_from_dir(out, tmp_path / "pairs", max_pairs_per_task=None)
    rows, _ = read_pairs(tmp_path / "pairs")
    # the scripted model answers wrong exactly when the target is a multiple of 3 (counter_builder.respond)
    targets = {f"c{i}": i % 4 + (i * 7) % 10 + 1 for i in range(8)}
    assert {r["task_id"] for r in rows} == {t for t, v in targets.items() if v % 3 == 0}
    assert manifest["splits"]["os"]["records"] == 8 * 3
    for row in rows:
        assert row["prompt"][-1]["role"] == "user" and "Make it reach" in row["prompt"][2]["content"]
        assert row["chosen_reward"] == 1.0 and row["rejected_reward"] == 0.0
    assert len(rows) == 2 * len({r["task_id"] for r in rows})  # each failure of the two attempts against the reference


# --- the DPO path ---------------------------------------------------------------------------------------------------

OBSERVATION = "OBSERVATION-MARKER total 42 files in /srv"


def _pair_row() -> dict[str, Any]:
    win = rec(0, "t", task_conv("count files", "Act: bash ls /srv | wc -l", OBSERVATION, "Act: answer(42)"), True)
    lose = rec(1, "t", task_conv("count files", "Act: bash ls /tmp", "OBSERVATION-MARKER nothing here",
                                 "Act: answer(0)"), False)
    (row,), _ = build_pairs([win, lose])
    return row


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return load_tokenizer(EMBEDDED_GGUF)


@pytest.mark.parametrize("fmt", ["model", "llama2-chat"])
def test_observation_and_prompt_tokens_get_no_loss(tokenizer: Any, fmt: str) -> None:
    from agentinstruct.training.chat import chat_format
    from agentinstruct.training.preference import PairEncoder, check_pair_masks

    row = _pair_row()
    encoder = PairEncoder(tokenizer, chat_format(fmt, tokenizer), max_length=4096)
    (enc,) = encoder.encode([row])
    check_pair_masks([enc], encoder.stats)
    for side, replies in (("chosen", ["Act: bash ls /srv | wc -l", "Act: answer(42)"]),
                          ("rejected", ["Act: bash ls /tmp", "Act: answer(0)"])):
        ids, mask = enc[f"{side}_ids"], enc[f"{side}_mask"]
        assert len(ids) == len(mask)
        trained = tokenizer.decode([t for t, m in zip(ids, mask) if m])
        untrained = tokenizer.decode([t for t, m in zip(ids, mask) if not m])
        assert all(r in trained for r in replies), trained
        assert "OBSERVATION-MARKER" not in trained and "OBSERVATION-MARKER" in untrained
        assert "Now, a new problem" not in tokenizer.decode(ids)  # the prompt is not part of the completion
    assert "Now, a new problem: count files" in tokenizer.decode(enc["prompt_ids"])
    stats = encoder.stats.as_dict()
    assert stats["kept"] == 1 and stats["masked_completion_tokens"] > 0
    assert stats["trained_tokens"] == sum(enc["chosen_mask"]) + sum(enc["rejected_mask"])


def test_a_pair_longer_than_max_length_is_dropped_and_counted(tokenizer: Any) -> None:
    from agentinstruct.training.chat import chat_format
    from agentinstruct.training.preference import PairEncoder

    encoder = PairEncoder(tokenizer, chat_format("model", tokenizer), max_length=40)
    assert encoder.encode([_pair_row()]) == []
    assert encoder.stats.as_dict()["dropped"] == {"pairs_dropped_too_long": 1}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, tokenizer: Any) -> dict[str, Path]:
    """A 2-layer Llama with the embedded tokenizer (and a second one, differently initialised, as a reference)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tmp = tmp_path_factory.mktemp("tiny-dpo")
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    for name, seed in (("model", 0), ("ref", 1)):
        torch.manual_seed(seed)
        LlamaForCausalLM(config).save_pretrained(tmp / name)
        tokenizer.save_pretrained(tmp / name)
    return {"model": tmp / "model", "ref": tmp / "ref"}


def test_the_dpo_loss_sums_log_probs_of_trained_tokens_only(tiny: dict[str, Path], tokenizer: Any,
                                                            tmp_path: Path) -> None:
    import datasets
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig

    from agentinstruct.training.chat import chat_format
    from agentinstruct.training.preference import COLUMNS, PairEncoder, per_turn_collator, per_turn_trainer_class

    (enc,) = PairEncoder(tokenizer, chat_format("model", tokenizer), max_length=4096).encode([_pair_row()])
    collator = per_turn_collator(pad_token_id=tokenizer.eos_token_id)
    model = AutoModelForCausalLM.from_pretrained(tiny["model"])
    ref = AutoModelForCausalLM.from_pretrained(tiny["ref"])
    args = DPOConfig(output_dir=str(tmp_path / "out"), use_cpu=True, report_to="none", beta=0.1, bf16=False,
                     max_length=4096)
    trainer = per_turn_trainer_class()(model=model, ref_model=ref, args=args, data_collator=collator,
                                       train_dataset=datasets.Dataset.from_dict({c: [enc[c]] for c in COLUMNS}),
                                       processing_class=tokenizer)
    batch = collator([enc])
    # every observation token of the completions has completion_mask 0
    ids, mask = batch["input_ids"], batch["completion_mask"]
    for i in range(2):
        observed = tokenizer.decode([t for t, m in zip(ids[i].tolist(), mask[i].tolist()) if m])
        assert "OBSERVATION-MARKER" not in observed and "Act: answer" in observed
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, dict(batch)).item()

    def logps(m: Any, completion_mask: Any) -> Any:
        logits = m(input_ids=ids, attention_mask=batch["attention_mask"]).logits[:, :-1].float()
        per_token = torch.gather(F.log_softmax(logits, -1), 2, ids[:, 1:, None]).squeeze(-1)
        return (per_token * completion_mask[:, 1:]).sum(-1)

    def dpo_loss(completion_mask: Any) -> float:
        with torch.no_grad():
            policy, reference = logps(model, completion_mask), logps(ref, completion_mask)
        ratios = policy - reference
        return float(-F.logsigmoid(0.1 * (ratios[0] - ratios[1])))

    assert loss == pytest.approx(dpo_loss(mask), rel=1e-4, abs=1e-6)
    # what plain TRL computes (every completion token, observations included) is a different number
    everything = torch.cat([torch.zeros(2, len(enc["prompt_ids"]), dtype=torch.long),
                            (batch["attention_mask"][:, len(enc["prompt_ids"]):])], dim=1)
    assert abs(dpo_loss(everything) - loss) > 1e-5


def test_every_field_of_the_dpo_recipe_is_applied_and_dpo_only_fields_are_refused(tmp_path: Path, monkeypatch,
                                                                                  capsys) -> None:
    import yaml
    from trl import DPOConfig, ModelConfig

    from agentinstruct.training import dpo, fields
    from agentinstruct.training.fields import field_status

    keys = yaml.safe_load(DPO_RECIPE.read_text())
    statuses = {k: field_status(k, (dpo.PairArguments, DPOConfig, ModelConfig)) for k in keys}
    assert all(s.startswith("applied: ") for s in statuses.values()), statuses
    _, training_args, model_args = dpo.make_parser().parse_args_and_config(["--config", str(DPO_RECIPE)])
    monkeypatch.setattr(fields, "_installed", lambda module: True)
    assert fields.review(keys, training_args, model_args, (dpo.PairArguments, DPOConfig, ModelConfig), cuda=True,
                         refused=dpo.REFUSED) == []
    monkeypatch.undo()
    code = dpo.main(["--config", str(DPO_RECIPE), "--dataset_name", str(tmp_path / "nowhere"), "--output_dir",
                     str(tmp_path / "out"), "--padding_free", "true", "--lora_r", "8"])
    err = capsys.readouterr().err
    assert code == 1 and "refusing to train: recipe fields that cannot take effect here" in err
    assert "padding_free: TRL's DPOTrainer disables" in err and "lora_r: a LoRA setting has no effect" in err
    code = dpo.main(["--config", str(DPO_RECIPE), "--dataset_name", str(tmp_path / "nowhere"), "--output_dir",
                     str(tmp_path / "out")])
    assert code == 2 and "nowhere" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_few_dpo_steps_run_on_the_cpu_recipe_and_save_a_card(tiny: dict[str, Path],
                                                               tmp_path: Path, capsys) -> None:
    from agentinstruct.training import dpo

    records = [rec(i, f"t{i // 2}", task_conv(f"task {i // 2}", "Act: bash ls", f"out {i}", f"Act: answer({i})"),
                   i % 2 == 0) for i in range(6)]
    write_splits(tmp_path / "runs", {"os": records})
    pairs_from_dir(tmp_path / "runs", tmp_path / "pairs")
    out = tmp_path / "dpo"
    code = dpo.main(["--config", str(DPO_RECIPE), "--model_name_or_path", str(tiny["model"]), "--dataset_name",
                     str(tmp_path / "pairs"), "--output_dir", str(out), "--max_steps", "3", "--learning_rate", "1e-3"])
    printed = capsys.readouterr()
    assert code == 0, printed.err[-3000:]
    assert "tokenized 3 of 3 pairs" in printed.out
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["steps"] == 3 and len(summary["losses"]) == 3 and summary["beta"] == 0.1
    assert summary["encode"]["masked_completion_tokens"] > 0 and len(summary["reward_accuracies"]) == 3
    for name in ("README.md", "recipe.yaml", "pairs.json", "model.safetensors", "training_curve.png"):
        assert (out / name).exists(), name
    card = (out / "README.md").read_text()
    assert "- dpo" in card and "3 pairs, 3 of 3 tasks" in card and "--max_steps 3" in card
