"""The ``db`` split: an agent answers questions about, or modifies, a real SQL database.

Task sources: the embedded tasks (``data/tasks.jsonl``, written for this package), their evaluation part
``embedded-eval`` (AgentBench's dev tasks, ``data/agentbench_dev.jsonl``; refused unless ``--eval-tasks`` is given),
AgentBench DB files (``builders.db_tasks``), Spider/BIRD-style text-to-SQL sets for task derivation and self-instruct
(``builders.db_sources``). Each episode gets a fresh database on the chosen backend
(``builders.db_backends``: SQLite in-process by default, or a MariaDB/MySQL server). The agent runs one SQL
statement per turn (``Action: Operation`` + a sql block) and ends with ``Action: Answer`` + ``Final Answer: [...]``;
database errors come back as observations. Rewards (``builders.db_reward``): a question scores 1 when the final
answer matches the label; a modification scores 1 when the resulting table hashes like the table the reference
statement produces.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import threading
from pathlib import Path
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from agentinstruct.builders.base import (EMBEDDED, Action, Builder, Environment, FormatError, Score, StepResult, Task,
                                         Turn, refuse_evaluation_part)
from agentinstruct.builders.db.backends import (Backend, Database, DbError, Limits, MariadbBackend, Result,
                                                ServerAddress, SqliteBackend)
from agentinstruct.builders.db.reward import agentbench_md5, answers_match, parse_answer, result_values, table_hash
from agentinstruct.builders.db.tasks import load_agentbench
from agentinstruct.builders.options import option
from agentinstruct.collection.selfinstruct import SELF_INSTRUCT, SELF_INSTRUCT_COUNT, self_instructed_tasks

SELF_INSTRUCT_STORE = "tasks/db-self-instruct.jsonl"
"""Where ``build db --tasks self-instruct --out DIR`` keeps the model-written tasks, inside DIR."""
EMBEDDED_TASKS = Path(__file__).parent / "data" / "tasks.jsonl"
"""The embedded tasks: questions and changes over small tables written for this package, in AgentBench's format."""
EMBEDDED_EVAL = "embedded-eval"
EVAL_TASKS = Path(__file__).parent / "data" / "agentbench_dev.jsonl"
"""The evaluation part: AgentBench's 60 DB dev tasks, unchanged (Apache-2.0, ``data/AGENTBENCH_LICENSE``)."""

_ENGINES = {"sqlite": ("SQLite", 'double quotes, like "my table"'),
            "mariadb": ("MySQL", "backticks, like `my table`")}

INSTRUCTIONS = """I will give you a question about a {engine} database, or a change to make to it, and you will work on the database with SQL to solve it.
Before every step, explain what you see and what you plan, and write down your reasoning.
In each turn you either run one SQL statement or give your final answer.
To run a statement, write:
Action: Operation
```sql
SELECT * FROM table WHERE condition;
```
Keep the statement on one line inside the sql block and put nothing else in the block. Only one statement runs per turn, and only the first sql block of your reply is used. I will run it and reply with the raw result, which you have to read yourself.
Quote table and column names that contain spaces or other special characters with {quoting}.
When you are finished, write:
Action: Answer
Final Answer: ["ANSWER1", "ANSWER2", ...]
Only give the final answer when you are sure of it: it must be exactly the correct answer. If the task is to change the database, make the change first; the content of the final answer then does not matter.
A reply that follows neither pattern counts as a failure."""

_ACTION = re.compile(r"Action:\s*(Operation|Answer)\b", re.IGNORECASE)
_SQL_BLOCK = re.compile(r"```sql[ \t]*\n?(.*?)```", re.IGNORECASE | re.DOTALL)
_FINAL = re.compile(r"Final Answer:[ \t]*(.*)")
_FORMAT_HELP = ("Your reply must contain either `Action: Operation` followed by one ```sql code block, or "
                "`Action: Answer` followed by `Final Answer: [...]`.")


