"""``agentinstruct evaluate``: held-in splits on scripted models of known scores, results files, intervals, the
table, ``--compare``, training-data overlap, errored episodes, the model card's ``model-index`` on a local Hub,
and a checkpoint served by llama.cpp (exported to GGUF) or by ``transformers serve``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from huggingface_hub import HfApi, ModelCard, hf_hub_download
from openai_stub import OpenAIStub

import counter_builder
from agentinstruct.builders.base import Action, FormatError, Task
from agentinstruct.builders.db.builder import DbBuilder
from agentinstruct.builders.kg.builder import KgBuilder
from agentinstruct.cli import main
from agentinstruct.collection.agent import AgentClient
from agentinstruct.evaluation.heldin import SPECS
from agentinstruct.evaluation.results import (EvalRun, read_results, render_table, rate_result, wilson_interval,
                                              write_results)
from agentinstruct.hub import publish_model

COUNTER = ["--splits", "os", "--builder", "os=counter_builder:CounterBuilder"]


def evaluate(args: list[str], capsys) -> tuple[int, str, str]:
    rc = main(["evaluate", *args])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def counter_targets(n: int) -> list[int]:
    return [t.payload["target"] for t in counter_builder.CounterBuilder().load_tasks(f"gen:{n}")]


# ----------------------------------------------------------------- scripted models of known scores


def test_a_counter_model_of_known_success_rate_writes_results_with_a_wilson_interval(tmp_path, capsys):
    with OpenAIStub(counter_builder.respond) as stub:
        rc, out, _ = evaluate(["--model", "stub", "--base-url", stub.url, "--out", str(tmp_path), *COUNTER,
                               "--tasks", "os=gen:30"], capsys)
    assert rc == 0, out
    targets = counter_targets(30)
    solved = sum(1 for t in targets if t % 3)  # the scripted model answers multiples of 3 wrongly
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["format"] == "agentinstruct-evaluation/1" and data["model"] == "stub" and data["revision"] is None
    assert data["settings"]["served_by"] == "external" and data["created_at"]
    [result] = data["results"]
    assert (result["benchmark"], result["kind"], result["metric"], result["n"], result["errors"]) == \
        ("os", "held-in", "success", 30, 0)
    assert result["value"] == pytest.approx(solved / 30)
    assert (result["ci_low"], result["ci_high"]) == pytest.approx(wilson_interval(solved, 30))
    assert result["ci_method"] == "wilson-95"
    assert result["settings"]["tasks"] == "gen:30" and result["settings"]["builder"].endswith(":CounterBuilder")
    assert result["settings"]["sampling"]["temperature"] == 0.0  # evaluation is greedy by default
    assert result["details"]["format_error_rate"] == pytest.approx(sum(1 for t in targets if t % 5 == 0) / 30)
    assert result["details"]["scored"] == 30
    assert len((tmp_path / "eval-os.jsonl").read_text().splitlines()) == 30
    table = (tmp_path / "results.md").read_text()
    assert f"| stub | {solved / 30 * 100:.1f} [" in table and "OS: success, n = 30, wilson-95 interval" in table
    assert (tmp_path / "results.png").stat().st_size > 1000
    assert f"os: success {solved / 30 * 100:.1f} [" in out


def test_max_turns_cuts_every_episode_at_that_many_agent_turns_and_a_resume_under_another_is_refused(tmp_path,
                                                                                                     capsys):
    out = tmp_path / "capped"
    base = ["--model", "stub", *COUNTER, "--tasks", "os=gen:30"]
    targets = counter_targets(30)
    with OpenAIStub(counter_builder.respond) as stub:
        # a multiple of 5 takes three turns (a malformed reply first): at two it runs out, unanswered
        rc, _, err = evaluate([*base, "--base-url", stub.url, "--out", str(out), "--max-turns", "2"], capsys)
        assert rc == 0, err
        refused, _, err = evaluate([*base, "--base-url", stub.url, "--out", str(out), "--max-turns", "3"], capsys)
        above, _, _ = evaluate([*base, "--base-url", stub.url, "--out", str(tmp_path / "above"), "--max-turns", "9"],
                               capsys)
    [capped] = read_results(out).results
    assert capped.settings["max_turns"] == 2
    assert capped.value == pytest.approx(sum(1 for t in targets if t % 3 and t % 5) / 30)
    assert capped.details["turn_limit_rate"] == pytest.approx(sum(1 for t in targets if t % 5 == 0) / 30)
    rows = [json.loads(line) for line in (out / "eval-os.jsonl").read_text().splitlines()]
    assert max(r["num_turns"] for r in rows) == 2 and {r["termination"] for r in rows} == {"answered", "max_turns"}
    assert refused != 0 and "its episodes ran under max_turns 2, not 3" in err
    [uncapped] = read_results(tmp_path / "above").results
    assert above == 0 and uncapped.settings["max_turns"] == counter_builder.CounterBuilder.max_turns == 4
    assert uncapped.value == pytest.approx(sum(1 for t in targets if t % 3) / 30)


def _task_of(tasks: list[Task], messages: list[dict]) -> tuple[Task, int]:
    """The task posed in the conversation and how many agent turns came after it."""
    at = max(i for i, m in enumerate(messages) if m["role"] == "user" and any(t.instruction in m["content"]
                                                                              for t in tasks))
    task = next(t for t in tasks if t.instruction in messages[at]["content"])
    return task, sum(1 for m in messages[at:] if m["role"] == "assistant")


def kg_script(builder: KgBuilder, i: int, task: Task) -> list[str]:
    """Even tasks: the reference solution; odd ones: a final answer with no variable behind it, every turn."""
    if i % 2:
        return ["Thought: I will answer at once.\nFinal Answer: #0"]
    return [builder.render(builder.template_thought(task, a), a) for a in builder.reference_actions(task)]


def db_script(builder: DbBuilder, i: int, task: Task) -> list[str]:
    """Tasks 0, 3, 6, ...: questions answered with their label, changes made with their reference statement; the
    rest answer an empty list at once."""
    if i % 3:
        return ["Thought: Nothing to do.\nAction: Answer\nFinal Answer: []"]
    if task.payload["kind"] == "modification":
        return [builder.render(builder.template_thought(task, a), a) for a in builder.reference_actions(task)]
    return [f"Thought: The table says so.\nAction: Answer\nFinal Answer: {json.dumps(task.payload['label'])}"]


def played(builder, task: Task, replies: list[str], metric: str) -> float:
    """The score of the replies played straight on the environment, as the engine plays them."""
    final = None
    with builder.open_env(task) as env:
        env.reset()
        for turn in range(builder.max_turns):
            action = builder.parse(replies[min(turn, len(replies) - 1)])
            if isinstance(action, FormatError):
                continue
            if builder.is_final(action):
                final = action
                break
            if env.step(action).done:
                final = action
                break
        score = env.score(final)
    return score.components[metric] if metric in score.components else score.reward


def test_kg_and_db_models_with_scripted_answers_score_what_their_episodes_score(tmp_path, capsys):
    kg, db = KgBuilder(eval_tasks=True), DbBuilder(eval_tasks=True)
    kg_tasks, db_tasks = kg.load_tasks("embedded-eval"), db.load_tasks("embedded-eval")[:21]
    scripts = {t.task_id: kg_script(kg, i, t) for i, t in enumerate(kg_tasks)}
    scripts |= {t.task_id: db_script(db, i, t) for i, t in enumerate(db_tasks)}

    def respond(messages: list[dict]) -> str:
        task, step = _task_of(kg_tasks + db_tasks, messages)
        replies = scripts[task.task_id]
        return replies[min(step, len(replies) - 1)]

    with OpenAIStub(respond) as stub:
        rc, out, _ = evaluate(["--model", "stub", "--base-url", stub.url, "--out", str(tmp_path), "--splits", "kg",
                               "db", "--limit", "21"], capsys)
    assert rc == 0, out
    run = read_results(tmp_path)
    kg_result, db_result = run.get("held-in", "kg"), run.get("held-in", "db")
    kg_expected = [played(kg, t, scripts[t.task_id], "f1") for t in kg_tasks[:21]]
    db_expected = [played(db, t, scripts[t.task_id], "success") for t in db_tasks]
    assert (kg_result.metric, kg_result.n, kg_result.ci_method) == ("f1", 21, "bootstrap-percentile-95")
    assert kg_result.value == pytest.approx(sum(kg_expected) / 21) and kg_result.value == pytest.approx(11 / 21)
    assert kg_result.ci_low < kg_result.value < kg_result.ci_high
    assert kg_result.details["repeated_action_rate"] == pytest.approx(10 / 21)  # the odd ones repeat their answer
    assert kg_result.details["turn_limit_rate"] == pytest.approx(10 / 21)
    assert (db_result.metric, db_result.n, db_result.ci_method) == ("success", 21, "wilson-95")
    assert db_result.value == pytest.approx(sum(db_expected) / 21) and 0 < db_result.value < 1
    assert "| model | KG | DB |" in render_table([run])


def test_every_split_has_an_evaluation_part_of_at_least_20_tasks_apart_from_its_training_tasks():
    from agentinstruct.builders import BUILDERS
    from agentinstruct.evaluation.heldin import make_builder

    assert set(SPECS) == set(BUILDERS)
    for split in ("kg", "db", "os"):
        builder = make_builder(split)
        held_out = builder.load_tasks(SPECS[split].source)
        train = builder.load_tasks("embedded")
        assert len(held_out) >= 20, split
        assert not {t.instruction for t in held_out} & {t.instruction for t in train}, split
        assert not {t.task_id for t in held_out} & {t.task_id for t in train}, split


@pytest.mark.parametrize("split", ["os", "db", "kg"])
def test_a_build_refuses_the_evaluation_part_unless_given_eval_tasks(split, tmp_path, capsys, request):
    extra = ["--backend", request.getfixturevalue("sandbox_backend")] if split == "os" else []
    args = ["build", split, "--tasks", "embedded-eval", "--policy", "reference", *extra]
    refused = tmp_path / "refused"
    assert main([*args, "--out", str(refused)]) != 0
    err = capsys.readouterr().err
    assert f"{split} tasks embedded-eval: " in err and "evaluation part; training data is not built from them" in err
    assert "(give --eval-tasks to run them anyway)" in err and not refused.exists()
    built = tmp_path / "built"
    assert main([*args, "--eval-tasks", "--limit", "1", "--out", str(built)]) == 0
    assert f"{split} (main): 1 episodes" in capsys.readouterr().out
    header = json.loads((built / ".journal" / split / "main.jsonl").read_text().splitlines()[0])
    assert header["params"]["options"]["eval_tasks"] is True


# ----------------------------------------------------------------- errors, overlap


def test_errored_episodes_are_retried_and_what_still_errors_counts_as_a_failure(tmp_path, capsys):
    base = ["--model", "stub", "--max-retries", "0", "--concurrency", "1", *COUNTER, "--tasks", "os=gen:10"]
    solved = sum(1 for t in counter_targets(10) if t % 3)
    with OpenAIStub(counter_builder.respond) as stub:
        stub.fail_next("500", "500", "500")
        rc, out, err = evaluate([*base, "--base-url", stub.url, "--out", str(tmp_path / "a"), "--retries", "1"],
                                capsys)
        assert rc == 0 and "3 episodes errored; retrying them (1 of 1)" in err
        [retried] = read_results(tmp_path / "a").results
        assert (retried.errors, retried.settings["attempts"], retried.value) == (0, 2, solved / 10)

        stub.fail_next("500", "500")
        rc, out, err = evaluate([*base, "--base-url", stub.url, "--out", str(tmp_path / "b"), "--retries", "0"],
                                capsys)
    assert rc == 3 and "2 episodes still errored after 0 retries and count as failures" in err
    [counted] = read_results(tmp_path / "b").results
    assert counted.n == 10 and counted.errors == 2 and len(counted.settings["errored"]) == 2
    assert counted.details["scored"] == 8
    errored_ids = {key.split("#")[0] for key in counted.settings["errored"]}
    still_solved = sum(1 for t in counter_builder.CounterBuilder().load_tasks("gen:10")
                       if t.task_id not in errored_ids and t.payload["target"] % 3)
    assert counted.value == pytest.approx(still_solved / 10)  # errored tasks stay in the denominator
    assert "(2 errored)" in (tmp_path / "b" / "results.md").read_text()


def test_evaluation_tasks_found_in_the_training_data_are_refused_or_flagged(tmp_path, capsys):
    question = KgBuilder(eval_tasks=True).load_tasks("embedded-eval")[3]
    train = tmp_path / "train.jsonl"
    train.write_text(json.dumps({"id": "kg_7", "split": "kg", "task_id": "other",
                                 "instruction": f"Please answer: {question.instruction}"}) + "\n")
    with OpenAIStub(lambda messages: "Thought: no idea.\nFinal Answer: #0") as stub:
        args = ["--model", "stub", "--base-url", stub.url, "--splits", "kg", "--limit", "5", "--train", str(train)]
        rc, _, err = evaluate([*args, "--out", str(tmp_path / "a")], capsys)
        assert rc == 2 and f"1 of 5 tasks are in the training data (first: task {question.task_id}: " in err
        assert "kg_7 shares" in err and not (tmp_path / "a" / "results.json").exists()
        rc, _, _ = evaluate([*args, "--out", str(tmp_path / "b"), "--allow-overlap"], capsys)
    assert rc == 0
    [result] = read_results(tmp_path / "b").results
    assert result.settings["train_overlap"]["tasks"] == 1 and question.task_id in result.settings["train_overlap"]["found"]


def test_bad_requests_are_refused_with_the_reason(tmp_path, capsys):
    rc, _, err = evaluate(["--model", "m", "--out", str(tmp_path), "--splits", "kg", "--tasks", "os=x.json"], capsys)
    assert rc == 2 and "--tasks names split os, which is not evaluated" in err
    rc, _, err = evaluate(["--model", "m", "--out", str(tmp_path), "--tasks", "dev.json"], capsys)
    assert rc == 2 and "expected SPLIT=VALUE" in err
    rc, _, err = evaluate(["--splits", "kg"], capsys)
    assert rc == 2 and "give --model M" in err
    write_results(tmp_path, EvalRun("m", None, (rate_result("os", "held-in", "success", [True]),)))
    rc, _, err = evaluate(["--model", "other", "--out", str(tmp_path), "--splits", "kg"], capsys)
    assert rc == 2 and "holds results of model 'm', not 'other'" in err


# ----------------------------------------------------------------- intervals, table, compare


def test_intervals_on_hand_computed_cases():
    # Wilson, z = 1.96: 8 of 20 -> centre (0.4 + 0.096) / 1.192, half-width 1.96 * sqrt(0.012 + 0.00240) / 1.192
    lo, hi = wilson_interval(8, 20)
    assert (round(lo, 4), round(hi, 4)) == (0.2188, 0.6134)
    assert wilson_interval(20, 20)[1] == 1.0 and round(wilson_interval(20, 20)[0], 4) == 0.8389
    r = rate_result("db", "held-in", "success", [True] * 8 + [False] * 12, errors=3)
    assert (r.value, r.n, r.errors) == (0.4, 20, 3)
    from agentinstruct.evaluation.results import mean_result

    m = mean_result("webshop", "held-in", "reward", [0.2, 0.4, 0.6, 0.8])
    assert m.value == pytest.approx(0.5) and 0.2 <= m.ci_low < 0.5 < m.ci_high <= 0.8
    assert mean_result("webshop", "held-in", "reward", [0.2, 0.4, 0.6, 0.8]) == m  # a fixed seed: the same interval


def test_the_table_follows_the_papers_layout():
    results = tuple(rate_result(s, "held-in", "success", [True, False]) for s in ("db", "os", "kg", "mind2web",
                                                                                 "webshop", "alfworld"))
    general = (rate_result("gsm8k", "general", "exact_match", [True]), rate_result("mmlu", "general", "acc", [False]))
    table = render_table([EvalRun("base", None, results + general)])
    assert "| model | ALFWorld | WebShop | Mind2Web | KG | OS | DB |" in table
    assert "| model | MMLU | GSM8K |" in table
    assert table.index("## Held-in tasks") < table.index("## General benchmarks")


def test_compare_marks_differences_within_noise(tmp_path, capsys):
    base = (rate_result("os", "held-in", "success", [True] * 4 + [False] * 16),
            rate_result("db", "held-in", "success", [True] * 2 + [False] * 18))
    tuned = (rate_result("os", "held-in", "success", [True] * 6 + [False] * 14),
             rate_result("db", "held-in", "success", [True] * 16 + [False] * 4))
    write_results(tmp_path / "base", EvalRun("smollm2", "sha256:a", base))
    write_results(tmp_path / "tuned", EvalRun("runs/agentlm", "sha256:b", tuned, name="tuned"))
    rc, out, _ = evaluate(["--compare", str(tmp_path / "base"), str(tmp_path / "tuned"), "--out", str(tmp_path / "c")],
                          capsys)
    assert rc == 0
    assert "| OS | success | 20.0 | 30.0 | +10.0 | within noise (95% intervals overlap) |" in out
    assert "| DB | success | 10.0 | 80.0 | +70.0 | better (95% intervals apart) |" in out
    assert "1 of 2 differences lie outside the noise" in out
    assert "| OS | success | 20.0 | 30.0 | +10.0 | within noise" in (tmp_path / "c" / "comparison.md").read_text()
    assert (tmp_path / "c" / "comparison.png").stat().st_size > 1000
    rc, _, err = evaluate(["--compare", str(tmp_path / "base")], capsys)
    assert rc == 2 and "needs at least two runs" in err


# ----------------------------------------------------------------- the Hub


def test_results_go_into_the_model_cards_model_index_in_one_commit(local_hub, tmp_path, capsys):
    repo = "agentinstruct-test/AgentLM-eval"
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n# AgentLM tiny\n\nTrained here.\n")
    publish_model(folder, repo, "0.1.0")
    with OpenAIStub(counter_builder.respond) as stub:
        rc, out, _ = evaluate(["--model", "stub", "--base-url", stub.url, "--out", str(tmp_path / "eval"), *COUNTER,
                               "--tasks", "os=gen:10", "--push", repo], capsys)
    assert rc == 0 and f"published {repo}" in out
    api = HfApi()
    commits = [c.title for c in api.list_repo_commits(repo)]
    assert commits[0].startswith("Evaluation results (OS)") and len(commits) == 3
    card = ModelCard(Path(hf_hub_download(repo, "README.md", cache_dir=tmp_path / "dl")).read_text())
    [entry] = card.data.eval_results
    value = read_results(tmp_path / "eval").results[0].value
    assert (entry.dataset_type, entry.metric_type, entry.metric_value) == ("agentinstruct/os", "success",
                                                                          round(value * 100, 1))
    assert card.data.model_name == "AgentLM-eval" and card.data.license == "apache-2.0"
    assert "Trained here." in card.text
    assert set(api.list_repo_files(repo)) == {".gitattributes", "config.json", "README.md"}
    assert "v0.1.0" in {t.name for t in api.list_repo_refs(repo).tags}  # the release tag stays where it was


# ----------------------------------------------------------------- serving a checkpoint


@pytest.mark.slow
def test_a_checkpoint_dir_is_served_by_llama_cpp_when_it_comes_from_a_gguf_else_by_transformers_serve(tmp_path):
    import shutil

    from agentinstruct.collection.localmodel import _ready
    from agentinstruct.evaluation.serve import endpoint, folder_revision
    from agentinstruct.training.base import EMBEDDED_GGUF, GGUF_SOURCE, plain_checkpoint

    converted = plain_checkpoint(EMBEDDED_GGUF)  # its gguf_source.json names the GGUF
    other = tmp_path / "ckpt"
    shutil.copytree(converted, other, ignore=shutil.ignore_patterns(GGUF_SOURCE))
    for folder, how in ((converted, "llama.cpp (GGUF export)"), (other, "transformers serve")):
        with endpoint(str(folder)) as served:
            assert served.served_by == how and served.revision == folder_revision(folder)

            async def hello() -> str:
                async with AgentClient(served.model, base_url=served.base_url, max_tokens=8, temperature=0) as agent:
                    return (await agent.chat([{"role": "user", "content": "Say hello."}])).text

            assert asyncio.run(hello()).strip()
        assert not _ready(served.base_url)
