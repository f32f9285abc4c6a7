"""Self-instruct for the os split: the model writes a task, its setup, a solution and a checker choice.

Each request names a topic and a checker. The reply must hold one JSON object
``{"description", "init", "example", "checker"}``: ``init`` is bash that prepares a fresh machine, ``example``
is bash that prints the answer, ``checker`` one of the AgentBench-style checkers shipped in
``builders/os/data/check`` (integer-match, string-match, size-match, containing, in). It becomes an AgentBench
OS task (``create.init`` + ``evaluation.check = [null, checker]`` + ``evaluation.example``) and is kept only when,
in two fresh sandboxes each:

- the init script exits 0 within the time limit;
- the example exits 0 and prints a non-empty answer of at most 200 characters, the same in both sandboxes
  (answers that depend on time or unseeded randomness are not checkable later);
- the checker accepts that answer against the example's output and rejects a wrong one;

and its description is not a near-duplicate (``agentinstruct.collection.selfinstruct.NearDuplicates`` at ``NEAR_DUPLICATE``
= 0.9) of an accepted task or of the embedded tasks shown as examples.

Accepted tasks are written, as each is accepted, to a JSON task file (a list, AgentBench's format, each marked
``"instruction_source": "self_instruct"``); running again with the same file resumes and asks only for the
missing tasks. ``agentinstruct self-instruct os --n 50 --out FILE`` writes one; ``agentinstruct build os --tasks
self-instruct --n 50 --out DIR`` keeps it at ``DIR/tasks/os-self-instruct.json`` and collects on it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from agentinstruct.builders import taskfile
from agentinstruct.builders.base import EMBEDDED, Task
from agentinstruct.builders.os.environment import judge, prepare
from agentinstruct.builders.os.tasks import DATA, command, load_task_file, task_payload
from agentinstruct.collection.selfinstruct import NearDuplicates, SelfInstructReport, grow

CHECKERS = ("integer-match", "string-match", "size-match", "containing", "in")
TOPICS = ("counting files by name or extension", "file sizes and disk usage", "users and groups",
          "file permissions and ownership", "searching text in log files", "word and line statistics of a text file",
          "directory trees and hidden files", "file modification times", "symbolic and hard links",
          "tar and gzip archives", "environment and configuration files", "comparing two files",
          "sorting and de-duplicating data", "CSV data with awk or cut", "shell variables and scripts",
          "processes started in the background")
STORE = Path("tasks") / "os-self-instruct.json"
"""Where ``build os --tasks self-instruct`` keeps the accepted tasks, relative to the dataset dir."""
MAX_ANSWER = 200
WRONG_ANSWER = "agentinstruct-wrong-answer-731"
CANDIDATE_ID = "self-instruct-candidate"
NEAR_DUPLICATE = 0.9
"""The difflib ratio of normalised descriptions from which a candidate repeats an accepted or embedded task."""

PROMPT = """Write one new practice task for an agent that works as root in a bash shell on a fresh Ubuntu machine \
with no network.
Topic: {topic}. The answer is compared with the checker "{checker}": {meaning}.

Reply with one JSON object and nothing else, in exactly this shape:
{{"description": "<the question, as a user would ask it; it must have exactly one correct answer>",
  "init": "<bash that prepares the machine: creates the files, users or data the question is about>",
  "example": "<bash that prints the correct answer and nothing else, run after init>",
  "checker": "{checker}"}}

