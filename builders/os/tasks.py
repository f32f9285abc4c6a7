"""AgentBench OS task files: reading them (one object or a list, JSON or JSON lines) into ``Task``s.

The format is AgentBench's ``os_interaction`` JSON, read as AgentBench reads it:

- ``description``: the problem posed to the agent.
- ``create``: ``init`` (a script, or a list of scripts) run as independent processes before the episode;
  ``image`` names a Docker image (used by the Docker backend). A ``create`` that is not an object is ignored,
  as AgentBench ignores it (one dev task has a list there).
- ``start``: a script whose code runs in the agent's shell before the first turn (background programs).
- ``evaluation``: ``match`` (a string compared with the stripped answer, or ``{"answer"|"regex", "strip"}``)
  or ``check`` (a script, or a list of scripts run in turn; ``null`` stands for ``example``) plus ``example``.

A script is a string (bash code), or ``{"language": "bash"|"python", "code": ...}`` or ``{..., "file": PATH}``
with PATH relative to the scripts folder (``--scripts``; AgentBench pairs ``data/dev.json`` with
``scripts/dev/``). Scripts are read when the tasks are loaded, so a task's payload carries all its code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from agentinstruct.builders.base import TASK_SOURCES, Task

LANGUAGES = ("bash", "python")
Script = list[str]  # [language, code]


class TaskFormatError(ValueError):
    """A task file that does not follow the AgentBench OS format; the message names file, task and field."""


class _Reader:
    def __init__(self, path: Path, scripts: Path, index: int):
        self.path, self.scripts, self.index = path, scripts, index

    def fail(self, field: str, problem: str) -> TaskFormatError:
        return TaskFormatError(f"{self.path}: task {self.index}: {field}: {problem}")

    def script(self, obj: Any, field: str) -> Script:
        if isinstance(obj, str):
            return ["bash", obj]
        if not isinstance(obj, dict):
            raise self.fail(field, f"expected a script (a string or an object with code or file), got {obj!r:.80}")
        language = obj.get("language", "bash")
        if language not in LANGUAGES:
            raise self.fail(f"{field}.language", f"{language!r} is not supported (supported: {', '.join(LANGUAGES)})")
        if isinstance(obj.get("code"), str) and "file" not in obj:
            return [language, obj["code"]]
        if isinstance(obj.get("file"), str):
            path = self.scripts / obj["file"]
            if not path.is_file():
                raise self.fail(f"{field}.file", f"{path} not found (point --scripts at the folder that holds "
                                f"{obj['file']!r}; AgentBench pairs data/dev.json with scripts/dev/)")
            return [language, path.read_text(encoding="utf-8")]
        raise self.fail(field, "a script object needs a string 'code' or 'file'")

    def scripts_list(self, obj: Any, field: str, *, allow_null: bool) -> list[Script | None]:
        items = obj if isinstance(obj, list) else [obj]
        out: list[Script | None] = []
        for i, item in enumerate(items):
            if item is None:
                if not allow_null:
                    raise self.fail(f"{field}[{i}]", "null is only allowed in evaluation.check")
                out.append(None)
            else:
                out.append(self.script(item, f"{field}[{i}]" if isinstance(obj, list) else field))
        return out

    def payload(self, item: Any) -> dict[str, Any]:
        if not isinstance(item, dict):
            raise self.fail("", f"expected a task object, got {type(item).__name__}")
        if not isinstance(item.get("description"), str) or not item["description"].strip():
            raise self.fail("description", "missing or not a non-empty string")
        create = item.get("create") if isinstance(item.get("create"), dict) else {}
        init = self.scripts_list(create["init"], "create.init", allow_null=False) if "init" in create else []
        evaluation = item.get("evaluation")
        if not isinstance(evaluation, dict):
            raise self.fail("evaluation", "missing or not an object")
        match = check = example = None
        if "match" in evaluation:
            match = evaluation["match"]
            if isinstance(match, str):
                match = {"answer": match, "strip": True}
            elif not (isinstance(match, dict) and (isinstance(match.get("answer"), str)
                                                   or isinstance(match.get("regex"), str))):
                raise self.fail("evaluation.match", "expected a string or an object with 'answer' or 'regex'")
        elif "check" in evaluation:
            check = self.scripts_list(evaluation["check"], "evaluation.check", allow_null=True)
            if "example" in evaluation:
                example = self.script(evaluation["example"], "evaluation.example")
            elif None in check:
                raise self.fail("evaluation.example", "required when evaluation.check has null (run the example)")
        else:
            raise self.fail("evaluation", "needs 'match' or 'check'")
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


def task_payload(item: Any, scripts: Path, where: str = "candidate", index: int = 0) -> dict[str, Any]:
    """One task object's payload (scripts read from ``scripts``); TaskFormatError naming ``where`` and the field.

    Example:
        >>> task_payload({"description": "d", "evaluation": {"match": "1"}}, Path("."))["match"]
        {'answer': '1', 'strip': True}
    """
    return _Reader(Path(where), scripts, index).payload(item)


def read_task_file(path: Path) -> list[Any]:
    """The raw task objects of a ``.json`` (one object or a list) or ``.jsonl`` file.

    Example:
        >>> len(read_task_file(Path("dev.json")))  # doctest: +SKIP
        26
    """
    if not path.is_file():
        raise FileNotFoundError(f"task file {path} not found")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TaskFormatError(f"{path}: not valid JSON: {exc}") from None
    return data if isinstance(data, list) else [data]


def load_task_file(path: Path, scripts: Path, source: str, prefix: str | None = None) -> list[Task]:
    """``Task``s of an AgentBench OS task file; ids are ``{prefix or file stem}-{index:05d}``.

    Example:
        >>> tasks = load_task_file(Path("data/dev.json"), Path("scripts/dev"), "train_split")  # doctest: +SKIP
        >>> tasks[0].task_id  # doctest: +SKIP
        'dev-00000'
    """
    stem = prefix or path.stem
    tasks = []
    for i, item in enumerate(read_task_file(path)):
        payload = task_payload(item, scripts, str(path), i)
        # Files self-instruct writes mark their tasks, so they keep that provenance wherever they are read.
        origin = item.get("instruction_source", source)
        if origin not in TASK_SOURCES:
            raise TaskFormatError(f"{path}: task {i}: instruction_source: {origin!r} is not one of "
                                  f"{', '.join(TASK_SOURCES)}")
        tasks.append(Task(f"{stem}-{i:05d}", payload["description"], origin, payload))
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
