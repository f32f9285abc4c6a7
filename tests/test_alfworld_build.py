"""``agentinstruct build alfworld`` end to end: the engine, the alfworld builder on the real TextWorld engine, a
folder in ALFWorld's layout, and a scripted model behind a real OpenAI-compatible HTTP server."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest
from kill_harness import kill_at, run_cli
from openai_stub import OpenAIStub

from agentinstruct.builders.alfworld.builder import AlfworldBuilder
from agentinstruct.builders.alfworld.games import TASK_TYPES, embedded_games
from agentinstruct.builders.alfworld.generate import write_tree
from agentinstruct.builders.alfworld.prompt import INSTRUCTIONS
from agentinstruct.cli import main
from agentinstruct.collection.journal import journal_path
from agentinstruct.datasetdir.layout import iter_records
from agentinstruct.records.validation import validate_paths

SAMPLE = Path(__file__).resolve().parents[1] / "agentinstruct" / "records" / "samples" / "thudm_sample.jsonl"
ONE_OF_EACH = [next(g for g in embedded_games("train") if g.task_type == t) for t in TASK_TYPES]
BUILDER = AlfworldBuilder()


@pytest.fixture(scope="module")
def games(tmp_path_factory) -> Path:
    """One game of each type in ALFWorld's layout, as a user with the real games has them."""
    root = tmp_path_factory.mktemp("alfworld")
    write_tree(ONE_OF_EACH, root)
    return root / "json_2.1.1" / "train"


def run(args: list[str], capsys) -> tuple[int, str]:
    rc = main(args)
    return rc, capsys.readouterr().out


def thudm_alfworld_rows() -> list[dict]:
    return [r for r in map(json.loads, SAMPLE.read_text().splitlines()) if r["id"].startswith("alfworld_")]


def test_a_reference_build_of_a_game_folder_wins_every_game_in_thudms_shape(games, tmp_path, capsys):
    rc, out = run(["build", "alfworld", "--tasks", str(games), "--policy", "reference", "--out", str(tmp_path)],
                  capsys)
    assert rc == 0 and "6 scored, 6 kept, 0 failed, 0 errored" in out
    assert validate_paths([tmp_path]).ok
    records = list(iter_records(tmp_path, "default", "alfworld"))
    assert {r["reward"] for r in records} == {1.0} and {r["instruction_source"] for r in records} == {"task_derivation"}
    assert {r["env"]["version"].split(", grammar ")[1] for r in records} == {"agentbench"}
    assert {r["env"]["backend"] for r in records} == {"textworld-pddl"}
    record = records[0]
    parts = {c["name"]: c["value"] for c in record["reward_details"]["components"]}
    assert record["reward_details"]["metric"] == "success" and parts["goal_conditions"] == 1.0
    assert parts["invalid_actions"] == parts["mapped_actions"] == 0.0
    # THUDM's shape: instructions, "OK", (the one-shot), the task turn, THOUGHT/ACTION turns and observations.
    for row in [record] + thudm_alfworld_rows():
        conv = row["conversations"]
        assert conv[0]["from"] == "human" and conv[1] == {"from": "gpt", "value": conv[1]["value"], "loss": False}
        task_at = max(i for i, t in enumerate(conv) if t["value"].startswith("Here is your task. You are in the "
                                                                            "middle of a room."))
        assert "\nYour task is to: " in conv[task_at]["value"]
        trained = conv[task_at + 1:]
        assert all(t["value"].startswith("THOUGHT: ") and "\nACTION: " in t["value"] and t["loss"] is True
                   for t in trained if t["from"] == "gpt")
        assert all(t["loss"] is None and not t["value"].startswith("You arrive at loc")
                   for t in trained if t["from"] == "human")
        assert all(t["loss"] is False for t in conv[:task_at] if t["from"] == "gpt")
    assert record["conversations"][0]["value"] == INSTRUCTIONS
    loaded = datasets.load_dataset(str(tmp_path), split="alfworld")
    assert len(loaded) == 6 and loaded[0]["conversations"][0]["value"] == INSTRUCTIONS


EMBEDDED_TASKS = {t.task_id: t for t in BUILDER.load_tasks("embedded")}


