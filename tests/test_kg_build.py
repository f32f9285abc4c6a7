"""``agentinstruct build kg`` / ``eval kg`` end to end: the engine, the kg builder, the embedded store or a SPARQL
endpoint, and a scripted model behind a real OpenAI-compatible HTTP server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from openai_stub import OpenAIStub
from sparql_server import oxigraph_program, oxigraph_server

from agentinstruct.builders.base import Action, Task
from agentinstruct.builders.kg.builder import KgBuilder
from agentinstruct.builders.kg.store import OxigraphBackend
from agentinstruct.builders.kg.tasks import EMBEDDED_QUESTIONS
from agentinstruct.cli import main
from agentinstruct.datasetdir.layout import iter_records
from agentinstruct.records.validation import validate_paths

BUILDER = KgBuilder()
TASKS = BUILDER.load_tasks("embedded")
PICKED = TASKS[::5]  # 20 questions, every pattern
BY_QUESTION = {t.instruction: (i, t) for i, t in enumerate(PICKED)}
QUESTION = "A new question: "


def script(i: int, task: Task) -> list[str]:
    """The scripted model's replies for the i-th picked task: by i % 4, the reference solution; two calls with bad
    arguments first; a wrong final answer (#0); a reply with no action first."""
    replies = [BUILDER.render(BUILDER.template_thought(task, a), a) for a in BUILDER.reference_actions(task)]
    if i % 4 == 1:
        return ["Thought: I guess.\nAction: get_neighbors(#7, film.film.genre)",
                "Thought: Maybe this.\nAction: get_relations(Nobody In Particular)"] + replies
    if i % 4 == 2:
        return replies[:-1] + ["Thought: The first variable looks right.\nFinal Answer: #0"]
    if i % 4 == 3:
        return ["Let me think about the question for a while."] + replies
    return replies


def respond(messages: list[dict]) -> str:
    at = max(n for n, m in enumerate(messages) if m["role"] == "user" and m["content"].startswith(QUESTION))
    i, task = BY_QUESTION[messages[at]["content"].splitlines()[0][len(QUESTION):]]
    replies = script(i, task)
    step = sum(1 for m in messages[at:] if m["role"] == "assistant")
    return replies[min(step, len(replies) - 1)]


def expected_reward(i: int, task: Task) -> float:
    """The reward of the script played straight on the environment, without the engine."""
    actions = [BUILDER.parse(r) for r in script(i, task)]
    with BUILDER.open_env(task) as env:
        for action in actions:
            if isinstance(action, Action):
                env.step(action)
        return env.score(actions[-1]).reward


@pytest.fixture
def picked_file(tmp_path) -> Path:
    items = {q["qid"]: q for q in json.loads(EMBEDDED_QUESTIONS.read_text(encoding="utf-8"))}
    path = tmp_path / "picked.json"
    path.write_text(json.dumps([items[t.task_id] for t in PICKED]), encoding="utf-8")
    return path


def run(args: list[str], capsys) -> tuple[int, str]:
    rc = main(args)
    return rc, capsys.readouterr().out


def test_reference_build_on_the_embedded_graph_keeps_every_question(tmp_path, capsys):
    rc, out = run(["build", "kg", "--tasks", "embedded", "--policy", "reference", "--out", str(tmp_path)], capsys)
    assert rc == 0 and "96 scored, 96 kept, 0 failed, 0 errored" in out
    assert validate_paths([tmp_path]).ok
    records = list(iter_records(tmp_path, "default", "kg"))
    assert len(records) == 96 and {r["instruction_source"] for r in records} == {"task_derivation"}
    assert {r["env"]["backend"] for r in records} == {"oxigraph"} and {r["reward"] for r in records} == {1.0}
    record = records[0]
    assert record["reward_details"]["metric"] == "f1"
    assert {c["name"] for c in record["reward_details"]["components"]} == {"f1", "precision", "recall", "exact_match"}
    conv = record["conversations"]
    prompt = BUILDER.prompt(next(t for t in TASKS if t.task_id == record["task_id"]))
    assert conv[: len(prompt)] == prompt
    assert conv[-1]["from"] == "gpt" and conv[-1]["loss"] is True and "\nFinal Answer: #" in conv[-1]["value"]
    assert all(t["value"].startswith("Observation: ") for t in conv[len(prompt):] if t["from"] == "human")


def test_a_scripted_model_with_bad_calls_malformed_replies_and_wrong_answers(picked_file, tmp_path, capsys):
    with OpenAIStub(respond) as stub:
        rc, out = run(["build", "kg", "--tasks", str(picked_file), "--model", "stub", "--base-url", stub.url,
                       "--concurrency", "4", "--out", str(tmp_path)], capsys)
    assert rc == 0 and "20 scored" in out and "0 errored" in out
    records = {r["task_id"]: r for r in iter_records(tmp_path, "all", "kg")}
    assert len(records) == 20
    for i, task in enumerate(PICKED):
        record = records[task.task_id]
        details = record["reward_details"]
        assert record["reward"] == pytest.approx(expected_reward(i, task)), task.task_id
        assert details["format_errors"] == (1 if i % 4 == 3 else 0)
        assert record["success"] == (record["reward"] == 1.0)
        observations = [t["value"] for t in record["conversations"] if t["from"] == "human"]
        if i % 4 == 1:
            assert any("get_neighbors(#7, film.film.genre) cannot be executed" in o for o in observations)
            assert any("'Nobody In Particular' is neither a variable" in o for o in observations)
            assert record["reward"] == 1.0
        if i % 4 == 3:
            assert any(o.startswith("No action found.") for o in observations)
    wrong = [records[t.task_id]["reward"] for i, t in enumerate(PICKED) if i % 4 == 2]
    assert min(wrong) < 1.0  # answering #0 instead of the last variable is wrong where #0 is not the answer
    assert sum(r["filter"]["kept"] for r in records.values()) == sum(r["reward"] == 1.0 for r in records.values())


def test_eval_prints_mean_f1(picked_file, capsys):
    with OpenAIStub(respond) as stub:
        rc, out = run(["eval", "kg", "--tasks", str(picked_file), "--model", "stub", "--base-url", stub.url], capsys)
    mean = sum(expected_reward(i, t) for i, t in enumerate(PICKED)) / len(PICKED)
    assert rc == 0 and f"20/20 tasks scored: mean f1 {mean:.4f}" in out


@pytest.mark.skipif(oxigraph_program() is None, reason="oxigraph server not installed (test extra)")
def test_reference_build_against_a_sparql_endpoint(picked_file, tmp_path, capsys):
    dump = tmp_path / "graph.nt"
    OxigraphBackend.embedded().dump_ntriples(dump)
    with oxigraph_server([dump]) as url:
        rc, out = run(["build", "kg", "--tasks", str(picked_file), "--policy", "reference", "--sparql-url", url,
                       "--out", str(tmp_path / "out")], capsys)
    assert rc == 0 and "20 scored, 20 kept" in out
    assert {r["env"]["backend"] for r in iter_records(tmp_path / "out", "default", "kg")} == {"sparql-http"}


def test_graph_files_replace_the_embedded_graph_and_bad_options_are_refused(tmp_path, capsys):
    ttl = tmp_path / "tiny.ttl"
    ttl.write_text("this is not turtle")
    rc = main(["build", "kg", "--tasks", "embedded", "--policy", "reference", "--graph", str(ttl),
               "--out", str(tmp_path / "o")])
    assert rc != 0 and "tiny.ttl: cannot load as RDF" in capsys.readouterr().err
    rc = main(["build", "kg", "--tasks", "embedded", "--policy", "reference", "--graph", str(ttl),
               "--sparql-url", "http://127.0.0.1:1/sparql", "--out", str(tmp_path / "o")])
    assert rc != 0 and "exclude each other" in capsys.readouterr().err
