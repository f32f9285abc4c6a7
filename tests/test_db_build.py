"""``agentinstruct build db`` end to end: the engine, the real OpenAI client against a scripted server, both backends,
hostile SQL from the model, self-instruct, and resume after kill -9."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from conftest import AGENTBENCH
from kill_harness import kill_at, run_cli
from openai_stub import OpenAIStub

from agentinstruct.builders.db.backends import MariadbBackend
from agentinstruct.builders.db.builder import DbBuilder
from agentinstruct.cli import main
from agentinstruct.collection.journal import journal_path
from agentinstruct.collection.runner import THOUGHT_PROMPT
from agentinstruct.datasetdir.layout import iter_records
from agentinstruct.records.validation import validate_paths

DEV = AGENTBENCH / "dbbench" / "dev.jsonl"
THOUGHT = "I look at what the table holds and take the step the task needs."


def backend_options(backend: str, request) -> list[str]:
    if backend == "sqlite":
        return []
    address = request.getfixturevalue("mariadb")
    return ["--backend", "mariadb", "--db-url", f"mysql://{address.user}@{address.host}:{address.port}"]


def records(out: Path, config: str = "all") -> dict[str, dict]:
    return {r["task_id"]: r for r in iter_records(out, config, "db")}


def observations(record: dict) -> list[str]:
    return [t["value"] for t in record["conversations"][3:] if t["from"] == "human"]


def scripted(tasks) -> callable:
    """A model that solves the dev tasks: looks at the table, makes the change, answers the gold label.

    Every fifth task starts with a reply in no known format (a counted format error)."""
    by_question = {t.instruction: t for t in tasks}

    def respond(messages: list[dict]) -> str:
        if messages[0]["content"].startswith(THOUGHT_PROMPT.split("\n", 1)[0]):
            return THOUGHT
        task = by_question[messages[2]["content"]]
        mysql = "MySQL" in messages[0]["content"]
        table = task.payload["tables"][0]["name"]
        name = f"`{table.replace('`', '``')}`" if mysql else '"' + table.replace('"', '""') + '"'
        script = [f"First I count the rows.\nAction: Operation\n```sql\nSELECT COUNT(*) FROM {name};\n```"]
        if task.payload["kind"] == "modification":
            script.append(f"Now the change.\nAction: Operation\n```sql\n{task.payload['reference']}\n```")
            script.append("The table is changed.\nAction: Answer\nFinal Answer: []")
        else:
            script.append("I know the answer.\nAction: Answer\nFinal Answer: " + json.dumps(task.payload["label"]))
        if len(task.instruction) % 5 == 0:
            script.insert(0, "Let me think about which rows matter here.")
        step = sum(1 for m in messages[3:] if m["role"] == "assistant")
        return script[min(step, len(script) - 1)]

    return respond


@pytest.fixture(scope="module")
def dev_tasks():
    if not DEV.exists():
        pytest.skip(f"AgentBench data not found at {DEV}")
    return DbBuilder().load_tasks(str(DEV))


@pytest.mark.parametrize("backend", ["sqlite", "mariadb"])
def test_reference_build_of_the_dev_tasks(backend, dev_tasks, tmp_path, request, capsys):
    out = tmp_path / "out"
    with OpenAIStub(lambda messages: THOUGHT) as stub:
        code = main(["build", "db", "--tasks", str(DEV), "--policy", "reference", "--model", "stub", "--base-url",
                     stub.url, "--out", str(out), *backend_options(backend, request)])
    assert code == 0, capsys.readouterr()
    scored = records(out)
    assert len(scored) == 60
    kept = {k for k, r in scored.items() if r["filter"]["kept"]}
    # 40 modifications + the questions whose AgentBench `sql` reproduces the gold (see test_db_dev.QUERY_OUTCOME).
    assert len(kept) == (44 if backend == "sqlite" else 45)
    assert all(r["instruction_source"] == "task_derivation" for r in scored.values())
    assert all(r["env"] == {"name": "dbbench", "version": "1.0", "backend": backend} for r in scored.values())
    sample = next(r for r in scored.values() if r["filter"]["kept"])
    turns = sample["conversations"]
    assert [t["from"] for t in turns[:3]] == ["human", "gpt", "human"] and turns[1] == {
        "from": "gpt", "value": "Ok.", "loss": False}
    assert turns[3]["value"].startswith(THOUGHT + "\nAction: Operation\n```sql\n")
    assert turns[-1]["value"].startswith(THOUGHT + "\nAction: Answer\nFinal Answer: ")
    assert validate_paths([out]).ok


@pytest.mark.parametrize("backend", ["sqlite", "mariadb"])
def test_reference_build_of_the_embedded_tasks_scores_1_on_every_task(backend, tmp_path, request, capsys):
    out = tmp_path / "out"
    # No --tasks: the db split ships its own tasks, and a build takes them by default.
    code = main(["build", "db", "--policy", "reference", "--out", str(out), *backend_options(backend, request)])
    assert code == 0, capsys.readouterr()
    scored = records(out)
    assert set(scored) == {t.task_id for t in DbBuilder().load_tasks("embedded")}
    assert all(r["reward"] == 1.0 and r["filter"]["kept"] for r in scored.values())
    changes = [r for r in scored.values() if r["reward_details"]["metric"] == "table_hash"]
    # The shipped answer_md5 (AgentBench's MySQL hash) holds on both engines: they store the same cells.
    assert len(changes) >= 15 and all(
        {c["name"]: c["value"] for c in r["reward_details"]["components"]}["answer_md5_agrees"] == 1.0
        for r in changes)
    assert yaml.safe_load((out / "builds" / "db.yaml").read_text())["tasks"] == "embedded"
    assert validate_paths([out]).ok


@pytest.mark.parametrize("backend", ["sqlite", "mariadb"])
def test_scripted_model_solves_the_dev_tasks(backend, dev_tasks, tmp_path, request, capsys):
    out = tmp_path / "out"
    with OpenAIStub(scripted(dev_tasks)) as stub:
        code = main(["build", "db", "--tasks", str(DEV), "--model", "stub", "--base-url", stub.url, "--concurrency",
                     "8", "--out", str(out), *backend_options(backend, request)])
    assert code == 0, capsys.readouterr()
    scored = records(out)
    assert len(scored) == 60 and all(r["reward"] == 1.0 and r["filter"]["kept"] for r in scored.values())
    assert all(r["instruction_source"] == "train_split" for r in scored.values())
    slow_starts = [t for t in dev_tasks if len(t.instruction) % 5 == 0]
    assert slow_starts and all(scored[t.task_id]["reward_details"]["format_errors"] == 1 for t in slow_starts)
    first = scored[dev_tasks[3].task_id]
    assert observations(first)[0] == "[(40,)]"


def hostile_tasks(path: Path, attacks: list[list[str]]) -> None:
    """One INSERT task per attack (and a control task at index 0 that does the insert)."""
    lines = []
    for n in range(len(attacks)):
        lines.append(json.dumps({
            "description": f"Task {n}: insert the row ('new', 'row') into Secrets.", "type": ["INSERT"],
            "label": ["INSERT INTO Secrets (a, b) VALUES ('new', 'row')"],
            "table": {"table_name": "Secrets", "table_info": {
                "columns": [{"name": "a", "type": "TEXT"}, {"name": "b", "type": "TEXT"}],
                "rows": [[str(i), f"s{i}"] for i in range(30)]}}}))
    path.write_text("\n".join(lines) + "\n")


def hostile(attacks: list[list[str]]) -> callable:
    def respond(messages: list[dict]) -> str:
        n = int(messages[2]["content"].split(":")[0].split()[1])
        step = sum(1 for m in messages[3:] if m["role"] == "assistant")
        if step < len(attacks[n]):
            return f"Trying something.\nAction: Operation\n```sql\n{attacks[n][step]}\n```"
        return "Done.\nAction: Answer\nFinal Answer: []"
    return respond


CROSS = "SELECT COUNT(*) FROM Secrets a, Secrets b, Secrets c, Secrets d, Secrets e, Secrets f, Secrets g"


def test_hostile_sql_on_sqlite_is_contained_and_scores_0(tmp_path, capsys):
    stolen = tmp_path / "stolen.db"
    attacks = [
        ["INSERT INTO Secrets (a, b) VALUES ('new', 'row')"],  # control
        [f"ATTACH DATABASE '{stolen}' AS s", "CREATE TABLE s.copy AS SELECT * FROM Secrets"],
        [f"VACUUM INTO '{stolen}'"],
        [CROSS, "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT COUNT(*) FROM r"],
        ["DROP TABLE Secrets"],
        ["PRAGMA writable_schema = 1", "DELETE FROM sqlite_master"],
        ["SELECT load_extension('/lib/x86_64-linux-gnu/libc.so.6')", "SELECT length(randomblob(2000000000))"],
        ["INSERT INTO Secrets (a, b) VALUES ('new', 'row'); DROP TABLE Secrets"],
    ]
    hostile_tasks(tmp_path / "tasks.jsonl", attacks)
    out = tmp_path / "out"
    started = time.monotonic()
    with OpenAIStub(hostile(attacks)) as stub:
        code = main(["build", "db", "--tasks", str(tmp_path / "tasks.jsonl"), "--model", "stub", "--base-url",
                     stub.url, "--statement-timeout", "1", "--concurrency", "4", "--out", str(out)])
    assert code == 0, capsys.readouterr()
    assert time.monotonic() - started < 60
    scored = sorted(records(out).values(), key=lambda r: r["instruction"])
    assert [r["reward"] for r in scored] == [1.0] + [0.0] * (len(attacks) - 1)
    seen = "\n".join(o for r in scored for o in observations(r))
    assert "not authorized" in seen and "interrupted" in seen and "too big" in seen and "one statement" in seen
    assert not stolen.exists()


def test_hostile_sql_on_mariadb_is_contained_and_scores_0(mariadb, tmp_path, capsys):
    attacks = [
        ["INSERT INTO Secrets (a, b) VALUES ('new', 'row')"],  # control
        ["SELECT LOAD_FILE('/etc/passwd')", "SELECT * FROM Secrets INTO OUTFILE '/tmp/agentinstruct-stolen.txt'",
         "LOAD DATA INFILE '/etc/passwd' INTO TABLE Secrets", "LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE Secrets"],
        [CROSS, "SET STATEMENT max_statement_time = 0 FOR SELECT SLEEP(60)"],
        ["SHOW DATABASES", "SELECT * FROM mysql.user", "DROP DATABASE mysql", "DROP TABLE Secrets"],
        ["SET GLOBAL max_connections = 1", "GRANT ALL ON *.* TO CURRENT_USER()", "CREATE USER 'evil'@'%'"],
        ["INSERT INTO Secrets (a, b) VALUES ('new', 'row'); DROP TABLE Secrets"],
    ]
    hostile_tasks(tmp_path / "tasks.jsonl", attacks)
    backend = MariadbBackend(mariadb)
    with backend.admin() as con, con.cursor() as cur:
        cur.execute("SELECT user, host FROM mysql.user ORDER BY user, host")
        users_before = cur.fetchall()
    out = tmp_path / "out"
    started = time.monotonic()
    with OpenAIStub(hostile(attacks)) as stub:
        code = main(["build", "db", "--tasks", str(tmp_path / "tasks.jsonl"), "--model", "stub", "--base-url",
                     stub.url, "--statement-timeout", "1", "--concurrency", "4", "--out", str(out),
                     "--backend", "mariadb", "--db-url", f"mysql://root@127.0.0.1:{mariadb.port}"])
    assert code == 0, capsys.readouterr()
    assert time.monotonic() - started < 60
    scored = sorted(records(out).values(), key=lambda r: r["instruction"])
    assert [r["reward"] for r in scored] == [1.0] + [0.0] * (len(attacks) - 1)
    files = observations(scored[1])
    assert files[0] == "[(None,)]" and all(o.startswith("Error: ") for o in files[1:])
    assert "interrupted" in observations(scored[2])[0] and "interrupted" in observations(scored[2])[1]
    assert all("ai_ep_" in o or "information_schema" in o for o in observations(scored[3])[:1])
    assert not Path("/tmp/agentinstruct-stolen.txt").exists()
    with backend.admin() as con, con.cursor() as cur:
        cur.execute("SELECT user, host FROM mysql.user ORDER BY user, host")
        assert cur.fetchall() == users_before
        cur.execute("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'ai\\_ep\\_%'")
        assert cur.fetchall() == ()
        cur.execute("SELECT @@global.max_connections")
        assert cur.fetchone()[0] != 1


def self_instruct_model(messages: list[dict]) -> str:
    """Answers self-instruct requests by task type: valid tasks, failing SQL, prose, duplicates, no-op changes."""
    prompt = messages[0]["content"]
    if not prompt.startswith("Write one new task"):  # an episode on a self-instructed task
        return "I know it.\nAction: Answer\nFinal Answer: [2]"
    topic = prompt.split("Topic: ")[1].split(".")[0]
    kind = prompt.split("Task type: ")[1].split(".")[0]
    table = {"table_name": "Club Members", "table_info": {
        "columns": [{"name": "Name", "type": "TEXT"}, {"name": "Age", "type": "TEXT"}],
        "rows": [["Ann", "31"], ["Bo", "25"], ["Cy", "40"], ["Di", "25"], ["Eve", "33"], ["Fay", "29"]]}}
    task = {"description": "How many members are 25?", "type": [kind], "table": table,
            "sql": "SELECT COUNT(*) FROM `Club Members` WHERE Age = '25'"}
    if kind == "aggregation-SUM":
        task["sql"] = "SELECT SUM(Height) FROM `Club Members`"
    elif kind == "aggregation-MAX":
        return "Sure! Here is a great task about " + topic
    elif kind in ("aggregation-AVG", "ranking", "comparison", "other"):
        task["sql"] = "SELECT * FROM `Club Members`"   # twelve values: too many for an answer
    elif kind == "INSERT":
        task.update(description=f"Add Ed, 52, to the members ({topic}).",
                    sql="INSERT INTO `Club Members` (Name, Age) VALUES ('Ed', '52')")
    elif kind == "UPDATE":
        task.update(description="Make Zed 30.", sql="UPDATE `Club Members` SET Age = '30' WHERE Name = 'Zed'")
    elif kind == "DELETE":
        task.update(description="Remove the members aged 25.", sql="DELETE FROM `Club Members` WHERE Age = '25'")
    return "Here it is:\n```json\n" + json.dumps(task) + "\n```"


def test_self_instruct_keeps_only_tasks_whose_sql_runs_and_resumes(tmp_path, capsys):
    tasks_file = tmp_path / "db-self.jsonl"
    with OpenAIStub(self_instruct_model) as stub:
        base = ["self-instruct", "db", "--model", "stub", "--base-url", stub.url, "--concurrency", "1",
                "--out", str(tasks_file)]
        assert main([*base, "--n", "3"]) == 0
        report = capsys.readouterr().out
        assert ("3 tasks in the file (3 new from 11 requests); rejected: answer size 4, sql fails 1, not JSON 1, "
                "near-duplicate 1, sql changes nothing 1") in report
        entries = [json.loads(line) for line in tasks_file.read_text().splitlines()]
        assert [e["type"][0] for e in entries] == ["counting", "INSERT", "DELETE"]
        assert entries[0]["label"] == [2]
        assert entries[1]["label"] == ["INSERT INTO `Club Members` (Name, Age) VALUES ('Ed', '52')"]
        assert entries[1]["answer_md5"].startswith("[('") and all(e["instruction_source"] == "self_instruct"
                                                                   for e in entries)
        # Resuming asks only for the missing task and keeps the three.
        assert main([*base, "--n", "4"]) == 0
        entries_after = [json.loads(line) for line in tasks_file.read_text().splitlines()]
        assert entries_after[:3] == entries and len(entries_after) == 4
    tasks = DbBuilder().load_tasks(str(tasks_file))
    assert all(t.source == "self_instruct" for t in tasks)
    out = tmp_path / "out"
    assert main(["build", "db", "--tasks", str(tasks_file), "--policy", "reference", "--out", str(out)]) == 0
    assert all(r["reward"] == 1.0 for r in records(out).values())


def test_build_with_self_instructed_tasks_keeps_them_beside_the_data(tmp_path, capsys):
    out = tmp_path / "out"
    with OpenAIStub(self_instruct_model) as stub:
        args = ["build", "db", "--tasks", "self-instruct", "--n", "3", "--model", "stub", "--base-url", stub.url,
                "--concurrency", "1", "--out", str(out)]
        assert main(args) == 0
        scored = records(out)
        assert len(scored) == 3 and all(r["instruction_source"] == "self_instruct" for r in scored.values())
        # The counting task (gold 2) is answered right by the scripted model; the changes are not made.
        assert sorted(r["reward"] for r in scored.values()) == [0.0, 0.0, 1.0]
        store = out / "tasks" / "db-self-instruct.jsonl"
        assert len(store.read_text().splitlines()) == 3
        requests = len(stub.requests)
        assert main(args) == 0  # resumed: the stored tasks are reused, nothing is asked again
        assert len(stub.requests) == requests
    assert "using the tasks already in" in capsys.readouterr().err


def comparable(out: Path, config: str = "all") -> list[dict]:
    return sorted(({k: v for k, v in r.items() if k != "created_at"} for r in iter_records(out, config, "db")),
                  key=lambda r: int(r["id"].split("_")[1]))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "mariadb"])
def test_kill_9_mid_build_then_resume_gives_the_uninterrupted_record_set(backend, dev_tasks, tmp_path, request):
    options = backend_options(backend, request)
    with OpenAIStub(scripted(dev_tasks), latency=0.03) as stub:
        def args(out: Path) -> list[str]:
            return ["build", "db", "--tasks", str(DEV), "--model", "stub", "--base-url", stub.url, "--concurrency",
                    "4", "--seed", "5", "--out", str(out), *options]

        clean, killed = tmp_path / "clean", tmp_path / "killed"
        outputs = [run_cli(args(clean)).communicate(timeout=300)]
        kills, crashed = kill_at(args(killed), killed, "db", (8, 30))
        outputs += crashed
        assert kills == 2, "the build finished before it could be killed; raise the stub latency"
        if backend == "mariadb":
            assert leftovers(request) > 0, "episodes killed mid-way leave their databases"
        final = run_cli(args(killed))
        outputs.append(final.communicate(timeout=300))
        assert final.returncode == 0, outputs[-1]
        assert "60 scored" in outputs[-1][0]
    assert comparable(killed) == comparable(clean)
    assert comparable(killed, "default") == comparable(clean, "default")
    entries = [json.loads(x) for x in journal_path(killed, "db").read_text().splitlines()]
    finished = [e["id"] for e in entries if e["kind"] == "finished"]
    assert sorted(finished) == sorted(f"{r['task_id']}#0" for r in comparable(killed))  # journal keys: task#attempt
    if backend == "mariadb":
        assert leftovers(request) == 0  # the resumed run swept them when it started


def leftovers(request) -> int:
    """Episode databases and users on the test server."""
    import pymysql

    address = request.getfixturevalue("mariadb")
    with pymysql.connect(host=address.host, port=address.port, user=address.user) as con, con.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name LIKE 'ai\\_ep\\_%'")
        databases = cur.fetchone()[0]
        cur.execute("SELECT COUNT(*) FROM mysql.user WHERE user LIKE 'ai\\_ep\\_%'")
        return databases + cur.fetchone()[0]