def _script(messages: list[dict]) -> str:
    """A scripted agent, by the game's goal: the expert's commands after a reply without an ACTION line, an invalid
    command and a near miss; on the pick-two game it only looks around."""
    at = max(i for i, m in enumerate(messages) if m["role"] == "user" and m["content"].startswith("Here is your task"))
    goal = messages[at]["content"].rsplit("Your task is to: ", 1)[1].split("\n")[0]
    game = next(g for g in ONE_OF_EACH if f"Your task is to: {goal}" in g.data["grammar"])
    step = sum(1 for m in messages[at:] if m["role"] == "assistant")
    if game.task_type == "pick_two_obj_and_place":
        return "THOUGHT: I look around.\nACTION: look"
    commands = [a.argument for a in BUILDER.reference_actions(EMBEDDED_TASKS[game.path])]
    near = commands[0].rsplit(" ", 1)[0]  # "go to fridge" maps onto "go to fridge 1"
    replies = ["I should look for it.", "THOUGHT: magic.\nACTION: xyzzy plugh", f"THOUGHT: go.\nACTION: {near}"]
    replies += [f"THOUGHT: next.\nACTION: {c}" for c in commands[1:]]
    return replies[min(step, len(replies) - 1)]


@pytest.mark.slow  # 35 turns of the looker plus five games: about 100 s on two cores
def test_a_scripted_model_with_near_misses_invalid_actions_and_a_looker(games, tmp_path, capsys):
    with OpenAIStub(_script) as stub:
        rc, out = run(["build", "alfworld", "--tasks", str(games), "--model", "stub", "--base-url", stub.url,
                       "--out", str(tmp_path)], capsys)
    assert rc == 0 and "6 scored, 5 kept, 1 failed, 0 errored" in out
    records = {r["task_id"].split("/")[2].split("-")[0]: r for r in iter_records(tmp_path, "all", "alfworld")}
    looker = records["pick_two_obj_and_place"]
    assert looker["reward"] == 0.0 and looker["reward_details"]["termination"] == "max_turns"
    assert sum(t["from"] == "gpt" for t in looker["conversations"]) == sum(
        t["from"] == "gpt" for t in BUILDER.prompt(EMBEDDED_TASKS[ONE_OF_EACH[-1].path])) + 35
    solved = records["pick_and_place_simple"]
    parts = {c["name"]: c["value"] for c in solved["reward_details"]["components"]}
    assert solved["reward"] == 1.0 and parts["mapped_actions"] == 1.0 and parts["invalid_actions"] == 1.0
    assert solved["reward_details"]["format_errors"] == 1
    observations = [t["value"] for t in solved["conversations"] if t["from"] == "human"]
    assert "Nothing happens." in observations


def test_the_04_grammar_is_an_option_recorded_in_env_version(games, tmp_path, capsys):
    rc, out = run(["build", "alfworld", "--tasks", str(games), "--policy", "reference", "--grammar", "alfworld-0.4",
                   "--limit", "2", "--out", str(tmp_path)], capsys)
    assert rc == 0 and "2 scored, 2 kept" in out
    records = list(iter_records(tmp_path, "default", "alfworld"))
    assert {r["env"]["version"].split(", grammar ")[1] for r in records} == {"alfworld-0.4"}
    text = "\n".join(t["value"] for r in records for t in r["conversations"])
    actions = [line for line in text.splitlines() if line.startswith("ACTION: ")]
    assert any(a.startswith("ACTION: move ") for a in actions) and not any(" in/on " in a for a in actions)


def test_evaluation_games_are_refused_for_training_data(capsys):
    rc = main(["build", "alfworld", "--tasks", "embedded-eval", "--policy", "reference", "--out", "/nonexistent"])
    assert rc != 0 and "evaluation games" in capsys.readouterr().err


def comparable(out: Path) -> list[dict]:
    return sorted(({k: v for k, v in r.items() if k != "created_at"} for r in iter_records(out, "all", "alfworld")),
                  key=lambda r: int(r["id"].split("_")[1]))


@pytest.mark.slow
def test_kill_9_mid_build_then_resume_gives_the_uninterrupted_record_set(games, tmp_path):
    def args(out: Path) -> list[str]:
        return ["build", "alfworld", "--tasks", str(games), "--policy", "reference", "--concurrency", "2",
                "--out", str(out)]

    clean, killed = tmp_path / "clean", tmp_path / "killed"
    outputs = [run_cli(args(clean)).communicate(timeout=600)]
    kills, crashed = kill_at(args(killed), killed, "alfworld", (1, 3))
    outputs += crashed
    assert kills == 2, outputs
    final = run_cli(args(killed))
    outputs.append(final.communicate(timeout=600))
    assert final.returncode == 0, outputs[-1]
    assert comparable(killed) == comparable(clean)
    entries = [json.loads(x) for x in journal_path(killed, "alfworld").read_text().splitlines()]
    assert sorted(e["id"] for e in entries if e["kind"] == "finished") == \
        sorted(f"{r['task_id']}#0" for r in comparable(killed))  # journal keys: task#attempt
