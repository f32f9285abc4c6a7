"""The mind2web split's core: Mind2Web's released format in, pruning, ranking, AgentBench's rounds and metrics.

The fixture (tests/fixtures/mind2web) holds tasks in Mind2Web's released schema: ``train_0.json`` (two tasks,
nine actions) and ``test_task_0.json`` (an evaluation set of one task).
"""

from __future__ import annotations

import gzip
import json
import pickle
import random
from pathlib import Path

import pytest
from lxml import etree

from agentinstruct.builders import builder_class
from agentinstruct.builders.base import Action, FormatError, Task
from agentinstruct.builders.mind2web.builder import Mind2webBuilder
from agentinstruct.builders.mind2web.dom import ID, parse_page, prune, reduce_page, tree_text
from agentinstruct.builders.mind2web.episode import Mind2webEnv, step_metrics
from agentinstruct.builders.mind2web.tasks import read_file, task_steps
from agentinstruct.builders.taskfile import TaskFileError

FIXTURE = Path(__file__).parent / "fixtures" / "mind2web"
TRAIN = FIXTURE / "train_0.json"
TEST = FIXTURE / "test_task_0.json"


@pytest.fixture(scope="module")
def builder() -> Mind2webBuilder:
    return Mind2webBuilder()


@pytest.fixture(scope="module")
def tasks(builder: Mind2webBuilder) -> list[Task]:
    return builder.load_tasks(str(TRAIN))


def play(builder: Mind2webBuilder, task: Task, reply) -> tuple[Mind2webEnv, list]:
    """Run one step's rounds, answering each query with ``reply(query)`` parsed as the builder parses."""
    env = builder.open_env(task)
    queries = []
    while (query := env.next_query()) is not None:
        queries.append(query)
        env.answer(query, builder.parse(reply(query)))
    return env, queries


def test_registered() -> None:
    assert builder_class("mind2web") is Mind2webBuilder


def test_a_file_in_the_released_schema_loads(tasks: list[Task]) -> None:
    released = json.loads(TRAIN.read_text())
    assert set(released[0]) == {"annotation_id", "website", "domain", "subdomain", "confirmed_task", "action_reprs",
                                "actions"}
    assert set(released[0]["actions"][0]) == {"action_uid", "raw_html", "cleaned_html", "operation",
                                              "pos_candidates", "neg_candidates"}
    assert set(released[0]["actions"][0]["pos_candidates"][0]) == {"tag", "attributes", "backend_node_id",
                                                                    "is_original_target", "is_top_level_target"}
    assert len(tasks) == sum(len(t["actions"]) for t in released) == 9
    first = tasks[1]
    assert first.task_id == f"{released[0]['annotation_id']}/{released[0]['actions'][1]['action_uid']}"
    assert first.source == "train_split" and first.instruction == released[0]["confirmed_task"]
    assert first.payload["previous_actions"] == released[0]["action_reprs"][:1]
    assert first.payload["operation"] == {"op": "TYPE", "value": "Boston"}
    for task in tasks:
        text = json.dumps(task.payload)  # journals store payloads
        assert "raw_html" not in text and len(text) < len(json.dumps(released)) / 9
        assert task.payload["positive_in_top_k"] and len(task.payload["candidates"]) == 10


def test_evaluation_files_are_refused_unless_asked_for(builder: Mind2webBuilder, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="evaluation tasks.*--eval-tasks"):
        builder.load_tasks(str(TEST))
    with pytest.raises(ValueError, match="--eval-tasks"):
        builder.load_tasks(str(FIXTURE))  # the folder holds a test_* file
    both = Mind2webBuilder(eval_tasks=True).load_tasks(str(FIXTURE))
    assert len(both) == 10 and both[0].task_id.startswith(json.loads(TEST.read_text())[0]["annotation_id"])


def test_gzipped_files_and_folders_read_the_same(tasks: list[Task], builder: Mind2webBuilder, tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "train_0.json.gz").write_bytes(gzip.compress(TRAIN.read_bytes()))
    assert builder.load_tasks(str(tmp_path)) == tasks


