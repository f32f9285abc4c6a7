"""Task sources of the db split beyond AgentBench files: Spider/BIRD-style text-to-SQL sets (task derivation).

A text-to-SQL set is a JSON list of ``{"db_id", "question", "query" (Spider) or "SQL" (BIRD), "evidence"
(BIRD, optional)}`` plus a folder of SQLite databases ``<db_id>/<db_id>.sqlite``. Each pair becomes a question
task whose reference is the gold SQL and whose expected answer is what that SQL returns, as the paper derived
tasks from BIRD: under ``--policy reference`` the trajectory runs the gold SQL and answers with its result while
the model writes the thoughts. Gold SQL of these sets is SQLite's dialect: use the sqlite backend.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agentinstruct.builders.base import Task
from agentinstruct.builders.db.backends import read_sqlite_tables
from agentinstruct.builders.db.tasks import TaskFileError, make_task, stable_task_id, table_text

_DATABASE_FOLDERS = ("database", "dev_databases", "train_databases", "test_databases", "databases")


def is_text2sql_file(path: Path) -> bool:
    """Whether ``path`` is a Spider/BIRD question file (a JSON list whose items carry ``db_id``).

    Example:
        >>> is_text2sql_file(Path("dev.jsonl"))  # doctest: +SKIP
        False
    """
    with path.open("rb") as f:
        head = f.read(4096).lstrip()
    return head.startswith(b"[") and b'"db_id"' in head


def _database_folder(path: Path, databases: Path | None) -> Path:
    if databases is not None:
        if not databases.is_dir():
            raise TaskFileError(f"--databases {databases}: no such folder")
        return databases
    for name in _DATABASE_FOLDERS:
        if (path.parent / name).is_dir():
            return path.parent / name
    raise TaskFileError(f"{path}: no database folder found beside it (looked for {', '.join(_DATABASE_FOLDERS)}); "
                        "name it with --databases DIR")


def _schema(sqlite_file: Path) -> list[dict[str, Any]]:
    """Table names and columns of a database file (no rows: the episode copies the file itself)."""
    return [{"name": t["name"], "columns": t["columns"]} for t in read_sqlite_tables(str(sqlite_file))]


def load_text2sql(path: Path, databases: Path | None = None) -> list[Task]:
    """Question tasks (``task_derivation``) from a Spider/BIRD-style JSON file and its SQLite databases.

    Example:
        >>> tasks = load_text2sql(Path("spider/dev.json"))  # doctest: +SKIP
        >>> tasks[0].payload["reference"]  # doctest: +SKIP
        'SELECT count(*) FROM singer'
    """
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise TaskFileError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(entries, list):
        raise TaskFileError(f"{path}: expected a JSON list of questions")
    folder = _database_folder(path, databases)
    schemas: dict[str, list[dict[str, Any]]] = {}
    tasks = []
    for n, entry in enumerate(entries):
        where = f"{path}: item {n}"
        if not isinstance(entry, dict):
            raise TaskFileError(f"{where}: must be an object")
        for key in ("db_id", "question"):
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                raise TaskFileError(f"{where}: field '{key}' must be a non-empty string")
        sql = entry.get("query", entry.get("SQL"))
        if not isinstance(sql, str) or not sql.strip():
            raise TaskFileError(f"{where}: field 'query' (Spider) or 'SQL' (BIRD) must hold the gold SQL")
        db_id = entry["db_id"]
        sqlite_file = folder / db_id / f"{db_id}.sqlite"
        if db_id not in schemas:
            if not sqlite_file.is_file():
                raise TaskFileError(f"{where}: field 'db_id': database file {sqlite_file} not found")
            schemas[db_id] = _schema(sqlite_file)
        question = entry["question"].strip()
        evidence = entry.get("evidence")
        if isinstance(evidence, str) and evidence.strip():
            question += f"\nHint: {evidence.strip()}"
        payload = {
            "kind": "query",
            "category": str(entry.get("difficulty") or entry.get("hardness") or "text2sql"),
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
        tasks.append(make_task(payload, stable_task_id(f"db-{path.stem}", content, n), "task_derivation"))
    return tasks
