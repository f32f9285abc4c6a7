"""The db task formats and the conversation: AgentBench files, Spider/BIRD sets, clear errors, parse and render."""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from agentinstruct.builders.base import Action, FormatError
from agentinstruct.builders.db.backends import MariadbBackend, SqliteBackend
from agentinstruct.builders.db.builder import DbBuilder
from agentinstruct.builders.taskfile import TaskFileError
from agentinstruct.cli import main
from agentinstruct.datasetdir.layout import iter_records

B = DbBuilder()


@pytest.mark.parametrize("reply, action", [
    ("I count.\nAction: Operation\n```sql\nSELECT COUNT(*)\nFROM t;\n```", Action("sql", "SELECT COUNT(*) FROM t;")),
    ("Action: Operation\n```sql\nSELECT 1;\n```\nand then\n```sql\nSELECT 2;\n```", Action("sql", "SELECT 1;")),
    ("action: operation\n```SQL SELECT 3```", Action("sql", "SELECT 3")),
    ('So.\nAction: Answer\nFinal Answer: ["a", "b"]\nThanks', Action("answer", '["a", "b"]')),
    ("Action: Answer\nFinal Answer: 7", Action("answer", "7")),
])
def test_parse(reply, action):
    assert B.parse(reply) == action


@pytest.mark.parametrize("reply", [
    "SELECT * FROM t",                                     # no action line
    "Action: Operation\nSELECT * FROM t",                  # no sql block
    "Action: Operation\n```sql\n   \n```",                 # empty block
    "Action: Answer\nThe answer is 7",                     # no Final Answer line
    "Action: Answer\nFinal Answer:   ",
    "Action: Run\n```sql\nSELECT 1\n```",
])
def test_bad_formats_are_format_errors(reply):
    assert isinstance(B.parse(reply), FormatError)


@pytest.mark.parametrize("action", [Action("sql", "SELECT `a b` FROM \"t\" WHERE x = 'a;b'"),
                                    Action("answer", '["x", 1, null]'), Action("answer", "[]")])
def test_render_parses_back(action):
    for thought in ("", "I look at the table first."):
        assert B.parse(B.render(thought, action)) == action


def test_prompt_shape_and_engine(agentbench):
    task = B.load_tasks(str(agentbench / "dbbench" / "dev.jsonl"))[0]
    turns = B.prompt(task)
    assert [(t["from"], t["loss"]) for t in turns] == [("human", None), ("gpt", False), ("human", None)]
    assert turns[1]["value"] == "Ok." and "SQLite" in turns[0]["value"] and '"my table"' in turns[0]["value"]
    assert turns[2]["value"] == task.instruction
    assert task.instruction.startswith("What is the Presentation of Credentials")
    assert task.instruction.endswith("Termination of Mission,Appointed by.")


def test_prompt_names_mysql_on_the_server_backend(mariadb, agentbench):
    builder = DbBuilder(MariadbBackend(mariadb))
    task = builder.load_tasks(str(agentbench / "dbbench" / "dev.jsonl"))[0]
    assert "MySQL" in builder.prompt(task)[0]["value"] and "`my table`" in builder.prompt(task)[0]["value"]


GOOD = {"description": "How many?", "label": ["2"], "type": ["counting"],
        "table": {"table_name": "t", "table_info": {"columns": [{"name": "a", "type": "TEXT"}], "rows": [["x"], ["y"]]}}}


def bad(**change) -> dict:
    entry = json.loads(json.dumps(GOOD))
    for key, value in change.items():
        if value is None:
            del entry[key]
        else:
            entry[key] = value
    return entry


@pytest.mark.parametrize("entry, field, problem", [
    (bad(description=None), "description", "missing"),
    (bad(label="2"), "label", "must be list, got str"),
    (bad(type=[]), "type", "must name the task type"),
    (bad(table={"table_name": "t"}), "table.table_info", "missing"),
    (bad(table={"table_name": "t", "table_info": {"columns": [{"name": "a"}], "rows": [["x", "y"]]}}),
     "table.table_info.rows[0]", "must be a list of 1 values"),
    (bad(table=[GOOD["table"], {"table_name": "u", "table_info": {"columns": [{"name": "a"}], "rows": [[{"x": 1}]]}}]),
     "table[1].table_info.rows[0]", "values must be strings, numbers or null"),
    (bad(type=["INSERT"], label=[]), "label", "must hold the reference statement of this INSERT task"),
    (bad(type=["UPDATE"], label=["UPDATE t SET a = 1"], answer_md5="nope"), "answer_md5", "holds no md5"),
    (bad(sql="SELECT 1"), "sql", "must be an object with a string 'query'"),
    (bad(instruction_source="imported"), "instruction_source", "'imported' is not one of"),
])
def test_bad_task_files_name_file_line_and_field(tmp_path, entry, field, problem):
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(entry) + "\n")
    where = rf"tasks.jsonl:2: task 1: {re.escape(field)}: {re.escape(problem)}"
    with pytest.raises(TaskFileError, match=where) as info:
        B.load_tasks(str(path))
    assert (info.value.path, info.value.line, info.value.index, info.value.field) == (str(path), 2, 1, field)