def _broken(tmp_path: Path, change) -> Path:
    data = json.loads(TRAIN.read_text())
    change(data)
    path = tmp_path / "train_9.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("change, message", [
    (lambda d: d[1]["actions"][2].pop("operation"),
     r"train_9.json: task 1: actions\[2\].operation: missing \(annotation_id f1a9c2e0-0002-"),
    (lambda d: d[0]["actions"][0]["neg_candidates"][3].update(attributes={}),
     r"task 0: actions\[0\].neg_candidates\[3\].attributes: expected str, found dict \(annotation_id f1a9c2e0-0001"),
    (lambda d: d[0]["action_reprs"].pop(),
     r"task 0: action_reprs: 4 entries for 5 actions"),
    (lambda d: d[1]["actions"][0]["operation"].update(op="SCROLL"),
     r"task 1: actions\[0\].operation.op: 'SCROLL' is not one of CLICK, TYPE, SELECT"),
    (lambda d: d[0]["actions"][3].update(cleaned_html="<html><div></html>"),
     r"task 0 \(annotation_id f1a9c2e0-0001-4c55-9d7e-fixture00001\): actions\[3\].cleaned_html: not well-formed"),
])
def test_bad_files_name_file_task_action_and_field(builder: Mind2webBuilder, tmp_path: Path, change, message) -> None:
    with pytest.raises(ValueError, match=message):
        builder.load_tasks(str(_broken(tmp_path, change)))


def test_bad_json_names_the_file_and_line(builder: Mind2webBuilder, tmp_path: Path) -> None:
    path = tmp_path / "train_1.json"
    path.write_text('[\n {"annotation_id": "x",\n')
    with pytest.raises(TaskFileError, match=r"train_1.json:3: not valid JSON"):
        builder.load_tasks(str(path))


def test_pruning_keeps_every_candidate_and_the_reduced_page_prunes_the_same() -> None:
    rng = random.Random(7)
    for task in json.loads(TRAIN.read_text()):
        for step in task_steps(task, TRAIN, 0):
            full = parse_page(step.cleaned_html)
            every = step.positives + step.negatives
            reduced = reduce_page(full, every[:10])
            for _ in range(5):
                subset = rng.sample(every, 5)
                pruned = prune(full, subset)
                assert sorted(n.get(ID) for n in pruned.xpath(f"//*[@{ID}]")) == sorted(subset)
                kept = rng.sample(every[:10], 5)
                assert etree.tostring(prune(reduced, kept)) == etree.tostring(prune(full, kept))
                assert tree_text(prune(reduced, kept)) == tree_text(prune(full, kept))


def test_page_text_is_agentbenchs() -> None:
    # AgentBench's llm_prompt_cot.json shows pages this way: salient attributes as one lowercased meta string,
    # candidates numbered in page order, wrappers without attributes folded away.
    page = parse_page('<html backend_node_id="1"> <div backend_node_id="2"> <div backend_node_id="3"> <select '
                      'backend_node_id="4" name="type" class="https://x"> <option backend_node_id="5" value="pickup">'
                      ' <text backend_node_id="6">Pickup</text> </option> </select> </div> </div> <div '
                      'backend_node_id="7" aria_label="Explore now"> <text backend_node_id="8">Celebrating &amp; '
                      'supporting</text> </div> </html>')
    text, ids = tree_text(prune(page, ["7", "4"]))
    assert text == ("<html> <select id=0 type> <option pickup> Pickup </option> </select> <div id=1 explore now> "
                    "Celebrating & supporting </div> </html>")
    assert ids == {"4": 0, "7": 1}


def test_the_reference_policy_is_right_on_every_round(builder: Mind2webBuilder, tasks: list[Task]) -> None:
    for task in tasks:
        env, queries = play(builder, task, lambda q: builder.render("Because.", q.reference))
        assert queries and all(s.reward == 1.0 and s.success for s in env.scores())
        assert env.metrics() == {"element_accuracy": 1.0, "operation_f1": 1.0, "step_success": 1.0}
        assert sum(q.reference.kind != "A" for q in queries) >= 1  # the positive's own round
        components = env.scores()[0].components
        assert components["step_success"] == 1.0 and components["positive_in_top_k"] == 1.0


def test_always_none_of_the_above_scores_element_accuracy_zero(builder: Mind2webBuilder, tasks: list[Task]) -> None:
    for task in tasks:
        env, queries = play(builder, task, lambda q: "Thought: nothing here fits.\nAnswer: A.")
        assert env.metrics() == {"element_accuracy": 0.0, "operation_f1": 0.0, "step_success": 0.0}
        assert env.prediction() == ("", "")
        assert [s.reward for s in env.scores()] == [float(q.reference.kind == "A") for q in queries]


