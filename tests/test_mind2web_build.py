"""The mind2web split end to end: reference builds (fixture and embedded recordings), the model path through a
scripted OpenAI-compatible server, eval's step metrics, and the refusal of evaluation sets."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from openai_stub import OpenAIStub

from agentinstruct.cli import main
from agentinstruct.datasetdir.layout import iter_records
from agentinstruct.records.validation import validate_paths

FIXTURE = Path(__file__).parent / "fixtures" / "mind2web"
TRAIN = FIXTURE / "train_0.json"
_REPLY = re.compile(r"Thought: .+\nAnswer: [A-F]\.(\nAction: (CLICK|TYPE|SELECT)(\nValue: .+)?)?", re.DOTALL)


def records(out: Path, config: str = "all") -> list[dict]:
    return sorted(iter_records(out, config, "mind2web"), key=lambda r: int(r["id"].split("_")[1]))


def components(record: dict) -> dict[str, float]:
    return {c["name"]: c["value"] for c in record["reward_details"]["components"]}


@pytest.mark.slow  # a whole build, card and plots included: 20-30 s on 2 shared cores
def test_reference_build_gives_one_right_round_per_record_in_agentinstructs_shape(tmp_path, capsys):
    rc = main(["build", "mind2web", "--tasks", str(TRAIN), "--policy", "reference", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0 and validate_paths([tmp_path]).ok, out
    rows = records(tmp_path, "default")
    assert len(rows) == len(records(tmp_path, "all")) == 18  # nine steps of two rounds each, all right
    for row in rows:
        human, gpt = row["conversations"]
        assert human["from"] == "human" and human["loss"] is None and human["value"].startswith("'''\n<html>")
        assert "\nA. None of the above\nB. " in human["value"]
        assert gpt["from"] == "gpt" and gpt["loss"] is True and _REPLY.fullmatch(gpt["value"]), gpt["value"]
        assert row["reward"] == 1.0 and row["reward_details"]["metric"] == "round_correct"
        assert components(row)["step_success"] == 1.0 and row["instruction_source"] == "task_derivation"
    answers = [r["conversations"][1]["value"].split("\nAnswer: ")[1][0] for r in rows]
    assert answers.count("A") == 9  # each step: the positive's round and one round without it


@pytest.mark.slow  # a whole build, card and plots included: 20-30 s on 2 shared cores
def test_the_embedded_recordings_build_and_their_evaluation_part_is_refused(tmp_path, capsys):
    rc = main(["build", "mind2web", "--policy", "reference", "--limit", "12", "--out", str(tmp_path)])
    assert rc == 0 and validate_paths([tmp_path]).ok
    rows = records(tmp_path)
    assert rows and {r["reward"] for r in rows} == {1.0}
    assert {r["task_id"].split("/")[0] for r in rows}
    rc = main(["build", "mind2web", "--tasks", "embedded-eval", "--policy", "reference", "--out",
               str(tmp_path / "eval")])
    assert rc != 0 and "--eval-tasks" in capsys.readouterr().err


def _always_none(messages: list[dict]) -> str:
    return "Thought: I do not see the element I need.\nAnswer: A."


def _first_choice(messages: list[dict]) -> str:
    return "Thought: The first choice looks right.\nAnswer: B.\nAction: CLICK"


@pytest.mark.parametrize("respond", [_always_none, _first_choice])
def test_eval_reports_agentbenchs_step_metrics(respond, tmp_path, capsys):
    with OpenAIStub(respond) as stub:
        rc = main(["eval", "mind2web", "--tasks", str(TRAIN), "--model", "stub", "--base-url", stub.url,
                   "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0, out
    results = [json.loads(line) for line in (tmp_path / "eval-mind2web.jsonl").read_text().splitlines()]
    steps: dict[str, dict[str, float]] = {}
    for r in results:
        steps[r["task_id"]] = {c["name"]: c["value"] for c in r["components"]}
    assert len(steps) == 9
    accuracy = sum(s["element_accuracy"] for s in steps.values()) / 9
    if respond is _always_none:
        assert accuracy == 0.0 and "element_accuracy 0.0000" in out
    else:
        success = sum(s["step_success"] for s in steps.values()) / 9
        assert f"element_accuracy {accuracy:.4f}" in out and f"step_success {success:.4f}" in out