def format_result(result: Result) -> str:
    """The observation for a statement's result: the raw rows as Python tuples, as AgentBench showed them.

    Example:
        >>> format_result(Result(("n",), [(28,)])), format_result(Result((), []))
        ('[(28,)]', '[]')
    """
    text = repr(result.rows)
    if result.truncated:
        text += f"\n[only the first {len(result.rows)} rows are shown]"
    return text


def one_line(sql: str) -> str:
    """A statement on one line, as the agent is asked to write it (line breaks become spaces).

    Example:
        >>> one_line("SELECT a\\nFROM t;\\n")
        'SELECT a FROM t;'
    """
    return " ".join(sql.strip().splitlines()).strip()


class DbEnvironment(Environment):
    """One episode: a fresh database holding the task's tables, dropped at the end."""

    def __init__(self, builder: "DbBuilder", task: Task) -> None:
        self.builder = builder
        self.task = task
        self.db: Database | None = None

    def reset(self) -> str | None:
        """Create the episode's database; the question is already in the prompt."""
        self.db = self.builder.open_database(self.task)
        return None

    def step(self, action: Action) -> StepResult:
        """Run one statement; a database error is the observation. An answer ends the episode."""
        if action.kind == "answer":
            return StepResult("", done=True)
        if self.db is None:
            raise RuntimeError("step() before reset()")
        try:
            return StepResult(format_result(self.db.execute(action.argument)))
        except DbError as e:
            return StepResult(f"Error: {e}")

    def score(self, final: Action | None) -> Score:
        """Questions: the final answer against the label. Modifications: the tables against the reference's."""
        payload = self.task.payload
        if payload["kind"] == "query":
            expected = self.builder.expected_answer(self.task)
            if expected is None:
                return Score(0.0, False, "answer_match", {"answer_match": 0.0, "reference_failed": 1.0})
            ok = final is not None and final.kind == "answer" and answers_match(parse_answer(final.argument),
                                                                               expected)
            return Score(float(ok), ok, "answer_match", {"answer_match": float(ok)})
        if self.db is None:
            raise RuntimeError("score() before reset()")
        return self.builder.score_tables(self.task, self.db)

    def close(self) -> None:
        """Drop the episode's database."""
        if self.db is not None:
            self.db.close()
            self.db = None


@dataclass(frozen=True)
class DbOptions:
    """The db split's environment options (the admin password is read from the variable ``db_password_env``
    names, never stored)."""

    backend: str = option("sqlite", "database engine for the episodes (sqlite: in-process)", choices=sorted(_ENGINES))
    db_url: str = option("mysql://root@127.0.0.1:3306", "MariaDB/MySQL server and admin user for --backend mariadb, "
                         "as mysql://USER@HOST:PORT (the password comes from the variable named by --db-password-env)")
    db_password_env: str = option("AGENTINSTRUCT_DB_PASSWORD", "environment variable holding the admin password")
    statement_timeout: float = option(Limits.timeout_s, "seconds one statement may run")
    max_rows: int = option(Limits.max_rows, "rows of a result shown to the agent")
    databases: Path | None = option(None, "folder of <db_id>/<db_id>.sqlite files for Spider/BIRD-style task files "
                                    "(default: database/ or *_databases/ beside the task file)")
    n: int = option(SELF_INSTRUCT_COUNT, "--tasks self-instruct: how many verified tasks to make")
    eval_tasks: bool = option(False, "allow --tasks embedded-eval (AgentBench's DB dev tasks, the evaluation part); "
                              "builds of training data refuse it otherwise")