def test_right_element_wrong_value_and_wrong_element(builder: Mind2webBuilder, tasks: list[Task]) -> None:
    typed = tasks[1]  # TYPE Boston

    def wrong_value(q):
        return builder.render("x", Action(q.reference.kind, "TYPE Boston MA") if q.reference.kind != "A"
                              else Action("A"))
    env, queries = play(builder, typed, wrong_value)
    # the positive won with "TYPE Boston MA": F1 of {TYPE, Boston, MA} against {TYPE, Boston} is 0.8
    assert env.metrics() == {"element_accuracy": 1.0, "operation_f1": 0.8, "step_success": 0.0}
    assert [s.reward for s in env.scores()] == [float(q.reference.kind == "A") for q in queries]

    def first_element(q):  # always B, whatever it is
        return "Thought: B it is.\nAnswer: B.\nAction: TYPE\nValue: Boston"
    env, queries = play(builder, typed, first_element)
    element, predicted = env.prediction()
    expected = float(element in typed.payload["positives"])
    assert env.metrics() == {"element_accuracy": expected, "operation_f1": 1.0, "step_success": expected}
    assert len(queries) == 3  # two rounds of five, then the two winners meet


def test_hand_computed_metrics() -> None:
    assert step_metrics("12", "SELECT 3 people", ["12"], "SELECT 3 people") == {
        "element_accuracy": 1.0, "operation_f1": 1.0, "step_success": 1.0}
    # {SELECT, 3} against {SELECT, 3, people}: precision 1, recall 2/3, F1 0.8
    assert step_metrics("12", "SELECT 3", ["12", "13"], "SELECT 3 people")["operation_f1"] == 0.8
    # right operation on the wrong element
    assert step_metrics("14", "CLICK", ["12"], "CLICK") == {"element_accuracy": 0.0, "operation_f1": 1.0,
                                                            "step_success": 0.0}
    # no answer at all against TYPE Denver
    assert step_metrics("", "", ["12"], "TYPE Denver")["operation_f1"] == 0.0


def test_a_format_error_counts_as_a_and_is_never_right(builder: Mind2webBuilder, tasks: list[Task]) -> None:
    env = builder.open_env(tasks[0])
    while (query := env.next_query()) is not None:
        env.answer(query, FormatError("no answer"))
    assert all(s.reward == 0.0 for s in env.scores()) and env.prediction() == ("", "")


def test_rounds_are_deterministic_per_task_and_seed(tasks: list[Task]) -> None:
    def first_round(seed: int) -> str:
        return Mind2webEnv(tasks[2], seed).next_query().turns[0]["value"]
    assert first_round(123) == first_round(123)
    assert len({first_round(s) for s in range(6)}) > 1


def test_a_lone_candidate_left_over_is_never_shown(tasks: list[Task]) -> None:
    # AgentBench's loop runs while more than one candidate is queued: of six, a first round answered A leaves one.
    payload = dict(tasks[0].payload)
    payload["candidates"] = payload["candidates"][:6]
    env = Mind2webEnv(Task(tasks[0].task_id, "x", "package", payload), 123)
    query = env.next_query()
    env.answer(query, Action("A"))
    assert env.next_query() is None and env.prediction() == ("", "")


def test_parse_render_round_trip(builder: Mind2webBuilder) -> None:
    for action in (Action("A"), Action("B", "CLICK"), Action("F", "TYPE New York, NY"), Action("D", "SELECT 2"),
                   Action("C", "CLICK None")):
        assert builder.parse(builder.render("I look at the choices.", action)) == action
    assert isinstance(builder.parse("Answer: G."), FormatError)  # AgentBench reads A-F only
    # AgentBench reads the first Value line even after a CLICK: it costs operation F1
    assert builder.parse("Answer: B.\nAction: CLICK\nValue: Search") == Action("B", "CLICK Search")


def test_the_rows_have_agentinstructs_shape(builder: Mind2webBuilder, tasks: list[Task]) -> None:
    query = builder.open_env(tasks[5]).next_query()
    [turn] = query.turns
    text = turn["value"]
    assert turn["from"] == "human" and turn["loss"] is None and text.startswith("'''\n<html>")
    lines = text.splitlines()
    assert "Task: Reserve a table for 3 people at Luigi's Trattoria at 7:00 pm" in lines
    assert lines[lines.index("Previous actions:") + 1] == "None"
    choices = lines[lines.index("A. None of the above"):]
    assert [c[:3] for c in choices] == ["A. ", "B. ", "C. ", "D. ", "E. ", "F. "]
    reply = builder.render(builder.template_thought(tasks[5], query.reference), query.reference)
    assert reply.startswith("Thought: ") and "\nAnswer: " in reply


