"""Concurrent, journaled, resumable collection: in process, through the CLI, and across kill -9."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import counter_builder
import pytest
from counter_builder import CounterBuilder, respond
from kill_harness import finished_lines, kill_at, run_cli
from openai_stub import OpenAIStub

from agentinstruct.builders.base import Action, StepResult, Task
from agentinstruct.cli import main
from agentinstruct.collection.agent import AgentClient
from agentinstruct.collection.collect import build_split, select
from agentinstruct.collection.journal import journal_path
from agentinstruct.datasetdir.layout import iter_records
from agentinstruct.filters.base import FilterPipeline, FormatErrorFilter, RewardFilter
from agentinstruct.records.validation import validate_paths

SECRET = "sk-test-NEVER-WRITE-ME-31337"
KEY = {"OPENAI_API_KEY": SECRET}
BUILDER_SPEC = "counter_builder:CounterBuilder"


@pytest.fixture
def stub():
    with OpenAIStub(respond) as server:
        yield server


def target(i: int) -> int:
    """The target of gen task c{i} (see counter_builder.load_tasks)."""
    return i % 4 + (i * 7) % 10 + 1


def expected_success(n: int) -> set[str]:
    """Task ids of gen:n the scripted model solves: targets not a multiple of 3."""
    return {f"c{i}" for i in range(n) if target(i) % 3}


def build(stub, out, n=20, *, builder=None, concurrency=4, seed=None, limit=None, max_retries=2, policy="model"):
    builder = builder or CounterBuilder()

    async def go():
        agent = AgentClient("stub", base_url=stub.url, backoff_base=0.01, max_retries=max_retries) if stub else None
        try:
            pipeline = FilterPipeline([RewardFilter(1.0), FormatErrorFilter(0)])
            return await build_split(builder, builder.load_tasks(f"gen:{n}"), out, pipeline=pipeline, policy=policy,
                                     agent=agent, concurrency=concurrency, seed=seed, limit=limit, progress=False)
        finally:
            if agent:
                await agent.close()

    return asyncio.run(go())


def comparable(out: Path, config: str = "all") -> list[dict]:
    """The records of a dir minus their creation time, in id order."""
    return sorted(({k: v for k, v in r.items() if k != "created_at"} for r in iter_records(out, config, "os")),
                  key=lambda r: int(r["id"].split("_")[1]))


def test_build_writes_every_scored_trajectory_with_its_filter_decision(stub, tmp_path):
    outcome = build(stub, tmp_path, 20)
    assert outcome.episodes == 20 and not outcome.errors
    records = comparable(tmp_path)
    assert [r["id"] for r in records] == [f"os_{n}" for n in range(20)]
    assert [r["task_id"] for r in records] == [f"c{n}" for n in range(20)]  # no --seed: source order
    solved = expected_success(20)
    assert {r["task_id"] for r in records if r["success"]} == solved
    reasons = {r["filter"]["reason"] for r in records}
    assert reasons == {None, "reward 0.0 < 1.0", "1 format errors > 0"}
    assert all(r["filter"]["bar"] == "reward>=1.0 and format_errors<=0" for r in records)
    kept = comparable(tmp_path, "default")
    assert [r["id"] for r in kept] == [r["id"] for r in records if r["filter"]["kept"]]
    # Multiples of 5 are solved after one malformed reply: the format-error bar drops them.
    assert {r["task_id"] for r in kept} == {t for t in solved if target(int(t[1:])) % 5}
    assert validate_paths([tmp_path]).ok
    assert counter_builder.OPEN_ENVS == set()


def test_dataset_dir_loads_and_the_journal_stays_out_of_it(stub, tmp_path):
    from datasets import load_dataset

    build(stub, tmp_path, 6)
    assert journal_path(tmp_path, "os").exists()
    assert len(load_dataset(str(tmp_path), "all", split="os")) == 6
    assert len(load_dataset(str(tmp_path), split="os")) == len(comparable(tmp_path, "default"))


def test_seed_and_limit_give_a_deterministic_prefix(stub, tmp_path):
    tasks = CounterBuilder().load_tasks("gen:30")
    full = select(tasks, seed=3)
    assert select(tasks, seed=3, limit=5) == full[:5]
    assert [e.task.task_id for e in full] != [t.task_id for t in tasks]  # shuffled
    assert [e.task.task_id for e in select(tasks, seed=4)] != [e.task.task_id for e in full]

    build(stub, tmp_path, 30, seed=3, limit=5)
    first = {r["id"]: r for r in iter_records(tmp_path, "all", "os")}
    requests = len(stub.requests)
    build(stub, tmp_path, 30, seed=3, limit=8)  # a longer prefix resumes the shorter one
    records = {r["id"]: r for r in iter_records(tmp_path, "all", "os")}
    assert sorted(records) == [f"os_{n}" for n in range(8)]
    assert all(records[i] == first[i] for i in first)  # journaled episodes are not run again
    assert len(stub.requests) - requests <= 3 * 3
    assert [records[f"os_{n}"]["task_id"] for n in range(8)] == [e.task.task_id for e in full[:8]]


def test_server_dies_mid_run_then_resume_completes_the_same_records(stub, tmp_path):
    clean = tmp_path / "clean"
    build(stub, clean, 24)
    stub.die_after(12)
    broken = tmp_path / "broken"
    outcome = build(stub, broken, 24, max_retries=1)
    assert outcome.errors, "the dead server must leave errored episodes"
    assert all("connection error" in e for e in outcome.errors.values())
    assert len(outcome.records) + len(outcome.errors) == 24
    assert {r["task_id"] for r in comparable(broken)} == {r["task_id"] for r in outcome.records}  # partial split written
    entries = [json.loads(x) for x in journal_path(broken, "os").read_text().splitlines()]
    assert sum(e["kind"] == "errored" for e in entries) == len(outcome.errors)

    stub.start()  # the server comes back on the same port
    again = build(stub, broken, 24)
    assert not again.errors and again.resumed == len(outcome.records)
    assert comparable(broken) == comparable(clean)
    assert comparable(broken, "default") == comparable(clean, "default")
    assert counter_builder.OPEN_ENVS == set()


class FlakyEnvBuilder(CounterBuilder):
    """Its environment crashes on target 7: such episodes are errored, the rest are scored."""

    def open_env(self, task):
        env = super().open_env(task)
        if task.payload["target"] == 7:
            def step(action: Action) -> StepResult:
                raise OSError("sandbox vanished")
            env.step = step
        return env


def test_environment_crashes_are_errored_not_scored(stub, tmp_path):
    outcome = build(stub, tmp_path, 12, builder=FlakyEnvBuilder())
    crashed = {e.key for e in select(FlakyEnvBuilder().load_tasks("gen:12")) if e.task.payload["target"] == 7}
    assert crashed and set(outcome.errors) == crashed
    assert all("environment error in task" in e and "OSError: sandbox vanished" in e for e in outcome.errors.values())
    assert {r["build"]["episode"] for r in outcome.records}.isdisjoint(crashed)
    assert counter_builder.OPEN_ENVS == set()


def cli(args: list[str], capsys) -> tuple[int, str, str]:
    rc = main(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_build_resume_refusal_and_clear_errors(stub, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    base = ["build", "os", "--builder", BUILDER_SPEC, "--tasks", "gen:10", "--out", str(tmp_path)]
    rc, out, _ = cli(base + ["--model", "stub", "--base-url", stub.url, "--max-format-errors", "0"], capsys)
    assert rc == 0 and "10 episodes (0 from the journal, 10 run in" in out and "10 scored" in out
    assert "all/os 10 rows" in out
    rc, out, _ = cli(base + ["--model", "stub", "--base-url", stub.url, "--max-format-errors", "0"], capsys)
    assert rc == 0 and "(10 from the journal, 0 run in" in out

    rc, _, err = cli(base + ["--model", "stub", "--base-url", stub.url, "--seed", "1"], capsys)
    assert rc == 2 and "belongs to a build with other parameters" in err and "seed: None then, 1 now" in err
    rc, _, err = cli(base + ["--model", "other", "--base-url", stub.url], capsys)
    assert rc == 2 and "model: 'stub' then, 'other' now" in err
    rc, _, err = cli(["build", "os", "--builder", BUILDER_SPEC, "--tasks", "gen:2", "--out", str(tmp_path / "x")],
                     capsys)
    assert rc == 2 and "--policy model needs --model" in err
    rc, _, err = cli(["build", "web", "--tasks", "x", "--out", str(tmp_path / "y")], capsys)
    assert rc == 2 and "no builder for split 'web' yet" in err
    assert stub.authorization and set(stub.authorization) == {f"Bearer {SECRET}"}


def test_cli_reference_policy_without_a_model(tmp_path, capsys):
    rc, out, _ = cli(["build", "os", "--builder", BUILDER_SPEC, "--tasks", "gen:6", "--policy", "reference",
                      "--out", str(tmp_path)], capsys)
    assert rc == 0 and "6 scored, 6 kept, 0 failed" in out
    records = comparable(tmp_path)
    assert {r["instruction_source"] for r in records} == {"task_derivation"}
    assert {r["agent"]["policy"] for r in records} == {"reference"}


class PartlyDerivable(CounterBuilder):
    """c1 and c3 have no reference solution (the contract's ValueError); c4's reference answer is never shown."""

    def reference_actions(self, task: Task) -> list[Action]:
        if task.task_id in ("c1", "c3"):
            raise ValueError(f"counter task {task.task_id} has no reference solution")
        return super().reference_actions(task)

    def shows_answer(self, task: Task, action: Action, observations: list[str]) -> bool:
        return task.task_id != "c4"


def test_tasks_without_a_reference_solution_are_skipped_counted_and_not_run_again(tmp_path):
    outcome = build(None, tmp_path, 6, builder=PartlyDerivable(), policy="reference")
    assert not outcome.errors and [r["task_id"] for r in outcome.records] == ["c0", "c2", "c5"]
    assert outcome.skipped == {
        "c1#0": "counter task c1 has no reference solution",
        "c3#0": "counter task c3 has no reference solution",
        "c4#0": f"os task c4: the episode's observations do not show the reference answer '{target(4)}'",
    }
    assert counter_builder.OPEN_ENVS == set()  # c4's episode was under way: its environment is closed
    kinds = [json.loads(x)["kind"] for x in journal_path(tmp_path, "os").read_text().splitlines()]
    assert kinds.count("skipped") == 3 and "errored" not in kinds
    report = json.loads((tmp_path / "reports" / "skipped.json").read_text())
    assert [e["task_id"] for e in report["splits"]["os"]] == ["c1", "c3", "c4"]
    assert "reports/skipped.json" in {a["path"] for a in json.loads((tmp_path / "manifest.json").read_text())["assets"]}
    again = build(None, tmp_path, 6, builder=PartlyDerivable(), policy="reference")
    assert again.resumed == 6 and again.skipped == outcome.skipped


def test_cli_refusal_aborts_the_build(stub, tmp_path, capsys):
    stub.fail_next("401")
    rc, _, err = cli(["build", "os", "--builder", BUILDER_SPEC, "--tasks", "gen:8", "--concurrency", "1",
                      "--model", "stub", "--base-url", stub.url, "--out", str(tmp_path)], capsys)
    assert rc == 2 and "refused the request: HTTP 401" in err
    assert [json.loads(x)["kind"] for x in journal_path(tmp_path, "os").read_text().splitlines()] == ["header"]


def test_cli_eval_prints_the_metric_and_writes_per_task_results(stub, tmp_path, capsys):
    rc, out, _ = cli(["eval", "os", "--builder", BUILDER_SPEC, "--tasks", "gen:12", "--model", "stub",
                      "--base-url", stub.url, "--out", str(tmp_path)], capsys)
    solved = expected_success(12)
    assert rc == 0
    assert f"12/12 tasks scored: mean success {len(solved) / 12:.4f}, success rate {len(solved) / 12:.2%}" in out
    results = [json.loads(x) for x in (tmp_path / "eval-os.jsonl").read_text().splitlines()]
    assert {r["task_id"] for r in results if r["success"]} == solved
    assert {"reward", "termination", "format_errors", "usage", "conversations"} <= set(results[0])
    rc, out, _ = cli(["eval", "os", "--builder", BUILDER_SPEC, "--tasks", "gen:3", "--model", "stub",
                      "--base-url", stub.url], capsys)
    assert rc == 0 and "3/3 tasks scored" in out


def test_kill_9_mid_build_then_resume_gives_exactly_the_uninterrupted_record_set(tmp_path):
    n = 40
    with OpenAIStub(respond, latency=0.03) as stub:
        def args(out: Path) -> list[str]:
            return ["build", "os", "--builder", BUILDER_SPEC, "--tasks", f"gen:{n}", "--model", "stub", "--base-url",
                    stub.url, "--concurrency", "4", "--seed", "11", "--max-format-errors", "0", "--out", str(out)]

        clean, killed = tmp_path / "clean", tmp_path / "killed"
        outputs = [run_cli(args(clean), KEY).communicate(timeout=300)]
        kills, crashed = kill_at(args(killed), killed, "os", (6, 22), KEY)
        outputs += crashed
        assert kills == 2, "the build finished before it could be killed; raise the stub latency"
        assert 0 < finished_lines(killed, "os") < n
        final = run_cli(args(killed), KEY)
        outputs.append(final.communicate(timeout=300))
        assert final.returncode == 0, outputs[-1]
        assert "40 scored" in outputs[-1][0]

    assert comparable(killed) == comparable(clean)
    assert comparable(killed, "default") == comparable(clean, "default")
    ids = [r["id"] for r in comparable(killed)]
    assert ids == [f"os_{k}" for k in range(n)]
    # Each episode finished once: torn lines cut, nothing duplicated.
    entries = [json.loads(x) for x in journal_path(killed, "os").read_text().splitlines()]
    finished = [e["id"] for e in entries if e["kind"] == "finished"]
    assert sorted(finished) == sorted(f"{r['task_id']}#0" for r in comparable(killed))
    # The key reached the server but no output, journal, record or card.
    for out in (clean, killed):
        for path in out.rglob("*"):
            if path.is_file():
                assert SECRET.encode() not in path.read_bytes(), path
    assert all(SECRET not in o and SECRET not in e for o, e in outputs)
