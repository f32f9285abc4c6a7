"""Task sources of the db split beyond AgentBench files: Spider/BIRD-style text-to-SQL sets (task derivation).

A text-to-SQL set is a JSON list of ``{"db_id", "question", "query" (Spider) or "SQL" (BIRD), "evidence"
(BIRD, optional)}`` plus a folder of SQLite databases ``<db_id>/<db_id>.sqlite``. Each pair becomes a question
task whose reference is the gold SQL and whose expected answer is what that SQL returns, as the paper derived
tasks from BIRD: under ``--policy reference`` the trajectory runs the gold SQL and answers with its result while
the model writes the thoughts. Gold SQL of these sets is SQLite's dialect: use the sqlite backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentinstruct.builders.base import Task
from agentinstruct.builders.db.backends import read_sqlite_tables
from agentinstruct.builders.db.tasks import make_task, stable_task_id, table_text
from agentinstruct.builders.taskfile import Entry, TaskFileError, read_task_file

_DATABASE_FOLDERS = ("database", "dev_databases", "train_databases", "test_databases", "databases")


def is_text2sql_file(path: Path) -> bool:
    """Whether ``path`` is a Spider/BIRD question file (a JSON list whose items carry ``db_id``).

    Example:
        >>> _ = Path("dev.json").write_text('[{"db_id": "concert_singer", "question": "How many singers?"}]')
        >>> _ = Path("dev.jsonl").write_text('{"description": "How many rows are in t?", "label": ["2"]}\\n')
        >>> is_text2sql_file(Path("dev.json")), is_text2sql_file(Path("dev.jsonl"))
        (True, False)
    """
    with path.open("rb") as f:
        head = f.read(4096).lstrip()
    return head.startswith(b"[") and b'"db_id"' in head


def _database_folder(path: Path, databases: Path | None) -> Path:
    if databases is not None:
        if not databases.is_dir():
            raise TaskFileError(path, f"--databases {databases}: no such folder")
        return databases
    for name in _DATABASE_FOLDERS:
        if (path.parent / name).is_dir():
            return path.parent / name
    raise TaskFileError(path, f"no database folder found beside it (looked for {', '.join(_DATABASE_FOLDERS)}); "
                        "name it with --databases DIR")


def _schema(sqlite_file: Path) -> list[dict[str, Any]]:
    """Table names and columns of a database file (no rows: the episode copies the file itself)."""
    return [{"name": t["name"], "columns": t["columns"]} for t in read_sqlite_tables(str(sqlite_file))]


def _question(entry: Entry) -> tuple[dict[str, Any], str]:
    """A Spider/BIRD item and its gold SQL, its fields checked."""
    item = entry.item
    if not isinstance(item, dict):
        raise entry.error(None, "must be an object")
    for key in ("db_id", "question"):
        if not isinstance(item.get(key), str) or not item[key].strip():
            raise entry.error(key, "must be a non-empty string")
    sql = item.get("query", item.get("SQL"))
    if not isinstance(sql, str) or not sql.strip():
        raise entry.error("query", "must hold the gold SQL (Spider's 'query', BIRD's 'SQL')")
    return item, sql


def load_text2sql(path: Path, databases: Path | None = None) -> list[Task]:
    """Question tasks (``task_derivation``) from a Spider/BIRD-style JSON file and its SQLite databases.

    Example (a one-question Spider set: ``dev.json`` and its ``database/<db_id>/<db_id>.sqlite``):
        >>> import json, sqlite3
        >>> Path("spider/database/concert_singer").mkdir(parents=True)
        >>> con = sqlite3.connect("spider/database/concert_singer/concert_singer.sqlite")
        >>> _ = con.executescript("CREATE TABLE singer (singer_id INTEGER, name TEXT);"
        ...                       "INSERT INTO singer VALUES (1, 'Joe Sharp');")
        >>> con.close()
        >>> _ = Path("spider/dev.json").write_text(json.dumps([{"db_id": "concert_singer",
        ...     "question": "How many singers do we have?", "query": "SELECT count(*) FROM singer"}]))
        >>> tasks = load_text2sql(Path("spider/dev.json"))
        >>> tasks[0].task_id, tasks[0].source, tasks[0].payload["reference"]
        ('db-dev-00000-...', 'task_derivation', 'SELECT count(*) FROM singer')
        >>> print(tasks[0].instruction)
        How many singers do we have?
        The name of this table is singer, and the headers of this table are singer_id,name.
    """
    entries = read_task_file(path, "task_derivation")
    folder = _database_folder(path, databases)
    schemas: dict[str, list[dict[str, Any]]] = {}
    tasks = []
    for entry in entries:
        item, sql = _question(entry)
        db_id = item["db_id"]
        sqlite_file = folder / db_id / f"{db_id}.sqlite"
        if db_id not in schemas:
            if not sqlite_file.is_file():
                raise entry.error("db_id", f"database file {sqlite_file} not found")
            schemas[db_id] = _schema(sqlite_file)
        question = item["question"].strip()
        evidence = item.get("evidence")
        if isinstance(evidence, str) and evidence.strip():
            question += f"\nHint: {evidence.strip()}"
        payload = {
            "kind": "query",
            "category": str(item.get("difficulty") or item.get("hardness") or "text2sql"),
            "question": question,
            "tables": None,
            "sqlite_file": str(sqlite_file.resolve()),
            "label": None,
            "reference": sql.strip(),
            "answer_md5": None,
            "table_text": table_text(schemas[db_id]),
        }
        # The id hashes what the task says, not where its database file lies on this machine.
        content = {**payload, "sqlite_file": db_id}
        tasks.append(make_task(payload, stable_task_id(f"db-{path.stem}", content, entry.index), entry.source))
    return tasks
