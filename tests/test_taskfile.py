"""The one task-file reader every split uses: JSON or JSON Lines, line numbers, instruction sources, and the same
error (file, line, task, field) from the os, db and kg loaders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentinstruct.builders.db.tasks import load_agentbench
from agentinstruct.builders.kg.tasks import EMBEDDED_QUESTIONS, load_questions
from agentinstruct.builders.os.tasks import load_task_file
from agentinstruct.builders.taskfile import Entry, TaskFileError, candidate, read_task_file


def where(entries: list[Entry]) -> list[tuple[int | None, int, object]]:
    return [(e.line, e.index, e.item) for e in entries]


def test_one_json_object_is_one_task_at_its_first_line(tmp_path):
    path = tmp_path / "one.json"
    path.write_text('\n{\n  "q": 1\n}\n')
    assert where(read_task_file(path, "train_split")) == [(2, 0, {"q": 1})]


def test_a_json_list_gives_each_task_the_line_it_starts_on(tmp_path):
    path = tmp_path / "list.json"
    path.write_text('[{"q": 0}, {"q": 1},\n  {"q": 2,\n   "r": [1,\n 2]},\n\n  {"q": 3}\n]')
    assert [(e.line, e.index) for e in read_task_file(path, "train_split")] == [(1, 0), (1, 1), (2, 2), (6, 3)]
    indented = tmp_path / "indented.json"
    indented.write_text(json.dumps([{"q": i, "nested": {"a": [i, i]}} for i in range(3000)], indent=2))
    starts = [n for n, line in enumerate(indented.read_text().splitlines(), 1) if line == "  {"]
    assert [e.line for e in read_task_file(indented, "train_split")] == starts and len(starts) == 3000


def test_json_lines_skip_blank_lines_and_keep_the_numbering(tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_text('{"q": 0}\n\n{"q": 1}\n   \n{"q": 2}\n')
    assert where(read_task_file(path, "train_split")) == [(1, 0, {"q": 0}), (3, 1, {"q": 1}), (5, 2, {"q": 2})]


def test_the_format_is_read_from_the_text_not_the_suffix(tmp_path):
    lines = tmp_path / "lines.json"
    lines.write_text('{"q": 0}\n{"q": 1}\n')
    assert where(read_task_file(lines, "train_split")) == [(1, 0, {"q": 0}), (2, 1, {"q": 1})]
    listed = tmp_path / "listed.jsonl"
    listed.write_text('[\n{"q": 0},\n{"q": 1}\n]\n')
    assert where(read_task_file(listed, "train_split")) == [(2, 0, {"q": 0}), (3, 1, {"q": 1})]
    (tmp_path / "empty.json").write_text("[]\n")
    assert read_task_file(tmp_path / "empty.json", "train_split") == []
    (tmp_path / "empty.jsonl").write_text("")  # JSON Lines with no lines: no tasks, not an error
    assert read_task_file(tmp_path / "empty.jsonl", "train_split") == []


@pytest.mark.parametrize("name, text, line", [
    ("bad.jsonl", '{"q": 0}\n\n{"q": 1,}\n{"q": 2}\n', 3),
    ("bad.json", '{"q": 0}\n{"q": \n', 2),
    ("bad.json", '[\n {"q": 0},\n {"q": 1}\n {"q": 2}\n]\n', 4),  # a missing comma in a list
    ("bad.json", "{", 1),
])
def test_bad_json_names_the_file_and_line(tmp_path, name, text, line):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(TaskFileError, match=rf"{name}:{line}: not valid JSON \(") as info:
        read_task_file(path, "train_split")
    assert (info.value.path, info.value.line, info.value.index, info.value.field) == (str(path), line, None, None)


def test_an_entry_names_its_own_instruction_source_which_must_be_a_task_source(tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_text('{"q": 0}\n{"q": 1, "instruction_source": "self_instruct"}\n')
    assert [e.source for e in read_task_file(path, "package")] == ["package", "self_instruct"]
    path.write_text('{"q": 0}\n\n{"q": 1, "instruction_source": "imported"}\n')  # rows without episodes only
    with pytest.raises(TaskFileError, match=r"tasks.jsonl:3: task 1: instruction_source: 'imported' is not one "
                                            r"of self_instruct, train_split") as info:
        read_task_file(path, "train_split")
    assert (info.value.path, info.value.line, info.value.index, info.value.field) == \
        (str(path), 3, 1, "instruction_source")
    assert info.value.problem.startswith("'imported' is not one of")


def test_a_missing_file_and_an_unreadable_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json not found"):
        read_task_file(tmp_path / "missing.json", "train_split")
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"q": "caf\xe9"}')
    with pytest.raises(TaskFileError, match=r"latin1.json: cannot read: .*utf-8") as info:
        read_task_file(path, "train_split")
    assert (info.value.line, info.value.index, info.value.field) == (None, None, None)


def test_entries_and_candidates_say_where_a_field_is_wrong():
    error = Entry(Path("d/t.json"), 7, 2, {}, "train_split").error("evaluation.check[1].file", "not found")
    assert str(error) == "d/t.json:7: task 2: evaluation.check[1].file: not found"
    assert (error.path, error.line, error.index, error.field, error.problem) == \
        ("d/t.json", 7, 2, "evaluation.check[1].file", "not found")
    assert str(candidate({}, "self_instruct").error(None, "not an object")) == "candidate: task 0: not an object"


# The same mistake (task 1, on line 3, lacks its question) in each split's format, through each split's loader.
OS_TASK = {"description": "What is 1?", "evaluation": {"match": "1"}}
DB_TASK = {"description": "How many?", "label": ["2"], "type": ["counting"],
           "table": {"table_name": "t", "table_info": {"columns": [{"name": "a", "type": "TEXT"}], "rows": [["x"]]}}}
KG_TASK = json.loads(EMBEDDED_QUESTIONS.read_text(encoding="utf-8"))[0]
LOADERS = {
    "os": (lambda path: load_task_file(path, path.parent, "train_split"), OS_TASK, "description"),
    "db": (lambda path: load_agentbench(path), DB_TASK, "description"),
    "kg": (lambda path: load_questions(path, "train_split"), KG_TASK, "question"),
}


@pytest.mark.parametrize("split", sorted(LOADERS))
@pytest.mark.parametrize("name", ["tasks.json", "tasks.jsonl"])
def test_every_split_reports_a_bad_field_with_file_line_task_and_field(tmp_path, split, name):
    load, good, field = LOADERS[split]
    path = tmp_path / name
    second = {k: v for k, v in good.items() if k not in (field, "qid")}
    if name == "tasks.json":
        path.write_text("[\n" + json.dumps(good) + ",\n" + json.dumps(second) + "\n]\n")
    else:
        path.write_text(json.dumps(good) + "\n\n" + json.dumps(second) + "\n")
    (tmp_path / "good.json").write_text(json.dumps([good]))
    assert len(load(tmp_path / "good.json")) == 1  # so the error below is the missing field's
    with pytest.raises(TaskFileError) as info:
        load(path)
    assert (info.value.path, info.value.line, info.value.index, info.value.field) == (str(path), 3, 1, field)
    assert str(info.value).startswith(f"{path}:3: task 1: {field}: ")


@pytest.mark.parametrize("split", sorted(LOADERS))
def test_every_split_takes_the_instruction_source_from_the_reader(tmp_path, split):
    load, good, _ = LOADERS[split]
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps([good, {**good, "qid": "other", "instruction_source": "self_instruct"}]))
    assert [t.source for t in load(path)] == ["train_split", "self_instruct"]
    path.write_text(json.dumps([good, {**good, "qid": "other", "instruction_source": "web"}]))
    with pytest.raises(TaskFileError) as info:
        load(path)
    assert (info.value.index, info.value.field) == (1, "instruction_source")
