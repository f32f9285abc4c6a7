"""AgentBench's 60 dev DB tasks, unchanged, on both backends: reference runs, right and wrong answers, table hashes.

Of the 60 dev tasks, 40 are modifications (INSERT/UPDATE) whose ``label`` is the reference statement and 20 are
questions with a ``sql`` field. The questions' labels are WikiSQL/WikiTQ gold answers, not the output of that
``sql``: most of those statements are broken or answer something else, so only a few reach reward 1 when the
reference is executed. ``QUERY_OUTCOME`` records, per task line, why.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agentinstruct.builders.base import Action, Task
from agentinstruct.builders.db.backends import MariadbBackend, SqliteBackend
from agentinstruct.builders.db.builder import DbBuilder
from agentinstruct.builders.db.reward import agentbench_md5

PASS_BOTH = "pass"
# line index in dev.jsonl -> what executing its `sql` gives, on sqlite / on mariadb
QUERY_OUTCOME = {
    0: ("error", "error"),        # unquoted column with spaces: syntax error
    1: ("wrong", "wrong"),        # returns the whole cell 'Checco D\'Angelo\n "Jimmy"', gold is the name only
    2: ("error", "error"),        # sqlite: MySQL's \' escape; mariadb: column weeks_at_No_1 does not exist
    3: (PASS_BOTH, PASS_BOTH),
    4: (PASS_BOTH, PASS_BOTH),
    5: ("wrong", "wrong"),        # counts 2 rows, gold says 17
    6: ("error", "error"),        # the column is "Wrestler:", not Wrestler
    7: ("wrong", "error"),        # sqlite compares the text column Goal with 17 as text; MySQL refuses 'table'
    8: ("error", "error"),        # "AverageFROM": missing spaces
    9: (PASS_BOTH, PASS_BOTH),    # no rows, gold ["none"]
    10: ("wrong", PASS_BOTH),     # `Frequency MHz` < 107.7 on a TEXT column: text order in SQLite, numbers in MySQL
    11: ("error", "error"),       # the table is named `table`, unquoted: syntax error
    12: ("wrong", "wrong"),       # selects Player, gold is a number of touchdowns
    13: ("error", "error"),       # "DESCLIMIT": missing space
    14: (PASS_BOTH, PASS_BOTH),
    15: ("wrong", "wrong"),       # sums 5, gold 1.0
    16: ("wrong", "wrong"),       # MIN over text gives '13', gold 5.0
    17: ("wrong", "wrong"),       # MAX gives '5', gold none
    18: ("error", "error"),       # table Baseball_Team_Record does not exist (it has spaces)
    19: ("error", "error"),       # "Olympic_medal_countsWHERE": missing space
}


@pytest.fixture(params=["sqlite", "mariadb"])
def builder(request) -> DbBuilder:
    if request.param == "sqlite":
        return DbBuilder(SqliteBackend())
    return DbBuilder(MariadbBackend(request.getfixturevalue("mariadb")))


@pytest.fixture
def dev_tasks(agentbench) -> list[Task]:
    return DbBuilder().load_tasks(str(agentbench / "dbbench" / "dev.jsonl"))


def play(builder: DbBuilder, task: Task, actions: list[Action]):
    """One episode the way the engine drives it: reset, every action until the final one, score."""
    with builder.open_env(task) as env:
        env.reset()
        observations = []
        for action in actions:
            if builder.is_final(action):
                break
            observations.append(env.step(action).observation)
        return env.score(actions[-1] if builder.is_final(actions[-1]) else None), observations


def test_dev_file_loads_unchanged(dev_tasks):
    assert len(dev_tasks) == 60
    kinds = [t.payload["kind"] for t in dev_tasks]
    assert kinds.count("modification") == 40 and kinds.count("query") == 20
    assert all(t.payload["reference"] for t in dev_tasks)
    assert len({t.task_id for t in dev_tasks}) == 60
    # The one empty column name (line 5) gets a name every backend accepts, and the table text says so.
    assert dev_tasks[5].payload["tables"][0]["columns"][0]["name"] == "column_1"
    assert "column_1" in dev_tasks[5].instruction


def test_reference_policy_on_dev_tasks(builder, dev_tasks):
    column = 0 if builder.backend == "sqlite" else 1
    outcome = {}
    for n, task in enumerate(dev_tasks):
        actions = builder.reference_actions(task)
        score, observations = play(builder, task, actions)
        if observations[0].startswith("Error"):
            # A failing reference is executed and the episode ends unanswered: reward 0, never an exception.
            assert len(actions) == 1 and score.reward == 0.0
            outcome[n] = "error"
        else:
            outcome[n] = PASS_BOTH if score.reward == 1.0 else "wrong"
        assert score.success == (score.reward == 1.0)
    modifications = [n for n, t in enumerate(dev_tasks) if t.payload["kind"] == "modification"]
    assert all(outcome[n] == PASS_BOTH for n in modifications), {n: outcome[n] for n in modifications}
    assert {n: outcome[n] for n in QUERY_OUTCOME} == {n: o[column] for n, o in QUERY_OUTCOME.items()}


def test_reference_tables_agree_with_answer_md5(builder, dev_tasks):
    for task in dev_tasks:
        if task.payload["kind"] == "modification":
            expected = builder.expected_tables(task)
            assert expected["error"] is None
            assert expected["answer_md5_match"] is True, task.task_id


def test_table_hashes_do_not_depend_on_the_backend(dev_tasks, mariadb):
    sqlite, server = DbBuilder(SqliteBackend()), DbBuilder(MariadbBackend(mariadb))
    for task in dev_tasks:
        if task.payload["kind"] == "modification":
            assert sqlite.expected_tables(task)["hashes"] == server.expected_tables(task)["hashes"], task.task_id


def test_server_computes_the_same_md5_as_agentbench_did(dev_tasks, mariadb):
    """AgentBench's own hash query, run by MariaDB, equals ours computed in Python from the rows."""
    builder = DbBuilder(MariadbBackend(mariadb))
    for task in dev_tasks[20:]:
        table = task.payload["tables"][0]
        columns = [c["name"] for c in table["columns"]]
        db = builder.open_database(task)
        try:
            db.execute(task.payload["reference"])
            cols = ",".join(f"`{c}`" for c in columns)
            server_md5 = db.execute(
                f"select md5(group_concat(rowhash order by rowhash)) as hash from (SELECT "
                f"substring(MD5(CONCAT_WS(',', {cols})), 1, 5) AS rowhash FROM `{table['name']}`) as sub").rows[0][0]
            assert server_md5 == agentbench_md5(db.read_table(table["name"], columns)) == task.payload["answer_md5"]
        finally:
            db.close()


