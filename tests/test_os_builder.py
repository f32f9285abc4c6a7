"""The os split: AgentBench task files, the Think/Act format, reference solutions scored by the tasks' own
checkers (AgentBench dev and training tasks, the embedded ones) that answer only what a command showed, and
scripted models driving full episodes through the engine and a real OpenAI-compatible server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from openai_stub import OpenAIStub

from agentinstruct.builders.base import Action, FormatError, NoReferenceSolution, Task
from agentinstruct.builders.os.builder import NEW_PROBLEM, OsBuilder, answer_shown, parse_reply, render_turn
from agentinstruct.builders.os.environment import judge, observation
from agentinstruct.builders.os.limits import Limits
from agentinstruct.builders.os.sandbox import Output
from agentinstruct.builders.os.tasks import DATA, command, load_task_file
from agentinstruct.builders.taskfile import TaskFileError
from agentinstruct.cli import main
from agentinstruct.datasetdir.layout import iter_records
from agentinstruct.records.validation import validate_paths


LIMITS = Limits(command_timeout=10.0)


@pytest.fixture
def builder(sandbox_backend) -> OsBuilder:
    return OsBuilder(backend=sandbox_backend, limits=LIMITS)


def play(builder: OsBuilder, task: Task, actions: list[Action], *, also: list[str | None] = ()) -> list[float]:
    """Run ``actions`` in a fresh episode; the reward of its final action, then of each answer in ``also``
    judged in the same sandbox."""
    with builder.open_env(task) as env:
        env.reset()
        final = None
        for action in actions:
            if builder.is_final(action):
                final = action
                break
            env.step(action)
        rewards = [env.score(final).reward]
        for answer in also:
            rewards.append(env.score(Action("answer", answer) if answer is not None else Action("finish")).reward)
    return rewards


# ---------------------------------------------------------------------------------------------- format
@pytest.mark.parametrize("reply, expected", [
    ("Think: count them.\n\nAct: bash\n\n```bash\nls | wc -l\n```", Action("bash", "ls | wc -l")),
    ("Think: two blocks.\nAct: bash\n```bash\ncd /tmp\n```\nand\n```bash\npwd\n```", Action("bash", "cd /tmp\n\npwd")),
    ("Think: done.\n\nAct: finish", Action("finish")),
    ("Think: got it.\n\nAct: answer(42)", Action("answer", "42")),
    ("Act: answer((a) and (b))", Action("answer", "(a) and (b)")),
    ("Act: bash\n```bash\nls\n```\nThink: no, I know it.\nAct: answer(7)", Action("answer", "7")),  # the last Act
    ("Think: x\nAct: Answer(yes)", Action("answer", "yes")),
])
def test_parse_reads_the_last_act_line(reply, expected):
    assert parse_reply(reply) == expected


@pytest.mark.parametrize("reply, says", [
    ("I think the answer is 42.", "no action"),
    ("Think: run it.\n\nAct: bash\n\nls -la", "```bash block"),
    ("Think: x\n\nAct: answer 42", "no action"),
    ("Think: x\n\nAct: dance", "no action"),
])
def test_bad_replies_are_format_errors_that_say_what_to_do(reply, says):
    parsed = parse_reply(reply)
    assert isinstance(parsed, FormatError) and says in parsed.message


@pytest.mark.parametrize("action", [
    Action("bash", "find / -name '*.log' | wc -l"), Action("bash", "cat <<'EOF' > f\na\n\nb\nEOF"),
    Action("answer", "12"), Action("answer", "two\nlines"), Action("answer", ""), Action("finish"),
])
def test_render_round_trips(action):
    assert parse_reply(render_turn("A thought (with parentheses).", action)) == action


def test_observations_begin_as_in_agentbench():
    assert observation(Output("3\n", 2, 0)) == "The output of the OS:\n\n3\n"
    assert observation(Output("", 0, 0)) == "The output of the OS is empty."
    cut = observation(Output("x", 1, None, True, "the command did not finish within 5 seconds and was interrupted"))
    assert cut.startswith("The output of the OS:\n[the command did not finish") and cut.endswith("\nx")


def test_prompt_is_thudm_shaped_with_an_untrained_one_shot(builder):
    turns = builder.prompt(Task("t", "How many files are in /tmp?", "train_split"))
    assert [t["from"] for t in turns] == ["human", "gpt", "human", "gpt", "human", "gpt", "human"]
    assert [t["loss"] for t in turns if t["from"] == "gpt"] == [False, False, False]
    assert turns[-1]["value"] == NEW_PROBLEM + "How many files are in /tmp?"
    for turn in turns[1::2]:
        assert isinstance(parse_reply(turn["value"]), Action)
    assert all(t["value"].startswith("The output of the OS:") for t in turns[2:-1:2])


# ---------------------------------------------------------------------------------------------- task files
def test_dev_file_loads_with_agentbench_semantics(agentbench):
    root = agentbench / "os_interaction"
    tasks = load_task_file(root / "dev.json", root / "scripts" / "dev", "train_split")
    assert len(tasks) == 26 and tasks[0].task_id == "dev-00000"
    calc = tasks[3].payload
    assert calc["check"][0][0] == "bash" and "calc" in calc["check"][0][1] and calc["example"][0] == "bash"
    assert tasks[10].payload["init"] == []  # its `create` is a list, which AgentBench ignores
    assert tasks[13].payload["example"] == ["bash", "nproc"]  # a bare string is bash
    assert tasks[21].payload["init"][0][0] == "bash"  # init given as a string
    assert tasks[25].payload["init"][0][1].startswith("#!/bin/bash")  # read from scripts/dev/init
    assert tasks[0].payload["start"].startswith("python3 -c") and tasks[0].payload["match"]["answer"] == "1"


def test_missing_script_names_the_file_and_suggests_scripts(agentbench, tmp_path):
    path = agentbench / "os_interaction" / "dev.json"
    with pytest.raises(TaskFileError, match=r"dev.json:\d+: task 3: evaluation.check.file: .*--scripts") as info:
        load_task_file(path, tmp_path, "train_split")
    starts = [n for n, line in enumerate(path.read_text().splitlines(), 1) if line == "    {"]  # one per task
    assert len(starts) == 26
    assert (info.value.path, info.value.line, info.value.index, info.value.field) == \
        (str(path), starts[3], 3, "evaluation.check.file")


GOOD_TASK = {"description": "What is 1?", "evaluation": {"match": "1"}}


@pytest.mark.parametrize("item, field, problem", [
    ({"evaluation": {"match": "1"}}, "description", "missing"),
    ({"description": "d"}, "evaluation", "missing"),
    ({"description": "d", "evaluation": {}}, "evaluation", "needs 'match' or 'check'"),
    ({"description": "d", "evaluation": {"check": [None, "x"]}}, "evaluation.example", "required"),
    ({"description": "d", "evaluation": {"check": {"language": "perl", "code": "1"}}}, "evaluation.check.language",
     "'perl' is not supported"),
    ({"description": "d", "create": {"init": [None]}, "evaluation": {"match": "1"}}, "create.init[0]",
     "null is only allowed in evaluation.check"),
    ({"description": "d", "evaluation": {"match": 3}}, "evaluation.match", "expected a string"),
    ({"description": "d", "evaluation": {"match": "1"}, "instruction_source": "web"}, "instruction_source",
     "'web' is not one of"),
])
def test_bad_tasks_get_an_error_naming_file_task_and_field(tmp_path, item, field, problem):
    path = tmp_path / "bad.json"
    path.write_text("[\n" + json.dumps(GOOD_TASK) + ",\n" + json.dumps(item) + "\n]\n")
    with pytest.raises(TaskFileError, match=rf"bad.json:3: task 1: {re.escape(field)}: {problem}") as info:
        load_task_file(path, tmp_path, "train_split")
    assert (info.value.path, info.value.line, info.value.index, info.value.field) == (str(path), 3, 1, field)


def test_one_object_files_and_json_lines(tmp_path):
    item = {"description": "What is 1?", "evaluation": {"match": "1"}}
    (tmp_path / "one.json").write_text(json.dumps(item))
    (tmp_path / "many.jsonl").write_text(json.dumps(item) + "\n\n" + json.dumps(item) + "\n")
    assert [t.task_id for t in load_task_file(tmp_path / "one.json", tmp_path, "train_split")] == ["one-00000"]
    assert len(load_task_file(tmp_path / "many.jsonl", tmp_path, "train_split")) == 2


def test_embedded_tasks_are_the_packages_and_a_users_file_is_a_benchmarks(builder, tmp_path):
    assert {t.source for t in builder.load_tasks("embedded")} == {"package"}
    (tmp_path / "mine.json").write_text(json.dumps([GOOD_TASK, {**GOOD_TASK, "instruction_source": "self_instruct"}]))
    assert [t.source for t in builder.load_tasks(str(tmp_path / "mine.json"))] == ["train_split", "self_instruct"]


def test_scripts_run_as_agentbench_runs_them():
    assert command(["bash", "echo $1"], ["ans"]) == ["bash", "-c", "echo $1", "--", "ans"]
    assert command(["python", "print(1)"], ["a", "b"]) == ["python3", "-c", "print(1)", "a", "b"]
    assert command(["bash", "echo $RANDOM"], [], seed=7)[2] == "RANDOM=7\necho $RANDOM"


# ---------------------------------------------------------------------------------------------- reference solutions
DEV_CHECKER_CANNOT_PASS = {"dev-00008"}
"""Its check is AgentBench's scripts/dev/check/size-match.py, which does int("4.0") on du's "4.0K" and so fails
for any answer; our shipped size-match.py accepts it (tested below)."""
IGNORES_ANSWER = {"dev-00003", "dev-00005"}
"""The calc tasks: their check script tests the `calc` command, not the answer."""
NO_EXAMPLE = {"dev-00000", "dev-00001", "dev-00002", "dev-00004", "dev-00024"}
"""Match tasks without an example (dev-00024's sits outside `evaluation`, where AgentBench ignores it, and fails
anyway: it runs `chmod 777 test` in the shell's cwd, /): no command of their own shows the answer, so they have no
reference solution and a reference build skips them."""


def test_agentbench_dev_tasks_score_as_their_checkers_say(sandbox_backend, agentbench):
    root = agentbench / "os_interaction"
    builder = OsBuilder(scripts=root / "scripts" / "dev", backend=sandbox_backend, limits=LIMITS)
    tasks = builder.load_tasks(str(root / "dev.json"))
    scored = {}
    for task in tasks:
        if task.task_id in NO_EXAMPLE:
            with pytest.raises(NoReferenceSolution, match="has no example solution"):
                builder.reference_actions(task)
            actions = []  # unanswered: reward 0; the wrong answer and finish are still judged below
        else:
            actions = builder.reference_actions(task)
            assert actions[0].kind == "bash"  # every reference solution runs a command first
        scored[task.task_id] = play(builder, task, actions, also=["wrong-answer-9", None])
    passed = {tid for tid, (reward, _, _) in scored.items() if reward == 1.0}
    assert passed == {t.task_id for t in tasks} - DEV_CHECKER_CANNOT_PASS - NO_EXAMPLE, scored
    for tid, (_, wrong, finish) in scored.items():
        expected = 1.0 if tid in IGNORES_ANSWER else 0.0
        assert (wrong, finish) == (expected, expected), (tid, wrong, finish)


def test_the_size_task_passes_with_our_size_checker(builder, agentbench):
    root = agentbench / "os_interaction"
    task = load_task_file(root / "dev.json", root / "scripts" / "dev", "train_split")[8]
    ours = dict(task.payload, check=[None, ["python", (DATA / "check" / "size-match.py").read_text()]])
    with builder.open_sandbox() as box:
        for script in task.payload["init"]:
            box.exec(command(script, []))
        answer = box.exec(command(task.payload["example"], [])).text.strip()
        assert answer.endswith("K") and "." in answer  # du -sh prints e.g. 4.0K here
        assert judge(box, ours, answer) and not judge(box, task.payload, answer)
        assert not judge(box, ours, "17M")


def test_a_sample_of_training_tasks_runs_unchanged(builder, agentbench):
    # training.json names only the standard checkers, and no --scripts means ours.
    tasks = builder.load_tasks(str(agentbench / "os_interaction" / "training.json"))
    assert len(tasks) == 1000 and {t.source for t in tasks} == {"train_split"}
    sample = tasks[::50]
    rewards = {t.task_id: play(builder, t, builder.reference_actions(t))[0] for t in sample}
    assert sum(rewards.values()) == len(sample), rewards


def test_embedded_tasks_build_with_the_reference_policy(sandbox_backend, tmp_path, capsys):
    rc = main(["build", "os", "--tasks", "embedded", "--policy", "reference", "--out", str(tmp_path),
               "--concurrency", "2"])
    out = capsys.readouterr().out
    assert rc == 0 and "18 scored, 18 kept, 0 failed, 0 errored" in out, out
    assert validate_paths([tmp_path]).ok
    records = list(iter_records(tmp_path, "default", "os"))
    assert {r["instruction_source"] for r in records} == {"task_derivation"}
    assert {r["env"]["backend"] for r in records} == {"bubblewrap"} and {r["reward"] for r in records} == {1.0}
    for record in records:
        final = parse_reply(record["conversations"][-1]["value"])
        assert isinstance(final, Action) and final.kind in ("answer", "finish")
    # Every answer follows a bash action whose observation shows it: derived trajectories never guess.
    assert len(records) == 18 and {r["task_id"] for r in records} == {t.task_id for t in BY_TEXT.values()}
    for record in records:
        turns = record["conversations"]
        trained = [i for i, t in enumerate(turns) if t["loss"]]
        final = parse_reply(turns[trained[-1]]["value"])
        bash = [i for i in trained[:-1] if parse_reply(turns[i]["value"]).kind == "bash"]
        assert bash, record["task_id"]
        if final.kind == "answer":
            assert any(answer_shown(final.argument, [turns[i + 1]["value"]]) for i in bash), record["task_id"]
    assert sum(r["num_turns"] for r in records) / len(records) == 2.0  # a command, then the answer or finish


def test_tasks_without_a_command_that_shows_the_answer_are_skipped_and_counted(sandbox_backend, tmp_path, capsys):
    tasks = [
        {"description": "What is 6 times 7?", "evaluation": {"match": "42", "example": "echo 41"}},
        {"description": "What is 1?", "evaluation": {"match": "1"}},
        {"description": "What is 5?", "evaluation": {"match": "5", "example": "echo 5"}},
        {"description": "Which number ends seq 1 400?", "evaluation": {  # the answer is cut from what the agent sees
            "check": [None, {"language": "python", "file": "check/string-match.py"}], "example": "seq 1 400"}},
        {"description": "Name an a-word.", "evaluation": {"match": {"regex": "^a"}, "example": "echo apple"}},
    ]
    (tmp_path / "mine.json").write_text(json.dumps(tasks))
    out = tmp_path / "out"
    args = ["build", "os", "--tasks", str(tmp_path / "mine.json"), "--policy", "reference", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "5 episodes (0 from the journal, 5 run in" in printed
    assert "1 scored, 1 kept, 0 failed, 0 errored, 4 skipped" in printed, printed
    assert "skipped 4 tasks with no reference solution" in printed
    skipped = json.loads((out / "reports" / "skipped.json").read_text())["splits"]["os"]
    long = "\n".join(map(str, range(1, 401)))
    assert {e["task_id"]: e["reason"] for e in skipped} == {
        "mine-00000": "os task mine-00000: the example's output does not show the answer '42'",
        "mine-00001": "os task mine-00001 has no example solution, so no command of its own shows the answer",
        "mine-00003": f"os task mine-00003: the example's output does not show the answer {long!r}",
        "mine-00004": "os task mine-00004: a regex match has no reference answer",
    }
    assert [r["task_id"] for r in iter_records(out, "all", "os")] == ["mine-00002"]
    card = (out / "README.md").read_text()
    assert "Tasks skipped for having no reference solution" in card and "| os | `mine-00001` |" in card
    assert validate_paths([out]).ok
    assert main(args) == 0  # resumed: skipped tasks are not run again
    assert "5 episodes (5 from the journal, 0 run in" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------- scripted models
BY_TEXT = {t.instruction: t for t in load_task_file(DATA / "tasks.json", DATA, "package", prefix="embedded")}
HOSTILE = "cat /etc/shadow | head -1; env | grep -c API_KEY; rm -rf --no-preserve-root / 2>/dev/null; echo removed"


def scripted(task: Task) -> list[str]:
    """What the scripted model says on each embedded task, by task number."""
    n = int(task.task_id.rsplit("-", 1)[1])
    if n == 0:  # solves it
        return ["Think: find them.\n\nAct: bash\n\n```bash\nfind /root/notes -type f -name '*.txt' | wc -l\n```",
                "Think: five.\n\nAct: answer(5)"]
    if n == 2:  # two malformed replies, then solves it
        return ["Let me look at the log first.", "Think: grep.\n\nAct: bash\n\ngrep -c ERROR /var/log/app.log",
                "Think: grep.\n\nAct: bash\n\n```bash\ngrep -c ERROR /var/log/app.log\n```", "Act: answer(6)"]
    if n == 3:  # a wrong answer
        return ["Think: guess.\n\nAct: answer(alice)"]
    if n == 4:  # an operation, then finish
        return [render_turn("copy.", Action("bash", "mkdir -p /srv/backup && cp /opt/app/*.conf /srv/backup/")),
                "Think: done.\n\nAct: finish"]
    if n == 5:  # never finishes: runs out of rounds; long output gets cut
        return ["Think: look.\n\nAct: bash\n\n```bash\nseq 1 5000\n```"]
    if n == 7:  # hostile commands, then an answer
        return [f"Think: try.\n\nAct: bash\n\n```bash\n{HOSTILE}\n```", "Think: 3.\n\nAct: answer(3)"]
    return ["Think: no idea.\n\nAct: finish"]


def respond(messages: list[dict]) -> str:
    at = max(i for i, m in enumerate(messages) if m["role"] == "user" and m["content"].startswith(NEW_PROBLEM))
    replies = scripted(BY_TEXT[messages[at]["content"][len(NEW_PROBLEM):]])
    step = sum(1 for m in messages[at:] if m["role"] == "assistant")
    return replies[min(step, len(replies) - 1)]


def test_a_scripted_model_drives_full_episodes_through_the_engine(builder, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-os-episodes-secret")
    tasks_file = tmp_path / "picked.json"
    items = json.loads((DATA / "tasks.json").read_text())
    tasks_file.write_text(json.dumps([items[i] for i in (0, 2, 3, 4, 5, 7)]))
    out = tmp_path / "out"
    with OpenAIStub(respond) as stub:
        args = ["build", "os", "--tasks", str(tasks_file), "--scripts", str(DATA), "--model", "stub",
                "--base-url", stub.url, "--out", str(out), "--concurrency", "3", "--command-timeout", "15"]
        rc = main(args)
        printed = capsys.readouterr().out
    assert rc == 0, printed
    by_task = {r["task_id"]: r for r in iter_records(out, "all", "os")}
    outcome = {tid: (r["reward"], r["reward_details"]["termination"], r["reward_details"]["format_errors"],
                     r["num_turns"]) for tid, r in by_task.items()}
    assert outcome == {
        "picked-00000": (1.0, "answered", 0, 2),
        "picked-00001": (1.0, "answered", 2, 4),
        "picked-00002": (0.0, "answered", 0, 1),
        "picked-00003": (1.0, "finished", 0, 2),
        "picked-00004": (0.0, "max_turns", 0, 8),
        "picked-00005": (0.0, "answered", 0, 2),
    }
    assert {r["task_id"] for r in iter_records(out, "default", "os")} == {"picked-00000", "picked-00001",
                                                                          "picked-00003"}
    long = by_task["picked-00004"]["conversations"][8]["value"]
    assert long.startswith("The output of the OS:\n\n1\n2\n") and "[truncated:" in long and len(long) < 900
    hostile = by_task["picked-00005"]["conversations"][8]["value"]
    assert hostile == "The output of the OS:\n\nroot:*:19000:0:99999:7:::\n0\nremoved\n"  # no key inside
    malformed = by_task["picked-00001"]["conversations"]
    assert "no action" in malformed[8]["value"] and "```bash block" in malformed[10]["value"]
    assert Path("/usr/bin/env").exists() and Path("/etc/passwd").exists()
    assert all("sk-test-os-episodes-secret" not in json.dumps(r) for r in by_task.values())
    assert validate_paths([out]).ok