Two tasks in this shape:
{examples}"""

MEANINGS = {
    "integer-match": "the answer and the example's output are the same integer",
    "string-match": "the answer equals the example's output, whitespace around it aside",
    "size-match": "the answer and the example's output are the same size, like 4.0K or 12M",
    "containing": "the answer contains the example's output",
    "in": "the answer is part of the example's output",
}


def candidate_entry(candidate: Any, topic: str) -> dict[str, Any]:
    """The AgentBench OS task for a reply's JSON object; ValueError with the reason when it has the wrong shape.

    Example:
        >>> candidate_entry({"description": "How many?", "init": "", "example": "echo 1",
        ...                  "checker": "integer-match"}, "files")["evaluation"]["check"][1]["file"]
        'check/integer-match.py'
    """
    if not isinstance(candidate, dict):
        raise ValueError("not a JSON object")
    description, init, example = (candidate.get(k) for k in ("description", "init", "example"))
    if not isinstance(description, str) or not description.strip() or len(description) > 1000:
        raise ValueError("bad description")
    if not isinstance(init, str) or len(init) > 4000:
        raise ValueError("bad init")
    if not isinstance(example, str) or not example.strip() or len(example) > 1000:
        raise ValueError("bad example")
    if candidate.get("checker") not in CHECKERS:
        raise ValueError("unknown checker")
    entry: dict[str, Any] = {"description": description.strip()}
    if init.strip():
        entry["create"] = {"init": {"code": init}}
    entry["evaluation"] = {"check": [None, {"language": "python", "file": f"check/{candidate['checker']}.py"}],
                           "example": {"code": example}}
    entry["labels"] = [topic]
    entry["instruction_source"] = "self_instruct"
    return entry


def _run_once(builder: Any, task: Task) -> str:
    """Init, then the example, in a fresh sandbox; the stripped answer. ValueError with the reason to reject."""
    payload = task.payload
    with builder.open_sandbox(task) as box:
        if any(out.exit_code != 0 for out in prepare(box, task)):
            raise ValueError("init fails")
        out = box.exec(command(payload["example"], []))
        if out.exit_code != 0:
            raise ValueError("example fails")
        answer = out.text.strip()
        if not answer:
            raise ValueError("empty answer")
        if len(answer) > MAX_ANSWER:
            raise ValueError("answer too long")
        if not judge(box, payload, answer):
            raise ValueError("checker rejects the example's answer")
        if judge(box, payload, WRONG_ANSWER):
            raise ValueError("checker accepts a wrong answer")
    return answer


def verify(builder: Any, entry: dict[str, Any], scripts: Path) -> None:
    """Run a candidate in two fresh sandboxes (see the module docstring); ValueError with the reason to reject."""
    try:
        payload = task_payload(taskfile.candidate(entry, "self_instruct"), scripts)
    except taskfile.TaskFileError as exc:
        raise ValueError(f"bad shape ({exc})") from None
    task = Task(CANDIDATE_ID, payload["description"], "self_instruct", payload)
    if _run_once(builder, task) != _run_once(builder, task):
        raise ValueError("not reproducible")


def request(k: int, seed: int, examples: list[dict[str, Any]]) -> tuple[str, str]:
    """The k-th request of a run: its topic and prompt (topics, checkers and example tasks cycle from ``seed``).

    Example:
        >>> request(0, 0, [{"description": "d", "init": "", "example": "echo 1", "checker": "in"}] * 2)[0]
        'counting files by name or extension'
    """
    topic = TOPICS[(seed + k) % len(TOPICS)]
    # Integer answers are the commonest checkable kind (930 of AgentBench's 1,000 training tasks); the model may
    # still pick another checker.
    checker = ("integer-match", "string-match", "integer-match", "size-match")[(seed + k) % 4]
    shown = [examples[(seed + k + i) % len(examples)] for i in range(2)]
    text = "\n".join(json.dumps(e, ensure_ascii=False) for e in shown)
    return topic, PROMPT.format(topic=topic, checker=checker, meaning=MEANINGS[checker], examples=text)


def demonstrations(path: Path) -> list[dict[str, Any]]:
    """The check tasks of an AgentBench OS file that use a shipped checker, in the reply shape (prompt examples).

    Example (the embedded tasks):
        >>> shown = demonstrations(DATA / "tasks.json")
        >>> sorted(shown[0])
        ['checker', 'description', 'example', 'init']
        >>> shown[0]["example"], shown[0]["checker"]
        ("find /root/notes -type f -name '*.txt' | wc -l", 'integer-match')
    """
    shown = []
    for entry in taskfile.read_task_file(path, "package"):
        item = entry.item
        check, example = item["evaluation"].get("check"), item["evaluation"].get("example")
        init = item.get("create", {}).get("init", {"code": ""})
        if not (isinstance(check, list) and len(check) == 2 and check[0] is None and isinstance(init, dict)):
            continue
        name = Path(check[1]["file"]).stem
        if name in CHECKERS:
            shown.append({"description": item["description"], "init": init["code"], "example": example["code"],
                          "checker": name})
    return shown


async def self_instruct(builder: Any, agent: Any, n: int, out: Path, *, seed: int = 0, concurrency: int = 4,
                        max_requests: int | None = None) -> tuple[list[Task], SelfInstructReport]:
    """Grow the task file ``out`` to ``n`` verified tasks by asking ``agent``; return its tasks and a report.

    ``max_requests`` (default ``4 * n``) bounds the model calls of this run.

    Example (needs a model server, and bubblewrap to verify each task):
        >>> tasks, report = asyncio.run(self_instruct(OsBuilder(), agent, 50, Path("os-tasks.json")))  # doctest: +SKIP
        >>> print(report)  # doctest: +SKIP
        50 tasks in the file (50 new from 97 requests); rejected: example fails 21, not JSON 12, near-duplicate 9
    """
    out = Path(out)
    entries = [e.item for e in taskfile.read_task_file(out, "self_instruct")] if out.exists() else []
    if entries:
        load_task_file(out, DATA, "self_instruct")  # a damaged file is reported with its task, not extended
    examples = demonstrations(DATA / "tasks.json")
    seen = NearDuplicates([e["description"] for e in entries] + [t.instruction for t in builder.load_tasks(EMBEDDED)],
                          threshold=NEAR_DUPLICATE)

    async def check(candidate: Any, topic: str) -> dict[str, Any]:
        entry = candidate_entry(candidate, topic)
        if seen.repeats(entry["description"]):  # before the sandboxes: they are the slow part
            raise ValueError("near-duplicate")
        await asyncio.to_thread(verify, builder, entry, DATA)
        return entry

    report = await grow(agent, n, out, entries, seen, ask=lambda k: request(k, seed, examples), check=check,
                        dump=lambda tasks: json.dumps(tasks, indent=1, ensure_ascii=False) + "\n",
                        concurrency=concurrency, max_requests=max_requests)
    return (load_task_file(out, DATA, "self_instruct") if entries else []), report
