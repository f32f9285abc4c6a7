"""AgentBench OS task files: their tasks (read by ``builders.taskfile``) parsed into ``Task``s.

The format is AgentBench's ``os_interaction`` JSON, read as AgentBench reads it:

- ``description``: the problem posed to the agent.
- ``create``: ``init`` (a script, or a list of scripts) run as independent processes before the episode;
  ``image`` names a Docker image (used by the Docker backend). A ``create`` that is not an object is ignored,
  as AgentBench ignores it (one dev task has a list there).
- ``start``: a script whose code runs in the agent's shell before the first turn (background programs).
- ``evaluation``: ``match`` (a string compared with the stripped answer, or ``{"answer"|"regex", "strip"}``)
  or ``check`` (a script, or a list of scripts run in turn; ``null`` stands for ``example``) plus ``example``.
  A match task may have an ``example`` too (AgentBench ignores it there): the command whose output shows the
  answer, which ``--policy reference`` runs before answering.

A script is a string (bash code), or ``{"language": "bash"|"python", "code": ...}`` or ``{..., "file": PATH}``
with PATH relative to the scripts folder (``--scripts``; AgentBench pairs ``data/dev.json`` with
``scripts/dev/``). Scripts are read when the tasks are loaded, so a task's payload carries all its code.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from agentinstruct.builders.base import Task
from agentinstruct.builders.taskfile import Entry, read_task_file

DATA = Path(__file__).parent / "data"
"""The embedded tasks (tasks.json), the checkers they and self-instructed tasks use (check/), the Dockerfile."""
LANGUAGES = ("bash", "python")
Script = list[str]  # [language, code]


class _Reader:
    """Reads one entry's AgentBench OS fields; every error names the entry's file, line, task and field."""

    def __init__(self, entry: Entry, scripts: Path):
        self.entry, self.scripts = entry, scripts

    def script(self, obj: Any, field: str) -> Script:
        if isinstance(obj, str):
            return ["bash", obj]
        if not isinstance(obj, dict):
            raise self.entry.error(field, "expected a script (a string or an object with code or file), "
                                   f"got {obj!r:.80}")
        language = obj.get("language", "bash")
        if language not in LANGUAGES:
            raise self.entry.error(f"{field}.language",
                                   f"{language!r} is not supported (supported: {', '.join(LANGUAGES)})")
        if isinstance(obj.get("code"), str) and "file" not in obj:
            return [language, obj["code"]]
        if isinstance(obj.get("file"), str):
            path = self.scripts / obj["file"]
            if not path.is_file():
                raise self.entry.error(f"{field}.file", f"{path} not found (point --scripts at the folder that "
                                       f"holds {obj['file']!r}; AgentBench pairs data/dev.json with scripts/dev/)")
            return [language, path.read_text(encoding="utf-8")]
        raise self.entry.error(field, "a script object needs a string 'code' or 'file'")

    def scripts_list(self, obj: Any, field: str, *, allow_null: bool) -> list[Script | None]:
        items = obj if isinstance(obj, list) else [obj]
        out: list[Script | None] = []
        for i, item in enumerate(items):
            if item is None:
                if not allow_null:
                    raise self.entry.error(f"{field}[{i}]", "null is only allowed in evaluation.check")
                out.append(None)
            else:
                out.append(self.script(item, f"{field}[{i}]" if isinstance(obj, list) else field))
        return out

    def payload(self) -> dict[str, Any]:
        item = self.entry.item
        if not isinstance(item, dict):
            raise self.entry.error(None, f"expected a task object, got {type(item).__name__}")
        if not isinstance(item.get("description"), str) or not item["description"].strip():
            raise self.entry.error("description", "missing or not a non-empty string")
        create = item.get("create") if isinstance(item.get("create"), dict) else {}
        init = self.scripts_list(create["init"], "create.init", allow_null=False) if "init" in create else []
        evaluation = item.get("evaluation")
        if not isinstance(evaluation, dict):
            raise self.entry.error("evaluation", "missing or not an object")
        match = check = None
        if "match" in evaluation:
            match = evaluation["match"]
            if isinstance(match, str):
                match = {"answer": match, "strip": True}
            elif not (isinstance(match, dict) and (isinstance(match.get("answer"), str)
                                                   or isinstance(match.get("regex"), str))):
                raise self.entry.error("evaluation.match", "expected a string or an object with 'answer' or 'regex'")
        elif "check" in evaluation:
            check = self.scripts_list(evaluation["check"], "evaluation.check", allow_null=True)
        else:
            raise self.entry.error("evaluation", "needs 'match' or 'check'")
        example = self.script(evaluation["example"], "evaluation.example") if "example" in evaluation else None
        if example is None and check is not None and None in check:
            raise self.entry.error("evaluation.example", "required when evaluation.check has null (run the example)")
        return {
            "description": item["description"],
            "init": init,
            "start": self.script(item["start"], "start")[1] if item.get("start") is not None else None,
            "match": match,
            "check": check,
            "example": example,
            "image": create.get("image"),
            "labels": item.get("labels", []),
        }


def task_payload(entry: Entry, scripts: Path) -> dict[str, Any]:
    """One task's payload (scripts read from ``scripts``); a ``TaskFileError`` names the entry and the field.

    Example:
        >>> from agentinstruct.builders.taskfile import candidate
        >>> task = {"description": "d", "evaluation": {"match": "1"}}
        >>> task_payload(candidate(task, "self_instruct"), Path("."))["match"]
        {'answer': '1', 'strip': True}
        >>> task_payload(candidate({"description": "d"}, "self_instruct"), Path("."))
        Traceback (most recent call last):
        ...
        agentinstruct.builders.taskfile.TaskFileError: candidate: task 0: evaluation: missing or not an object
    """
    return _Reader(entry, scripts).payload()


def load_task_file(path: Path, scripts: Path, source: str, prefix: str | None = None) -> list[Task]:
    """``Task``s of an AgentBench OS task file; ids are ``{prefix or file stem}-{index:05d}``; each task's source is
    ``source`` unless the file marks it (self-instruct marks its tasks, so they keep that provenance anywhere).

    Example (a one-task file whose init script lives in the scripts folder, as AgentBench pairs them):
        >>> import json
        >>> Path("scripts/dev").mkdir(parents=True)
        >>> _ = Path("scripts/dev/init.sh").write_text("mkdir /root/d && touch /root/d/a /root/d/b")
        >>> _ = Path("dev.json").write_text(json.dumps([{"description": "How many files are in /root/d?",
        ...     "create": {"init": {"file": "init.sh"}}, "evaluation": {"match": "2"}}]))
        >>> tasks = load_task_file(Path("dev.json"), Path("scripts/dev"), "train_split")
        >>> tasks[0].task_id, tasks[0].source
        ('dev-00000', 'train_split')
        >>> tasks[0].payload["init"], tasks[0].payload["match"]
        ([['bash', 'mkdir /root/d && touch /root/d/a /root/d/b']], {'answer': '2', 'strip': True})
    """
    stem = prefix or path.stem
    tasks = []
    for entry in read_task_file(path, source):
        payload = task_payload(entry, scripts)
        tasks.append(Task(f"{stem}-{entry.index:05d}", payload["description"], entry.source, payload))
    return tasks


def random_seed(task_id: str) -> int:
    """The seed bash's ``$RANDOM`` gets in a task's init scripts, so every sandbox of a task starts the same.

    Example:
        >>> random_seed("dev-00025") == random_seed("dev-00025")
        True
    """
    return int(hashlib.sha256(task_id.encode("utf-8")).hexdigest()[:8], 16)


def command(script: Script, params: list[str], *, seed: int | None = None) -> list[str]:
    """The argv that runs ``script`` as AgentBench does: ``bash -c CODE -- PARAMS`` or ``python3 -c CODE PARAMS``;
    ``seed`` makes a bash script's ``$RANDOM`` reproducible.

    Example:
        >>> command(["bash", "echo $1"], ["42"])
        ['bash', '-c', 'echo $1', '--', '42']
        >>> command(["python", "import sys"], ["a", "b"])
        ['python3', '-c', 'import sys', 'a', 'b']
    """
    language, code = script
    if language == "python":
        return ["python3", "-c", code, *params]
    if seed is not None:
        code = f"RANDOM={seed}\n{code}"
    return ["bash", "-c", code, *(["--", *params] if params else [])]