def test_mind2webs_released_ranks_choose_the_candidates(tasks: list[Task], tmp_path: Path) -> None:
    released = json.loads(TRAIN.read_text())
    ranks, scores = {}, {}
    for task in released:
        for action in task["actions"]:
            ids = [c["backend_node_id"] for c in action["neg_candidates"]] + [action["pos_candidates"][0]["backend_node_id"]]
            key = f"{task['annotation_id']}_{action['action_uid']}"
            ranks[key] = {c: r for r, c in enumerate(ids)}  # the positive ranked last
            scores[key] = {c: -float(r) for r, c in enumerate(ids)}
    path = tmp_path / "scores_all_data.pkl"
    path.write_bytes(pickle.dumps({"scores": scores, "ranks": ranks}))
    ranked = Mind2webBuilder(scores=path).load_tasks(str(TRAIN))
    assert [t.payload["positive_rank"] for t in ranked] == [len(a["neg_candidates"]) for t in released
                                                           for a in t["actions"]]
    assert not any(t.payload["positive_in_top_k"] for t in ranked)  # every step has 10+ negatives ranked first
    assert ranked[0].payload["ranker"] == "mind2web-scores"
    del ranks[next(iter(ranks))]
    path.write_bytes(pickle.dumps({"scores": scores, "ranks": ranks}))
    with pytest.raises(ValueError, match=r"task 0 .*actions\[0\]: --scores .* has no ranks for f1a9c2e0-0001"):
        Mind2webBuilder(scores=path).load_tasks(str(TRAIN))


def test_a_step_without_its_positive_in_the_top_k_still_poses_rounds(tasks: list[Task], tmp_path: Path) -> None:
    ranked = Mind2webBuilder(top_k=3).load_tasks(str(TRAIN))
    missed = [t for t in ranked if not t.payload["positive_in_top_k"]]
    assert missed
    env, queries = play(Mind2webBuilder(), missed[0], lambda q: "Answer: A.")
    assert queries and all(q.reference == Action("A") for q in queries)
    assert all(s.reward == 1.0 and s.components["element_accuracy"] == 0.0 for s in env.scores())


def test_a_hub_dataset_in_the_released_format_loads(local_hub, tasks: list[Task], tmp_path: Path) -> None:
    from huggingface_hub import HfApi

    api = HfApi()
    repo = "agentinstruct-test/mind2web-mini"
    api.create_repo(repo, repo_type="dataset")
    api.upload_file(path_or_fileobj=str(TRAIN), path_in_repo="data/train/train_0.json", repo_id=repo,
                    repo_type="dataset")
    api.upload_file(path_or_fileobj=str(TEST), path_in_repo="data/test_task/test_task_0.json", repo_id=repo,
                    repo_type="dataset")
    loaded = Mind2webBuilder().load_tasks(repo)
    assert [t.task_id for t in loaded] == [t.task_id for t in tasks]
    assert [t.payload["page"] for t in loaded] == [t.payload["page"] for t in tasks]
    with pytest.raises(ValueError, match="--eval-tasks"):
        Mind2webBuilder().load_tasks(f"{repo}:test")
    assert len(Mind2webBuilder(eval_tasks=True).load_tasks(f"{repo}:test")) == 1


@pytest.mark.slow
def test_the_minilm_ranker_ranks_offline(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ranked = Mind2webBuilder(ranker="minilm").load_tasks(str(TRAIN))
    assert ranked[0].payload["ranker"] == "minilm"
    assert all(0 <= t.payload["positive_rank"] < t.payload["num_candidates"] for t in ranked)
    # on this fixture BM25 puts every positive in the top 10 and MiniLM five of nine (ranks 0-18)
    assert sum(t.payload["positive_in_top_k"] for t in ranked) >= 5
    assert [t.payload["positive_rank"] for t in ranked] == [t.payload["positive_rank"] for t in
                                                            Mind2webBuilder(ranker="minilm").load_tasks(str(TRAIN))]


def test_read_file_reads_one_task_object(tmp_path: Path) -> None:
    one = json.loads(TRAIN.read_text())[0]
    path = tmp_path / "train_5.json"
    path.write_text(json.dumps(one))
    assert read_file(path) == [one]
