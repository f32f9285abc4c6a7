"""The db task format: AgentBench DB JSON lines, read into ``Task`` objects whose payload the environment builds from.

An AgentBench line holds ``description``, ``table`` (``table_name`` and ``table_info`` with ``columns`` of
``{name, type}`` and ``rows``; a list of such tables is accepted too), ``type`` (a one-item list: ``INSERT``,
``UPDATE``, ``DELETE`` for modification tasks, else a question category), ``label`` (the answers; for a
modification task the reference statement), optional ``sql.query`` (a reference query), optional ``answer_md5``
(AgentBench's MySQL hash of the expected table) and optional ``add_description`` (the sentence describing the
table). Our own optional field ``instruction_source`` (``self_instruct`` in files self-instruct writes) sets the
tasks' provenance; other fields are kept out of the payload; the file is never modified. Files are read by
``builders.taskfile``, so a bad field is a ``TaskFileError`` naming the file, line, task and field.

The payload (JSON, journaled with the task) is:

``{"kind": "query"|"modification", "category": str, "question": str, "tables": [{"name", "columns", "rows"}]
| None, "sqlite_file": str | None, "label": [...] | None, "reference": str | None, "answer_md5": str | None,
"table_text": str}``

``tables`` holds inline tables (AgentBench); ``sqlite_file`` names a database file to copy per episode
(Spider/BIRD). ``label`` None means the expected answer is derived by running ``reference``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from agentinstruct.builders.base import Task
from agentinstruct.builders.db.reward import md5_from_answer_field
from agentinstruct.builders.taskfile import Entry, read_task_file

MODIFICATION_TYPES = ("INSERT", "UPDATE", "DELETE")


def table_text(tables: list[dict[str, Any]]) -> str:
    """The table description appended to the question, in AgentBench's words for one table.

    Example:
        >>> table_text([{"name": "t", "columns": [{"name": "a", "type": "TEXT"}, {"name": "b c", "type": "INT"}]}])
        'The name of this table is t, and the headers of this table are a,b c.'
    """
    if len(tables) == 1:
        t = tables[0]
        return f"The name of this table is {t['name']}, and the headers of this table are " + ",".join(
            c["name"] for c in t["columns"]
        ) + "."
    parts = [f"{t['name']} ({', '.join(c['name'] for c in t['columns'])})" for t in tables]
    return "The database has these tables (with their headers): " + "; ".join(parts) + "."


def _need(entry: Entry, obj: dict[str, Any], key: str, kind: type | tuple[type, ...], at: str = "") -> Any:
    """``obj[key]`` of type ``kind``; ``obj`` is the task itself, or the object at field ``at`` within it."""
    field = f"{at}.{key}" if at else key
    if key not in obj:
        raise entry.error(field, "missing")
    value = obj[key]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise entry.error(field, f"must be {names}, got {type(value).__name__}")
    return value


# MariaDB/MySQL refuse empty names, names ending in a space and names over 64 characters, and compare column
# names without case; such names are replaced on every backend alike so a task means the same everywhere.
_MAX_NAME = 64


def usable_names(names: list[str], fallback: str) -> list[str]:
    """Names every backend accepts: trailing spaces cut, at most 64 characters, empty or clashing ones renamed.

    Example:
        >>> usable_names(["", "Name ", "name", "x" * 70], "column")
        ['column_1', 'Name', 'name_3', 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx']
    """
    out: list[str] = []
    seen: set[str] = set()
    for i, name in enumerate(names, 1):
        fixed = name.replace("\x00", "").rstrip()[:_MAX_NAME].rstrip() or f"{fallback}_{i}"
        if fixed.lower() in seen:
            fixed = f"{fixed[:_MAX_NAME - 8]}_{i}"
        seen.add(fixed.lower())
        out.append(fixed)
    return out


def _table(entry: Entry, raw: Any, at: str) -> dict[str, Any]:
    """The table at field ``at`` (``table`` or ``table[i]``), with names every backend accepts."""
    if not isinstance(raw, dict):
        raise entry.error(at, "must be an object with table_name and table_info")
    name = _need(entry, raw, "table_name", str, at)
    info = _need(entry, raw, "table_info", dict, at)
    columns = _need(entry, info, "columns", list, f"{at}.table_info")
    cols = []
    for i, col in enumerate(columns):
        here = f"{at}.table_info.columns[{i}]"
        if not isinstance(col, dict):
            raise entry.error(here, "must be an object with name and type")
        cols.append({"name": _need(entry, col, "name", str, here), "type": str(col.get("type") or "TEXT")})
    for col, fixed in zip(cols, usable_names([c["name"] for c in cols], "column")):
        col["name"] = fixed
    name = usable_names([name], "table")[0]
    if not cols:
        raise entry.error(f"{at}.table_info.columns", "a table needs at least one column")
    rows = _need(entry, info, "rows", list, f"{at}.table_info")
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(cols):
            raise entry.error(f"{at}.table_info.rows[{i}]", f"must be a list of {len(cols)} values")
        for value in row:
            if value is not None and not isinstance(value, (str, int, float)):
                raise entry.error(f"{at}.table_info.rows[{i}]", "values must be strings, numbers or null")
    return {"name": name, "columns": cols, "rows": rows}


def parse_agentbench_entry(entry: Entry) -> dict[str, Any]:
    """The payload of one AgentBench DB task; a ``TaskFileError`` names the entry and the field.

    Example:
        >>> from agentinstruct.builders.taskfile import candidate
        >>> task = {"description": "How many?", "label": ["2"], "type": ["counting"], "table": {"table_name": "t",
        ...         "table_info": {"columns": [{"name": "a", "type": "TEXT"}], "rows": [["x"], ["y"]]}}}
        >>> p = parse_agentbench_entry(candidate(task, "self_instruct"))
        >>> p["kind"], p["label"], p["reference"]
        ('query', ['2'], None)
        >>> parse_agentbench_entry(candidate({**task, "label": "2"}, "self_instruct"))
        Traceback (most recent call last):
        ...
        agentinstruct.builders.taskfile.TaskFileError: candidate: task 0: label: must be list, got str
    """
    item = entry.item
    if not isinstance(item, dict):
        raise entry.error(None, "a task must be a JSON object")
    question = _need(entry, item, "description", str)
    types = _need(entry, item, "type", (list, str))
    category = types if isinstance(types, str) else (types[0] if types else "")
    if not isinstance(category, str) or not category:
        raise entry.error("type", 'must name the task type, e.g. ["counting"] or ["INSERT"]')
    raw_tables = _need(entry, item, "table", (dict, list))
    raw_list = raw_tables if isinstance(raw_tables, list) else [raw_tables]
    tables = [_table(entry, t, f"table[{i}]" if isinstance(raw_tables, list) else "table")
              for i, t in enumerate(raw_list)]
    if not tables:
        raise entry.error("table", "holds no table")
    names = [t["name"] for t in tables]
    if len({n.lower() for n in names}) != len(names):
        raise entry.error("table", "names a table twice")
    renamed = any(
        t["name"] != r.get("table_name") or [c["name"] for c in t["columns"]]
        != [c.get("name") for c in r["table_info"]["columns"]] for t, r in zip(tables, raw_list))
    label = _need(entry, item, "label", list)
    answer_md5 = None
    if category.upper() in MODIFICATION_TYPES:
        kind = "modification"
        if not label or not isinstance(label[0], str) or not label[0].strip():
            raise entry.error("label", f"must hold the reference statement of this {category} task")
        reference, expected = label[0].strip(), None
        if "answer_md5" in item:
            answer_md5 = md5_from_answer_field(str(item["answer_md5"]))
            if answer_md5 is None:
                raise entry.error("answer_md5", "holds no md5 hex digest")
    else:
        kind = "query"
        sql = item.get("sql")
        if sql is not None and not (isinstance(sql, dict) and isinstance(sql.get("query"), str)):
            raise entry.error("sql", "must be an object with a string 'query'")
        reference = sql["query"].strip() if sql else None
        expected = label
    return {
        "kind": kind,
        "category": category,
        "question": question,
        "tables": tables,
        "sqlite_file": None,
        "label": expected,
        "reference": reference,
        "answer_md5": answer_md5,
        # AgentBench's own sentence, unless a name had to change (then the sentence would name a missing column).
        "table_text": (item.get("add_description") if renamed is False else None) or table_text(tables),
    }


def stable_task_id(prefix: str, content: Any, n: int) -> str:
    """A stable id: the position in the file plus a short hash of the task's content (an edited task gets a new id).

    Example:
        >>> stable_task_id("db-dev", {"question": "Q"}, 3)
        'db-dev-00003-23ad12a5'
    """
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()
    return f"{prefix}-{n:05d}-{digest[:8]}"


def make_task(payload: dict[str, Any], task_id: str, source: str) -> Task:
    """A ``Task`` from a payload: the instruction is the question plus the table description, as it is posed.

    Example:
        >>> t = make_task({"question": "Q?", "table_text": "T."}, "db-1", "train_split")
        >>> t.instruction
        'Q?\\nT.'
    """
    return Task(task_id=task_id, instruction=f"{payload['question']}\n{payload['table_text']}", source=source,
                payload=payload)


def load_agentbench(path: Path, source: str = "train_split", prefix: str | None = None) -> list[Task]:
    """Tasks from an AgentBench DB file (JSON lines, or one JSON list), in file order; each task's source is
    ``source`` unless its line names one (self-instruct marks its lines, so they keep that provenance). Task ids
    start with ``prefix`` (default ``db-`` and the file's stem).

    Example (a one-task file in AgentBench's dev.jsonl shape):
        >>> task = {"description": "How many rows are in t?", "label": ["2"], "type": ["counting"], "table": {
        ...     "table_name": "t", "table_info": {"columns": [{"name": "a", "type": "TEXT"}], "rows": [["x"], ["y"]]}}}
        >>> _ = Path("dev.jsonl").write_text(json.dumps(task) + "\\n")
        >>> tasks = load_agentbench(Path("dev.jsonl"))
        >>> tasks[0].task_id, tasks[0].source, tasks[0].payload["label"]
        ('db-dev-00000-...', 'train_split', ['2'])
        >>> print(tasks[0].instruction)
        How many rows are in t?
        The name of this table is t, and the headers of this table are a.
    """
    tasks = []
    for entry in read_task_file(path, source):
        payload = parse_agentbench_entry(entry)
        tasks.append(make_task(payload, stable_task_id(prefix or f"db-{path.stem}", payload, entry.index),
                               entry.source))
    return tasks