def test_bad_task_file_through_the_cli_is_one_clear_line(tmp_path, capsys):
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps(GOOD) + "\n{not json\n")
    code = main(["build", "db", "--tasks", str(path), "--policy", "reference", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code != 0 and f"{path}:2: not valid JSON" in err and "Traceback" not in err


def test_task_list_files_and_multi_table_tasks(tmp_path):
    entry = bad(table=[GOOD["table"], {"table_name": "u", "table_info": {
        "columns": [{"name": "a", "type": "TEXT"}, {"name": "n", "type": "INT"}], "rows": [["x", 1]]}}],
        type=["UPDATE"], label=["UPDATE u SET n = n + 1"])
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps([GOOD, entry]))
    tasks = B.load_tasks(str(path))
    assert len(tasks) == 2 and "t (a); u (a, n)" in tasks[1].instruction
    done = Action("answer", "[]")
    for actions, reward in (([Action("sql", "UPDATE u SET n = n + 1"), done], 1.0),
                            ([Action("sql", "UPDATE u SET n = n + 2"), done], 0.0),
                            ([Action("sql", "UPDATE u SET n = n + 1"), Action("sql", "DELETE FROM t"), done], 0.0)):
        with B.open_env(tasks[1]) as env:
            env.reset()
            for a in actions[:-1]:
                env.step(a)
            assert env.score(done).reward == reward


def test_embedded_tasks_are_the_packages_own_questions_and_changes_over_small_tables():
    tasks = B.load_tasks("embedded")
    kinds = Counter(t.payload["category"] for t in tasks)
    assert len(tasks) >= 40 and {t.source for t in tasks} == {"package"}
    assert all(kinds[k] >= 5 for k in ("counting", "comparison", "ranking", "other", "INSERT", "UPDATE", "DELETE"))
    assert {k.removeprefix("aggregation-") for k in kinds if k.startswith("aggregation-")} == {"SUM", "AVG", "MIN", "MAX"}
    assert len({t.instruction for t in tasks}) == len(tasks) and len({t.task_id for t in tasks}) == len(tasks)
    assert all(t.task_id.startswith("db-embedded-") for t in tasks)
    tables = [table for t in tasks for table in t.payload["tables"]]
    assert all(3 <= len(t["columns"]) <= 8 and 5 <= len(t["rows"]) <= 20 for t in tables)
    assert len({t["name"] for t in tables}) >= 4
    for t in tasks:  # questions: reference SQL and label; changes: the statement and AgentBench's table hash
        assert t.payload["reference"]
        assert t.payload["label"] if t.payload["kind"] == "query" else t.payload["answer_md5"], t.task_id


def make_text2sql(root: Path, shape: str) -> Path:
    """A tiny Spider- or BIRD-style set: two databases and four questions (one with broken gold SQL)."""
    folder = root / ("database" if shape == "spider" else "dev_databases")
    for db_id, rows in (("concert", [("Ann", 1990), ("Bo", 1985), ("Cy", 1990)]), ("zoo", [("lion", 3)])):
        (folder / db_id).mkdir(parents=True)
        con = sqlite3.connect(folder / db_id / f"{db_id}.sqlite")
        con.execute("CREATE TABLE singer (name TEXT, born INTEGER)" if db_id == "concert"
                    else "CREATE TABLE animal (kind TEXT, age INTEGER)")
        con.executemany(f"INSERT INTO {'singer' if db_id == 'concert' else 'animal'} VALUES (?, ?)", rows)
        con.commit()
        con.close()
    key = "query" if shape == "spider" else "SQL"
    items = [
        {"db_id": "concert", "question": "How many singers are there?", key: "SELECT count(*) FROM singer"},
        {"db_id": "concert", "question": "Who was born in 1990?", key: "SELECT name FROM singer WHERE born = 1990"},
        {"db_id": "zoo", "question": "How old is the lion?", key: "SELECT age FROM animal WHERE kind = 'lion'"},
        {"db_id": "zoo", "question": "Broken?", key: "SELECT nothing FROM nowhere"},
    ]
    if shape == "bird":
        items[0]["evidence"] = "singers are rows of singer"
    path = root / "dev.json"
    path.write_text(json.dumps(items))
    return path


@pytest.mark.parametrize("shape", ["spider", "bird"])
def test_text2sql_sets_derive_tasks(tmp_path, shape, capsys):
    path = make_text2sql(tmp_path, shape)
    tasks = B.load_tasks(str(path))
    assert [t.source for t in tasks] == ["task_derivation"] * 4
    assert "The name of this table is singer, and the headers of this table are name,born." in tasks[0].instruction
    assert ("Hint: singers are rows of singer" in tasks[0].instruction) == (shape == "bird")
    assert B.expected_answer(tasks[1]) == ["Ann", "Cy"]
    out = tmp_path / "out"
    assert main(["build", "db", "--tasks", str(path), "--policy", "reference", "--out", str(out)]) == 0
    rewards = {r["instruction"].split("\n")[0]: r["reward"] for r in iter_records(out, "all", "db")}
    assert rewards == {"How many singers are there?": 1.0, "Who was born in 1990?": 1.0, "How old is the lion?": 1.0,
                       "Broken?": 0.0}
    # The episode's copy is private: deleting from it leaves the user's file alone.
    with B.open_env(tasks[0]) as env:
        env.reset()
        env.step(Action("sql", "DELETE FROM singer"))
    con = sqlite3.connect(tmp_path / ("database" if shape == "spider" else "dev_databases") / "concert" / "concert.sqlite")
    assert con.execute("SELECT COUNT(*) FROM singer").fetchone() == (3,)
    con.close()


def test_text2sql_on_mariadb_copies_the_tables_with_types(tmp_path, mariadb):
    builder = DbBuilder(MariadbBackend(mariadb))
    tasks = builder.load_tasks(str(make_text2sql(tmp_path, "spider")))
    assert [builder.expected_answer(t) for t in tasks] == [[3], ["Ann", "Cy"], [3], None]
    actions = builder.reference_actions(tasks[0])
    with builder.open_env(tasks[0]) as env:
        env.reset()
        assert env.step(actions[0]).observation == "[(3,)]"
        assert env.score(actions[1]).reward == 1.0


def test_text2sql_errors_name_the_item(tmp_path):
    path = make_text2sql(tmp_path, "spider")
    items = json.loads(path.read_text())
    items[2]["db_id"] = "missing"
    path.write_text(json.dumps(items, indent=1))
    line = [n for n, text in enumerate(path.read_text().splitlines(), 1) if text == " {"][2]  # where item 2 starts
    where = rf"dev.json:{line}: task 2: db_id: database file .*missing.sqlite not found"
    with pytest.raises(TaskFileError, match=where) as info:
        B.load_tasks(str(path))
    assert (info.value.path, info.value.line, info.value.index, info.value.field) == (str(path), line, 2, "db_id")
    items[2] = {"db_id": "zoo", "question": "Q"}
    path.write_text(json.dumps(items, indent=1))
    with pytest.raises(TaskFileError, match=rf"dev.json:{line}: task 2: query: .*Spider's 'query', BIRD's 'SQL'"):
        B.load_tasks(str(path))


def test_text2sql_without_databases_is_a_file_error(tmp_path):
    path = tmp_path / "dev.json"
    path.write_text(json.dumps([{"db_id": "zoo", "question": "Q", "query": "SELECT 1"}]))
    with pytest.raises(TaskFileError, match="dev.json: no database folder found beside it") as info:
        B.load_tasks(str(path))
    assert (info.value.path, info.value.line, info.value.index, info.value.field) == (str(path), None, None, None)
    with pytest.raises(TaskFileError, match=r"dev.json: --databases .*nowhere: no such folder"):
        DbBuilder(databases=tmp_path / "nowhere").load_tasks(str(path))


def test_same_rows_same_hash_on_both_backends_for_odd_values(mariadb):
    """Unicode, quotes, backslashes, empty strings, NULL and numbers survive both engines identically."""
    table = {"name": "odd", "columns": [{"name": "v", "type": "TEXT"}],
             "rows": [["ünï"], ["it's"], ['a\\nb'], [""], [None], [7], [1.5], ["  pad  "]]}
    rows = []
    for backend in (SqliteBackend(), MariadbBackend(mariadb)):
        db = backend.open([table], None)
        try:
            rows.append(sorted(db.read_table("odd", ["v"]), key=repr))
        finally:
            db.close()
    assert rows[0] == rows[1]