def test_gold_answers_score_1_and_wrong_answers_0(builder, dev_tasks):
    for task in dev_tasks[:20]:
        label = task.payload["label"]
        assert play(builder, task, [Action("answer", repr(label))])[0].reward == 1.0, task.task_id
        wrong = [label + ["extra"], ["not " + str(label[0])], []]
        for answer in wrong:
            if answer == [] and label == ["none"]:
                continue  # no rows is the right answer there
            score = play(builder, task, [Action("answer", repr(answer))])[0]
            assert score.reward == 0.0 and not score.success, (task.task_id, answer)
        # Never answering scores 0 too.
        assert play(builder, task, [Action("sql", "SELECT 1")])[0].reward == 0.0


def _change_one_cell(backend: str, table: str, column: str) -> str:
    if backend == "sqlite":
        return (f'UPDATE "{table}" SET "{column}" = COALESCE("{column}", \'\') || \'!\' '
                f'WHERE rowid = (SELECT MIN(rowid) FROM "{table}")')
    return f"UPDATE `{table}` SET `{column}` = CONCAT(COALESCE(`{column}`, ''), '!') LIMIT 1"


def test_modification_tasks_detect_a_wrong_row(builder, dev_tasks):
    for task in dev_tasks[20:]:
        table = task.payload["tables"][0]
        name, first = table["name"], table["columns"][0]["name"]
        reference = Action("sql", task.payload["reference"])
        done = Action("answer", "[]")
        assert play(builder, task, [reference, done])[0].reward == 1.0
        # The reference plus one changed cell, the reference plus one extra row, or nothing done: all wrong.
        changed = Action("sql", _change_one_cell(builder.backend, name, first))
        extra = Action("sql", f'INSERT INTO {builder.quote(name)} ({builder.quote(first)}) VALUES (\'zz-extra\')')
        for actions in ([reference, changed, done], [reference, extra, done], [done]):
            score = play(builder, task, actions)[0]
            assert score.reward == 0.0 and score.components["table_match"] == 0.0, (task.task_id, actions)


def test_each_episode_has_its_own_database(builder, dev_tasks):
    task = dev_tasks[20]
    name = builder.quote(task.payload["tables"][0]["name"])
    rows = len(task.payload["tables"][0]["rows"])
    with builder.open_env(task) as one, builder.open_env(task) as two:
        one.reset()
        two.reset()
        assert one.step(Action("sql", f"DELETE FROM {name}")).observation == "[]"
        assert one.step(Action("sql", f"SELECT COUNT(*) FROM {name}")).observation == "[(0,)]"
        assert two.step(Action("sql", f"SELECT COUNT(*) FROM {name}")).observation == f"[({rows},)]"
    with builder.open_env(task) as three:
        three.reset()
        assert three.step(Action("sql", f"SELECT COUNT(*) FROM {name}")).observation == f"[({rows},)]"


def test_identifiers_with_odd_characters(builder, tmp_path: Path):
    names = ['a "quoted" table', "back`tick", "semi;colon -- x", "ünï cødé", "table"]
    lines = []
    for n, name in enumerate(names):
        lines.append(__import__("json").dumps({
            "description": f"How many rows? ({n})", "label": ["2"], "type": ["counting"],
            "table": {"table_name": name, "table_info": {
                "columns": [{"name": name, "type": "TEXT"}, {"name": "x y", "type": "INT"}],
                "rows": [["1", 1], ["2", 2]]}}}))
    path = tmp_path / "odd.jsonl"
    path.write_text("\n".join(lines) + "\n")
    for task in builder.load_tasks(str(path)):
        name = task.payload["tables"][0]["name"]
        q = builder.quote
        sql = f"SELECT COUNT({q(name)}), SUM({q('x y')}) FROM {q(name)}"
        score, observations = play(builder, task, [Action("sql", sql), Action("answer", '["2"]')])
        assert observations[0] in ("[(2, 3)]", "[(2, 3.0)]"), (name, observations)
        assert score.reward == 1.0