class DbBuilder(Builder):
    """AgentBench's DB task on SQLite (default) or MariaDB/MySQL."""

    split = "db"
    env_name = "dbbench"
    env_version = "1.0"
    max_turns = 15
    reward_bar = 1.0
    card_description = (
        "SQL against a fresh database holding the task's tables: `Action: Operation` turns with one SQL "
        "statement, then `Action: Answer`, at most 15 turns; reward 1 when the answer matches the reference "
        "query's result (or, for a change, the table's hash afterwards matches)."
    )
    embedded_tasks = True
    Options = DbOptions

    def __init__(self, backend: Backend | None = None, databases: Path | None = None,
                 run: argparse.Namespace | None = None, eval_tasks: bool = False) -> None:
        self._backend = backend or SqliteBackend()
        self.databases = databases
        self.eval_tasks = eval_tasks
        self._run = run  # the build's other options: --tasks self-instruct needs its model, --out and --n
        self._lock = threading.Lock()
        self._answers: dict[str, list[Any] | None] = {}
        self._tables: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------ options
    @classmethod
    def from_options(cls, options: "DbOptions", run: argparse.Namespace | None = None) -> "DbBuilder":
        """Build the backend the options name; ``run`` (the build's other options) feeds ``--tasks self-instruct``."""
        limits = Limits(timeout_s=options.statement_timeout, max_rows=options.max_rows)
        if options.backend == "mariadb":
            backend: Backend = MariadbBackend(
                server_address(options.db_url, os.environ.get(options.db_password_env, "")), limits)
        else:
            backend = SqliteBackend(limits)
        return cls(backend, options.databases, run=run, eval_tasks=options.eval_tasks)

    @property
    def backend(self) -> str:
        """``sqlite`` or ``mariadb``."""
        return self._backend.name

    def quote(self, name: str) -> str:
        """A table or column name quoted for the backend in use.

        Example:
            >>> DbBuilder().quote("my table")
            '"my table"'
        """
        return self._backend.quote(name)

    # ------------------------------------------------------------ tasks
    def load_tasks(self, src: str) -> list[Task]:
        """``embedded`` (the package's own tasks), ``embedded-eval`` (the evaluation part, AgentBench's dev tasks;
        refused unless the builder has ``eval_tasks``), an AgentBench DB file (JSON lines or a JSON list), a
        Spider/BIRD question file, or ``self-instruct`` (``build`` with ``--out`` and a model).

        Example:
            >>> tasks = DbBuilder().load_tasks("embedded")
            >>> len(tasks) >= 40, {t.source for t in tasks}, tasks[0].task_id
            (True, {'package'}, 'db-embedded-00000-...')
            >>> len(DbBuilder(eval_tasks=True).load_tasks("embedded-eval"))
            60
            >>> DbBuilder().load_tasks("embedded-eval")
            Traceback (most recent call last):
            ...
            ValueError: db tasks embedded-eval: ... training data is not built from them (give --eval-tasks to run them anyway)
        """
        from agentinstruct.builders.db.sources import is_text2sql_file, load_text2sql

        if src == EMBEDDED:
            return load_agentbench(EMBEDDED_TASKS, "package", prefix=f"db-{EMBEDDED}")
        if src == EMBEDDED_EVAL:
            if not self.eval_tasks:
                refuse_evaluation_part(self.split, src, "its tasks are AgentBench's DB dev tasks "
                                       "(builders/db/data/agentbench_dev.jsonl), the db evaluation part")
            return load_agentbench(EVAL_TASKS, "package", prefix=f"db-{EMBEDDED_EVAL}")
        if src == SELF_INSTRUCT:
            return self_instructed_tasks(self, self._run, Path(SELF_INSTRUCT_STORE), load_agentbench)
        path = Path(src)
        if not path.is_file():
            raise FileNotFoundError(f"db task source {src}: no such file (give an AgentBench DB .jsonl file or a "
                                    "Spider/BIRD question .json file)")
        if is_text2sql_file(path):
            return load_text2sql(path, self.databases)
        return load_agentbench(path)

    def open_database(self, task: Task) -> Database:
        """A fresh database with the task's tables on this builder's backend."""
        return self._backend.open(task.payload.get("tables"), task.payload.get("sqlite_file"))

    def open_env(self, task: Task) -> Environment:
        """A fresh episode environment (its database is created by ``reset``)."""
        return DbEnvironment(self, task)

    # ------------------------------------------------------------ expected results
    def run_reference(self, task: Task) -> tuple[Result | None, dict[str, list[tuple]] | None, str | None]:
        """Run the task's reference statement on a fresh database: its result, the tables after it, or the error."""
        payload = task.payload
        db = self.open_database(task)
        try:
            try:
                result = db.execute(one_line(payload["reference"]))
            except DbError as e:
                return None, None, str(e)
            tables = {t["name"]: db.read_table(t["name"], [c["name"] for c in t["columns"]])
                      for t in payload.get("tables") or []}
            return result, tables, None
        finally:
            db.close()

    def expected_answer(self, task: Task) -> list[Any] | None:
        """The label, or for a task without one the values its reference query returns (None if it fails)."""
        if task.payload.get("label") is not None:
            return task.payload["label"]
        with self._lock:
            if task.task_id in self._answers:
                return self._answers[task.task_id]
        result, _, error = self.run_reference(task)
        values = None if error or result is None or result.truncated else result_values(result.rows)
        with self._lock:
            self._answers[task.task_id] = values
        return values

    def expected_tables(self, task: Task) -> dict[str, Any]:
        """Hashes of the tables after the reference statement, and whether AgentBench's ``answer_md5`` agrees.

        Returns ``{"hashes": {table: hash} | None, "answer_md5_match": bool | None, "error": str | None}``.
        """
        with self._lock:
            if task.task_id in self._tables:
                return self._tables[task.task_id]
        payload = task.payload
        _, tables, error = self.run_reference(task)
        expected: dict[str, Any] = {"hashes": None, "answer_md5_match": None, "error": error}
        if tables is not None:
            columns = {t["name"]: [c["name"] for c in t["columns"]] for t in payload["tables"]}
            expected["hashes"] = {name: table_hash(columns[name], rows) for name, rows in tables.items()}
            if payload.get("answer_md5") and len(tables) == 1:
                expected["answer_md5_match"] = agentbench_md5(next(iter(tables.values()))) == payload["answer_md5"]
        with self._lock:
            self._tables[task.task_id] = expected
        return expected

    def score_tables(self, task: Task, db: Database) -> Score:
        """Score a modification task: every table must hash like after the reference statement.

        Without a reference that runs, AgentBench's ``answer_md5`` (single table) is the expected state.
        """
        payload = task.payload
        columns = {t["name"]: [c["name"] for c in t["columns"]] for t in payload["tables"]}
        try:
            actual = {name: db.read_table(name, cols) for name, cols in columns.items()}
        except DbError:
            actual = None  # a dropped table or column: the state cannot match
        expected = self.expected_tables(task)
        components: dict[str, float] = {}
        if expected["answer_md5_match"] is not None:
            components["answer_md5_agrees"] = float(expected["answer_md5_match"])
        if expected["hashes"] is not None:
            ok = actual is not None and all(table_hash(columns[n], rows) == expected["hashes"][n]
                                            for n, rows in actual.items())
        elif payload.get("answer_md5") and len(columns) == 1:
            ok = actual is not None and agentbench_md5(next(iter(actual.values()))) == payload["answer_md5"]
        else:
            components["reference_failed"] = 1.0
            ok = False
        components["table_match"] = float(ok)
        return Score(float(ok), ok, "table_hash", components)

    async def self_instruct(self, agent: Any, n: int, out: Path, *, seed: int = 0,
                            concurrency: int = 4) -> tuple[list[Task], Any]:
        """Grow the AgentBench-format file ``out`` to ``n`` model-written, SQL-verified tasks (see
        ``builders.db_selfinstruct``); returns its tasks and a report."""
        from agentinstruct.builders.db.selfinstruct import self_instruct

        return await self_instruct(self, agent, n, out, seed=seed, concurrency=concurrency)

    # ------------------------------------------------------------ conversation
    def prompt(self, task: Task) -> list[Turn]:
        """Instructions, "Ok.", then the question with its table description (THUDM's db shape)."""
        engine, quoting = _ENGINES[self.backend]
        return [
            {"from": "human", "value": INSTRUCTIONS.format(engine=engine, quoting=quoting), "loss": None},
            {"from": "gpt", "value": "Ok.", "loss": False},
            {"from": "human", "value": task.instruction, "loss": None},
        ]

    def parse(self, reply: str) -> Action | FormatError:
        """The first ``Action:`` line decides: Operation takes the first sql block, Answer its Final Answer line.

        Example:
            >>> DbBuilder().parse("Count them.\\nAction: Operation\\n```sql\\nSELECT COUNT(*)\\nFROM t;\\n```")
            Action(kind='sql', argument='SELECT COUNT(*) FROM t;')
            >>> DbBuilder().parse('Done.\\nAction: Answer\\nFinal Answer: ["7"]')
            Action(kind='answer', argument='["7"]')
        """
        action = _ACTION.search(reply)
        if action is None:
            return FormatError(_FORMAT_HELP)
        if action.group(1).lower() == "operation":
            block = _SQL_BLOCK.search(reply)
            sql = one_line(block.group(1)) if block else ""
            if not sql:
                return FormatError("`Action: Operation` needs one SQL statement in a ```sql code block.")
            return Action("sql", sql)
        final = _FINAL.search(reply, action.end())
        if final is None or not final.group(1).strip():
            return FormatError('`Action: Answer` needs a line `Final Answer: ["ANSWER1", ...]`.')
        return Action("answer", final.group(1).strip())

    def is_final(self, action: Action) -> bool:
        """The answer ends the episode."""
        return action.kind == "answer"

    def render(self, thought: str, action: Action) -> str:
        """A gpt turn: the thought, then the action in the format ``parse`` reads.

        Example:
            >>> b = DbBuilder(); a = Action("sql", "SELECT 1;")
            >>> b.parse(b.render("Check.", a)) == a
            True
        """
        head = f"{thought.strip()}\n" if thought.strip() else ""
        if action.kind == "sql":
            return f"{head}Action: Operation\n```sql\n{action.argument}\n```"
        return f"{head}Action: Answer\nFinal Answer: {action.argument}"

    def reference_actions(self, task: Task) -> list[Action]:
        """Run the reference statement, then answer with its result (questions) or an empty answer (changes).

        A reference that fails on this backend gives just the statement: the episode shows the error and ends
        unanswered, so it scores 0 and is dropped with its reason instead of erroring on every resume. Raises
        ValueError when the task has no reference at all.
        """
        payload = task.payload
        if not payload.get("reference"):
            raise ValueError(f"db task {task.task_id} has no reference SQL")
        sql = one_line(payload["reference"])
        if payload["kind"] == "modification":
            return [Action("sql", sql), Action("answer", "[]")]
        result, _, error = self.run_reference(task)
        if error is not None or result is None:
            return [Action("sql", sql)]
        return [Action("sql", sql), Action("answer", json.dumps(result_values(result.rows), ensure_ascii=False))]

    def template_thought(self, task: Task, action: Action) -> str:
        """The thought before a reference action when no model writes one."""
        if action.kind == "answer":
            if task.payload["kind"] == "modification":
                return "The change is made, so the task is complete."
            return "The query result answers the question, so I can give the final answer."
        if task.payload["kind"] == "modification":
            return "I can make the requested change to the table with one statement."
        return "I can get the answer from the table with one query."


def server_address(url: str, password: str) -> ServerAddress:
    """A server address from ``mysql://USER@HOST:PORT``; a password in the URL is refused (use the environment).

    Example:
        >>> server_address("mysql://admin@db.local:3307", "pw")
        ServerAddress(host='db.local', port=3307, user='admin')
    """
    parsed = urlparse(url)
    if parsed.scheme not in ("mysql", "mariadb") or not parsed.hostname:
        raise ValueError(f"--db-url {url!r}: expected mysql://USER@HOST:PORT")
    if parsed.password:
        raise ValueError("--db-url must not carry a password; put it in the variable named by --db-password-env")
    return ServerAddress(host=parsed.hostname, port=parsed.port or 3306, user=parsed.username or "root",
                         password=password)
