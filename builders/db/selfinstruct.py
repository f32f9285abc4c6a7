"""Self-instruct for the db split: the model writes a table, a question or a change, and the reference SQL.

Each request names a topic and a task type. The reply must hold one JSON object in AgentBench's shape
(``description``, ``type``, ``table`` with ``table_name`` / ``table_info.columns`` / ``table_info.rows``, and
``sql``). A candidate is kept only when:

- it parses as an AgentBench DB task with 3-30 rows and 2-8 columns;
- its SQL runs on a fresh database of the builder's backend: a question must return 1-10 values that are not all
  NULL (they become the ``label``); a change must change the table (the statement becomes the ``label`` and
  the resulting table's AgentBench hash the ``answer_md5``, as in AgentBench's files);
- its description is not a near-duplicate of an accepted one (``agentinstruct.collection.selfinstruct.NearDuplicates`` at
  ``NEAR_DUPLICATE`` = 0.9).

Accepted tasks are written, as each is accepted, to an AgentBench JSONL file marked
``"instruction_source": "self_instruct"``; running again with the same file resumes and only asks for the
missing tasks. The file is a task source for ``agentinstruct build db --tasks FILE``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from agentinstruct.builders import taskfile
from agentinstruct.builders.base import Task
from agentinstruct.builders.db.reward import agentbench_md5, result_values, table_hash
from agentinstruct.builders.db.tasks import MODIFICATION_TYPES, load_agentbench, make_task, parse_agentbench_entry
from agentinstruct.collection.selfinstruct import NearDuplicates, SelfInstructReport, grow

TOPICS = ("sports results", "city populations", "films and directors", "school enrolment", "library books",
          "train timetables", "weather records", "company sales", "music albums", "elections", "hospital staff",
          "product inventory", "olympic medals", "museum exhibits", "restaurant ratings", "car models",
          "space missions", "river lengths", "university courses", "video games")
TYPES = ("counting", "aggregation-SUM", "aggregation-MAX", "aggregation-MIN", "aggregation-AVG", "ranking",
         "comparison", "other", "INSERT", "UPDATE", "DELETE")
NEAR_DUPLICATE = 0.9
"""The difflib ratio of normalised descriptions from which a candidate repeats an accepted task."""

PROMPT = """Write one new task for an agent that works on a SQL database ({engine}).
Topic: {topic}. Task type: {kind}.
{what}
Reply with one JSON object and nothing else, in exactly this shape:
{{"description": "<the task, as a user would ask it>",
  "type": ["{kind}"],
  "table": {{"table_name": "<name>", "table_info": {{"columns": [{{"name": "<column>", "type": "TEXT"}}, ...],
            "rows": [["<value>", ...], ...]}}}},
  "sql": "<one {engine} statement that {does}>"}}
Use 3 to 30 rows and 2 to 8 columns; every value is a string. Quote names with spaces in the SQL."""

_WHAT = {
    "query": "The task is a question whose answer is found in the table.",
    "modification": "The task asks to {verb} rows of the table; say exactly which values.",
}
_DOES = {"query": "answers the question", "modification": "makes the change"}


def request(engine: str, k: int, seed: int) -> tuple[str, str]:
    """The k-th request of a run: its task type and prompt (topics and types cycle from ``seed``).

    Example:
        >>> request("SQLite", 0, 0)[0]
        'counting'
    """
    kind = TYPES[(seed + k) % len(TYPES)]
    topic = TOPICS[(seed + k * 7) % len(TOPICS)]
    shape = "modification" if kind in MODIFICATION_TYPES else "query"
    what = _WHAT[shape].format(verb=kind.lower())
    return kind, PROMPT.format(engine=engine, topic=topic, kind=kind, what=what, does=_DOES[shape])


def verify(builder: Any, entry: dict[str, Any]) -> dict[str, Any]:
    """Check a candidate by running its SQL; return the AgentBench entry to store (label and hash filled in).

    Raises ValueError with the reason for rejecting it.
    """
    if not isinstance(entry, dict):
        raise ValueError("not a JSON object")
    sql = entry.get("sql")
    if isinstance(sql, dict):
        sql = sql.get("query")
    if not isinstance(sql, str) or not sql.strip():
        raise ValueError("no sql")
    types = entry.get("type")
    kind = types[0] if isinstance(types, list) and types else types
    if kind not in TYPES:
        raise ValueError("unknown type")
    modification = kind in MODIFICATION_TYPES
    stored = {"description": entry.get("description"), "type": [kind], "table": entry.get("table"),
              "label": [sql.strip()] if modification else ["?"], "sql": {"query": sql.strip()},
              "instruction_source": "self_instruct"}
    try:
        payload = parse_agentbench_entry(taskfile.candidate(stored, "self_instruct"))
    except taskfile.TaskFileError as e:
        raise ValueError(f"bad shape ({e})") from None
    table = payload["tables"][0]
    if len(payload["tables"]) != 1 or not 3 <= len(table["rows"]) <= 30 or not 2 <= len(table["columns"]) <= 8:
        raise ValueError("table size")
    # The stored table uses the names every backend accepts, as the builder will create it.
    stored["table"] = {"table_name": table["name"], "table_info": {"columns": table["columns"], "rows": table["rows"]}}
    task = make_task(payload, "candidate", "self_instruct")
    result, tables, error = builder.run_reference(task)
    if error is not None or result is None:
        raise ValueError("sql fails")
    if modification:
        columns = [c["name"] for c in table["columns"]]
        after = tables[table["name"]]
        if table_hash(columns, after) == table_hash(columns, [tuple(r) for r in table["rows"]]):
            raise ValueError("sql changes nothing")
        stored["answer_md5"] = str([(agentbench_md5(after),)])
        del stored["sql"]
    else:
        values = result_values(result.rows)
        if result.truncated or not 1 <= len(values) <= 10 or all(v is None for v in values):
            raise ValueError("answer size")
        stored["label"] = values
    return stored


def _read(out: Path) -> list[dict[str, Any]]:
    if not out.exists():
        return []
    load_agentbench(out)  # a damaged file is reported with its line, not extended
    return [e.item for e in taskfile.read_task_file(out, "self_instruct")]


async def self_instruct(builder: Any, agent: Any, n: int, out: Path, *, seed: int = 0, concurrency: int = 4,
                        max_requests: int | None = None) -> tuple[list[Task], SelfInstructReport]:
    """Grow ``out`` to ``n`` verified tasks by asking ``agent``; return its tasks and a report.

    ``max_requests`` (default ``4 * n``) bounds the model calls of this run.

    Example (needs a model server):
        >>> tasks, report = asyncio.run(self_instruct(DbBuilder(), agent, 50, Path("db-tasks.jsonl")))  # doctest: +SKIP
        >>> print(report)  # doctest: +SKIP
        50 tasks in the file (50 new from 131 requests); rejected: sql fails 40, answer size 25, near-duplicate 16
    """
    entries = _read(out)
    engine = "MySQL" if builder.backend == "mariadb" else "SQLite"

    async def check(candidate: Any, _kind: str) -> dict[str, Any]:
        return await asyncio.to_thread(verify, builder, candidate)

    seen = NearDuplicates((e["description"] for e in entries), threshold=NEAR_DUPLICATE)
    report = await grow(agent, n, out, entries, seen, ask=lambda k: request(engine, k, seed), check=check,
                        dump=lambda rows: "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in rows),
                        concurrency=concurrency, max_requests=max_requests)
    return (load_agentbench(out) if entries else []), report
